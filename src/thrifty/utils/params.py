"""Declared hyper-parameter constraints, checked in one place: :func:`validate_params`.

A method declares what each of its hyper-parameters accepts in a class attribute and checks
its arguments with one call (the idea of scikit-learn's ``_parameter_constraints``)::

    class InfoBatch:
        _parameter_constraints = {
            "prune_ratio": Param(Interval(float, 0, 1, closed="left"), label="r",
                                 hint="0.5 is the paper's default"),
            "delta": Interval(float, 0, 1),
        }

        def __init__(self, prune_ratio=0.5, delta=0.875):
            v = validate_params("InfoBatch", {"prune_ratio": prune_ratio, "delta": delta},
                                self._parameter_constraints)
            self.prune_ratio, self.delta = v["prune_ratio"], v["delta"]

An entry of the mapping is one constraint, ``None`` (the value may be ``None``), a list of
them (the value must satisfy one) or a :class:`Param` (that list plus a label and a hint
for the message). The constraints:

- :class:`Interval`: an ``int`` or a ``float`` within bounds. A ``bool`` is never a number
  and NaN lies in no interval.
- :class:`Options`: one of a fixed set of values (``Options(str, ("carry", "drop"))``).
- :class:`Boolean`: ``True`` or ``False``.
- ``None``: the value ``None`` itself (an unset option).

Messages
--------
A refused value raises ``ValueError`` naming the owner, the parameter (with its label),
what is accepted, the value received and the hint::

    InfoBatch: prune_ratio (r) must be in [0, 1), got 1.5; 0.5 is the paper's default

A value that is not a number at all, where a number is expected, is first told so::

    Adonis: theta must be a number, got 'high'; theta (the PMF threshold) must be in (0, 1)
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral, Real
from typing import Any

#: which ends an :class:`Interval` includes
CLOSED = ("both", "left", "right", "neither")


class Constraint(ABC):
    """What one constraint accepts. :func:`validate_params` asks each constraint of a
    parameter in turn; the first that accepts the value converts it."""

    #: whether :meth:`describe` already says which type is accepted ("an integer >= 1",
    #: "'carry' or 'drop'"); when no constraint of a parameter does, a value of another
    #: type is first told the type (:attr:`kind_name`)
    names_kind: bool = True

    @abstractmethod
    def is_of_kind(self, value: Any) -> bool:
        """Whether ``value`` has the type this constraint is about (whatever its value)."""

    @abstractmethod
    def accepts(self, value: Any) -> bool:
        """Whether ``value`` satisfies the constraint."""

    @abstractmethod
    def describe(self) -> str:
        """What is accepted, completing ``"NAME must be ..."``."""

    @property
    @abstractmethod
    def kind_name(self) -> str:
        """The accepted type in words (``"a number"``, ``"a string"``)."""

    def convert(self, value: Any) -> Any:
        """The accepted ``value`` in its canonical form (default: unchanged).

        Args:
            value: a value this constraint accepts.
        """
        return value

    def got(self, value: Any) -> str:
        """How a refused ``value`` of this constraint's kind is shown (default: its repr).

        Args:
            value: the refused value.
        """
        return repr(value)


def _number(x: float) -> str:
    """A bound in words: ``1`` for 1.0, ``0.999`` for 0.999."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


class Interval(Constraint):
    """A number of type ``kind`` between ``low`` and ``high``.

    Args:
        kind: ``int`` (an integral number: ``numbers.Integral``) or ``float`` (any real
            number, integers included: ``numbers.Real``). A ``bool`` is neither.
        low: the lower bound; ``None`` (or ``-inf``) for none.
        high: the upper bound; ``None`` (or ``inf``) for none.
        closed: which bounds belong to the interval: ``"both"`` (default), ``"left"``,
            ``"right"`` or ``"neither"``. An infinite bound left open asks for a finite
            number (``Interval(float, 0, math.inf, closed="left")`` refuses ``inf``).
        noun: what the value is called in messages (``"a share"`` gives ``"a share in
            (0, 1]"``). Default ``None``: ``"an integer"`` for ``int``, nothing for
            ``float`` (``"in (0, 1)"``), ``"a finite number"`` when an infinite bound is
            left open.
        integral_floats: with ``kind=int``, also accept floats of integral value (``2.0``,
            converted to ``2``). Default ``False``.

    NaN satisfies no interval. The accepted value converts to ``kind``.
    """

    def __init__(self, kind: type, low: float | None = None, high: float | None = None, *,
                 closed: str = "both", noun: str | None = None,
                 integral_floats: bool = False) -> None:
        if kind not in (int, float):
            raise TypeError(f"an Interval is of kind int or float, got {kind!r}")
        if closed not in CLOSED:
            raise ValueError(f"closed must be one of {', '.join(map(repr, CLOSED))}, got "
                             f"{closed!r}")
        if low is not None and high is not None and low > high:
            raise ValueError(f"an Interval needs low <= high, got low={low!r}, high={high!r}")
        if integral_floats and kind is not int:
            raise ValueError("integral_floats only applies to Interval(int, ...)")
        self.kind, self.low, self.high, self.closed = kind, low, high, closed
        self.noun, self.integral_floats = noun, integral_floats
        self.names_kind = kind is int

    @property
    def _left_closed(self) -> bool:
        return self.closed in ("both", "left")

    @property
    def _right_closed(self) -> bool:
        return self.closed in ("both", "right")

    def is_of_kind(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, Real):
            return False
        if self.kind is float or isinstance(value, Integral):
            return True
        return self.integral_floats and float(value).is_integer()

    def accepts(self, value: Any) -> bool:
        if not self.is_of_kind(value) or value != value:  # NaN is no point of an interval
            return False
        if self.low is not None and not (value >= self.low if self._left_closed
                                         else value > self.low):
            return False
        return self.high is None or bool(value <= self.high if self._right_closed
                                          else value < self.high)

    def convert(self, value: Any) -> Any:
        return self.kind(value)

    def _bounds(self) -> str:
        low = self.low if self.low is not None and math.isfinite(self.low) else None
        high = self.high if self.high is not None and math.isfinite(self.high) else None
        if low is not None and high is not None:
            return (f"in {'[' if self._left_closed else '('}{_number(low)}, "
                    f"{_number(high)}{']' if self._right_closed else ')'}")
        if low is not None:
            return f"{'>=' if self._left_closed else '>'} {_number(low)}"
        if high is not None:
            return f"{'<=' if self._right_closed else '<'} {_number(high)}"
        return ""

    def _finite_only(self) -> bool:
        return (self.high == math.inf and not self._right_closed) or \
            (self.low == -math.inf and not self._left_closed)

    def describe(self) -> str:
        noun = self.noun
        if noun is None:
            noun = ("an integer" if self.kind is int else
                    "a finite number" if self._finite_only() else "")
        return " ".join(part for part in (noun, self._bounds()) if part) or "a number"

    @property
    def kind_name(self) -> str:
        return "an integer" if self.kind is int else "a number"

    def __repr__(self) -> str:
        return (f"Interval({self.kind.__name__}, {self.low!r}, {self.high!r}, "
                f"closed={self.closed!r})")


class Options(Constraint):
    """One of a fixed set of values of type ``kind``.

    Args:
        kind: the type of the options, e.g. ``str``. A ``bool`` is not an ``int`` here.
        options: the accepted values; their order is kept in messages (a ``set`` is
            sorted).
        ignore_case: compare strings case-insensitively and convert to the option's own
            spelling (``"EASY"`` gives ``"easy"``). Default ``False``.
        what: what an option is, for the message on an unknown one (``"ratio schedule"``
            gives ``"got an unknown ratio schedule 'spiral'"``). Default ``None``.
    """

    def __init__(self, kind: type, options: Iterable[Any], *, ignore_case: bool = False,
                 what: str | None = None) -> None:
        opts = sorted(options) if isinstance(options, (set, frozenset)) \
            else list(dict.fromkeys(options))
        if not opts:
            raise ValueError("Options needs at least one option")
        wrong = [o for o in opts if not isinstance(o, kind)]
        if wrong:
            raise TypeError(f"options {wrong!r} are not of kind {kind.__name__}")
        if ignore_case and kind is not str:
            raise ValueError("ignore_case only applies to Options(str, ...)")
        self.kind, self.options, self.ignore_case, self.what = kind, tuple(opts), ignore_case, what
        self._by_key = {self._key(o): o for o in opts}

    def _key(self, value: Any) -> Any:
        return value.lower() if self.ignore_case else value

    def is_of_kind(self, value: Any) -> bool:
        return isinstance(value, self.kind) and (self.kind is bool or not isinstance(value, bool))

    def accepts(self, value: Any) -> bool:
        try:
            return self.is_of_kind(value) and self._key(value) in self._by_key
        except TypeError:  # unhashable value of the kind
            return False

    def convert(self, value: Any) -> Any:
        return self._by_key[self._key(value)]

    def describe(self) -> str:
        quoted = [repr(o) for o in self.options]
        if len(quoted) <= 2:
            return " or ".join(quoted)
        return "one of " + ", ".join(quoted)

    @property
    def kind_name(self) -> str:
        return "a string" if self.kind is str else f"a {self.kind.__name__}"

    def got(self, value: Any) -> str:
        return f"an unknown {self.what} {value!r}" if self.what else repr(value)

    def __repr__(self) -> str:
        return f"Options({self.kind.__name__}, {self.options!r})"


class Boolean(Constraint):
    """``True`` or ``False`` (a ``bool``; ``0``, ``1`` and ``"yes"`` are refused)."""

    def is_of_kind(self, value: Any) -> bool:
        return isinstance(value, bool)

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)

    def describe(self) -> str:
        return "true or false"

    @property
    def kind_name(self) -> str:
        return "true or false"

    def __repr__(self) -> str:
        return "Boolean()"


class _NoneValue(Constraint):
    """The value ``None`` (written ``None`` in a declaration)."""

    def is_of_kind(self, value: Any) -> bool:
        return value is None

    def accepts(self, value: Any) -> bool:
        return value is None

    def describe(self) -> str:
        return "None"

    @property
    def kind_name(self) -> str:
        return "None"

    def __repr__(self) -> str:
        return "None"


_NONE = _NoneValue()


def _make(constraint: Constraint | None) -> Constraint:
    if constraint is None:
        return _NONE
    if isinstance(constraint, Constraint):
        return constraint
    raise TypeError(f"a constraint is an Interval, Options, Boolean or None, got "
                    f"{constraint!r}")


def _either(words: Sequence[str]) -> str:
    words = list(dict.fromkeys(words))
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


class Param:
    """The constraints of one parameter (the value must satisfy one) and how its message
    reads.

    Args:
        *constraints: :class:`Interval`, :class:`Options`, :class:`Boolean` or ``None``;
            at least one.
        label: a short gloss printed after the name, ``"r"`` gives ``"prune_ratio (r) must
            be ..."``. Default ``None``.
        hint: advice appended to the message after ``"; "`` (defaults, typical values).
            Default ``None``.
    """

    __slots__ = ("constraints", "hint", "label")

    def __init__(self, *constraints: Constraint | None, label: str | None = None,
                 hint: str | None = None) -> None:
        if not constraints:
            raise ValueError("a Param needs at least one constraint")
        self.constraints = tuple(_make(c) for c in constraints)
        self.label, self.hint = label, hint

    def describe(self) -> str:
        """What is accepted, in words (``"a float in [0, 1)"``), with the hint if any."""
        text = _either([c.describe() for c in self.constraints])
        return f"{text}; {self.hint}" if self.hint else text

    def check(self, owner: str, name: str, value: Any) -> Any:
        """``value`` converted by the first constraint that accepts it.

        Args:
            owner: who checks, the message's prefix (a class or function name).
            name: the parameter's name in the message.
            value: the value received.

        Raises:
            ValueError: no constraint accepts ``value`` (see :meth:`message`).
        """
        for constraint in self.constraints:
            if constraint.accepts(value):
                return constraint.convert(value)
        raise ValueError(self.message(owner, name, value))

    def message(self, owner: str, name: str, value: Any) -> str:
        """The refusal of ``value``: ``"OWNER: NAME (LABEL) must be ACCEPTED, got VALUE;
        HINT"``, preceded by ``"NAME must be a number, got VALUE; "`` when the value has
        none of the accepted types and the accepted text does not say the type.

        Args:
            owner: who checks (empty: no prefix).
            name: the parameter's name.
            value: the refused value.
        """
        accepted = _either([c.describe() for c in self.constraints])
        label = f" ({self.label})" if self.label else ""
        of_kind = [c for c in self.constraints if c.is_of_kind(value)]
        got = of_kind[0].got(value) if of_kind else repr(value)
        text = f"{name}{label} must be {accepted}, got {got}"
        if not of_kind and not all(c.names_kind for c in self.constraints):
            kinds = [c.kind_name for c in self.constraints]
            if "a number" in kinds:  # an integer is a number
                kinds = [k for k in kinds if k != "an integer"]
            text = f"{name} must be {_either(kinds)}, got {value!r}; " \
                   f"{name}{label} must be {accepted}"
        return (f"{owner}: " if owner else "") + text + (f"; {self.hint}" if self.hint else "")

    def __repr__(self) -> str:
        extra = "".join(f", {k}={getattr(self, k)!r}" for k in ("label", "hint")
                        if getattr(self, k))
        return f"Param({', '.join(map(repr, self.constraints))}{extra})"


#: what a declaration maps a parameter name to
ConstraintSpec = Param | Constraint | None | Sequence[Constraint | None]


def as_param(spec: ConstraintSpec) -> Param:
    """A declaration entry as a :class:`Param` (one constraint, ``None``, a list or tuple
    of them, or a :class:`Param` itself).

    Args:
        spec: the entry.
    """
    if isinstance(spec, Param):
        return spec
    if isinstance(spec, (list, tuple)):
        return Param(*spec)
    return Param(spec)


def validate_params(owner: str, values: Mapping[str, Any],
                    constraints: Mapping[str, ConstraintSpec]) -> dict[str, Any]:
    """Check every value of ``values`` against its declared constraints; return them
    converted (an ``int`` interval gives an ``int``, a ``float`` interval a ``float``,
    :class:`Options` the option's own spelling).

    Args:
        owner: who checks, named first in every message (a class or function name, e.g.
            ``"InfoBatch"``).
        values: parameter name -> value received; checked in this order, the first refused
            value raises.
        constraints: parameter name -> declaration (see :func:`as_param`), typically a
            class's ``_parameter_constraints``. Names missing from ``values`` are not
            checked.

    Raises:
        ValueError: a value is refused; the message names ``owner``, the parameter, what
            it accepts and the value received.
        TypeError: ``values`` holds a name with no declared constraint (a programming
            error: every checked parameter must be declared).
    """
    out = {}
    for name, value in values.items():
        if name not in constraints:
            raise TypeError(f"{owner}: no constraint is declared for parameter {name!r} "
                            f"(declared: {', '.join(constraints) or 'none'})")
        out[name] = as_param(constraints[name]).check(owner, name, value)
    return out
