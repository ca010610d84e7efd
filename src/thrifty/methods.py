"""The registry of methods by name: data-reduction methods and single-shot pruners.

Each method lives in one file and registers itself here with the place it acts in:
``reducer`` (offline, before training), ``sampler`` (per epoch), ``selector`` (inside a
batch) or ``pruner`` (after training, before one retraining). The engine, the CLI
(``thrifty train --method NAME --method-arg KEY=VALUE``, ``thrifty prune --method NAME``,
``thrifty methods``) and the benchmark find methods only through this registry, so a new
method plugs in without touching them. A method's hyper-parameters are the keyword
parameters of its factory's signature (:attr:`MethodSpec.params`).

The three training-time places make the pieces of a run (:func:`build_pieces`); a pruner is
built by :func:`build_method` with ``places="pruner"`` and runs on a trained model
(``thrifty prune``, :mod:`thrifty.pruning.command`).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: where a method acts, in the order of a run (and of ``thrifty methods``)
PLACES = ("reducer", "sampler", "selector", "pruner")
#: the places that make the pieces of a training run (:func:`build_pieces`)
TRAINING_PLACES = ("reducer", "sampler", "selector")
#: what each place does (``thrifty methods`` headers, errors)
PLACE_NOTES = {
    "reducer": "offline, once before training",
    "sampler": "chooses the samples of each epoch",
    "selector": "chooses the samples to backprop inside each batch",
    "pruner": "single-shot pruning after training, before one retraining",
}
#: the command that runs the methods of each place
PLACE_COMMANDS = {place: "thrifty train --method NAME" for place in TRAINING_PLACES}
PLACE_COMMANDS["pruner"] = "thrifty prune --method NAME --from RUN --out DIR"

# Packages whose modules register methods on import (every module in them is imported).
METHOD_PACKAGES = ["thrifty.offline", "thrifty.sampling", "thrifty.selection",
                   "thrifty.pruning"]

_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


@dataclass(frozen=True)
class MethodSpec:
    """One registered method.

    Attributes:
        name: the name it is used by (``--method NAME``).
        place: one of :data:`PLACES`.
        factory: the class (or callable) building it from its hyper-parameters.
        summary: one line for ``thrifty methods``.
    """

    name: str
    place: str
    factory: Callable[..., Any]
    summary: str

    @property
    def params(self) -> dict[str, inspect.Parameter]:
        """The hyper-parameters: the named parameters of the factory's signature."""
        return {n: p for n, p in inspect.signature(self.factory).parameters.items()
                if n != "self" and p.kind not in _VARIADIC}


METHODS: dict[str, MethodSpec] = {}


def register_method(name: str, place: str, summary: str = "") -> Callable[[Any], Any]:
    """Class decorator registering a method under ``name`` for ``place``.

    Args:
        name: the method's name (``--method NAME``).
        place: one of :data:`PLACES`.
        summary: one line for ``thrifty methods`` (default ``""``: the first line of the
            class docstring).

    Raises:
        ValueError: ``place`` is not one of :data:`PLACES`.
    """
    if place not in PLACES:
        raise ValueError(f"place must be one of {PLACES}, got {place!r}")

    def deco(cls):
        doc = (cls.__doc__ or "").strip().splitlines()
        METHODS[name] = MethodSpec(name, place, cls, summary or (doc[0] if doc else ""))
        return cls

    return deco


def config_signature(config_class: type) -> inspect.Signature:
    """The keyword-only signature of a config dataclass's fields (annotations resolved,
    default factories called), for a factory that takes ``**options`` and passes them to
    ``config_class``: set it as the factory's ``__signature__`` so that its
    hyper-parameters are discoverable like any other method's.

    Args:
        config_class: a dataclass.
    """
    hints = typing.get_type_hints(config_class)
    params = []
    for f in dataclasses.fields(config_class):
        if not f.init:
            continue
        default: Any = inspect.Parameter.empty
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                        default=default, annotation=hints.get(f.name, f.type)))
    return inspect.Signature(params)


def _load_all() -> None:
    for pkg_name in METHOD_PACKAGES:
        pkg = importlib.import_module(pkg_name)
        for info in pkgutil.iter_modules(pkg.__path__, pkg_name + "."):
            importlib.import_module(info.name)


def _as_places(places: str | Sequence[str]) -> tuple[str, ...]:
    """``places`` as a tuple (one place may be given as a string); unknown places refused."""
    places = (places,) if isinstance(places, str) else tuple(places)
    unknown = [p for p in places if p not in PLACES]
    if unknown:
        raise ValueError(f"unknown place(s) {', '.join(map(repr, unknown))}; places: "
                         f"{', '.join(PLACES)}")
    return places


def available_methods(places: str | Sequence[str] = PLACES) -> dict[str, MethodSpec]:
    """The registered methods acting in ``places``, by name (sorted).

    Args:
        places: the place or places to list (default: all of :data:`PLACES`).
    """
    places = _as_places(places)
    _load_all()
    return {n: s for n, s in sorted(METHODS.items()) if s.place in places}


def _describe(places: Sequence[str]) -> tuple[str, str]:
    """``(what a method of these places is called, what the list of them is called)``."""
    if len(places) == 1:
        return places[0], f"available {places[0]}s"
    if set(places) == set(TRAINING_PLACES):
        return "training-time method", "available"
    return "method", "available"


def get_method(name: str, places: str | Sequence[str] = PLACES) -> MethodSpec:
    """The spec of the method ``name``, which must act in one of ``places``.

    Args:
        name: the method's name.
        places: the place or places accepted here (default: all of :data:`PLACES`).

    Raises:
        ValueError: ``name`` is not registered (the message lists the methods of
            ``places``), or acts in another place (the message says how to run it).
    """
    places = _as_places(places)
    every = available_methods()
    here = ", ".join(n for n, s in every.items() if s.place in places) or "none"
    what, listed = _describe(places)
    if name not in every:
        from thrifty.recipes import RECIPES
        if name in RECIPES and not set(places) & set(TRAINING_PLACES):
            raise ValueError(f"{name!r} is a training recipe (`thrifty train --method "
                             f"{name}`), not a {what}; {listed}: {here}")
        if name in RECIPES:
            r = RECIPES[name]
            extra = [f"method_args={r.method_args}"] if r.method_args else []
            how = [f"train {100 * r.share:g}% of your epochs (schedules spanning them)"
                   ] if r.share < 1 else []
            how += [f"run its scoring forwards under your own autocast for {r.options}"
                    ] if r.options else []
            call = ", ".join([repr("+".join(r.method)), "dataset", "epochs=...", *extra])
            raise ValueError(f"{name!r} is a recipe of `thrifty train`, `thrifty bench` and "
                             f"config files; in your own loop name its methods: "
                             f"Thrift({call})" + (f", and {' and '.join(how)}" if how else "")
                             + f" (see {r.card})")
        unknown = "method" if what == "training-time method" else what
        raise ValueError(f"unknown {unknown} {name!r}; {listed}: {here} "
                         "(see `thrifty methods`)")
    spec = every[name]
    if spec.place in places:
        return spec
    command = PLACE_COMMANDS[spec.place].replace("NAME", name)
    if spec.place == "pruner":
        how = (f"prune a trained run with `{command}`, then retrain once with the command "
               "it prints")
    else:
        how = f"train with it through `{command}`"
    message = (f"method {name!r} is a {spec.place} ({PLACE_NOTES[spec.place]}), not a "
               f"{what}: {how}")
    if len(places) == 1:
        message += f"; {listed}: {here}"
    raise ValueError(message)


def split_method_args(names: list[str], args: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Assign ``KEY=VALUE`` / ``METHOD.KEY=VALUE`` arguments to methods.

    An argument without a method prefix goes to the only method; with several methods the
    prefix is required.

    Args:
        names: the methods of the run.
        args: the arguments, ``KEY`` or ``METHOD.KEY`` to value.
    """
    per: dict[str, dict[str, Any]] = {n: {} for n in names}
    for key, value in args.items():
        if "." in key:
            method, _, sub = key.partition(".")
            if method not in per:
                raise ValueError(f"method argument {key!r} names method {method!r}, which is "
                                 f"not in this run (methods: {', '.join(names) or 'none'})")
            per[method][sub] = value
        elif len(names) == 1:
            per[names[0]][key] = value
        else:
            raise ValueError(f"method argument {key!r} is ambiguous with "
                             f"{len(names)} methods; write it as METHOD.{key}=VALUE")
    return per


def build_method(name: str, kwargs: dict[str, Any],
                 places: str | Sequence[str] = PLACES) -> Any:
    """Instantiate a method by name with its hyper-parameters (clear errors on bad input).

    Args:
        name: the method's name.
        kwargs: its hyper-parameters (names as in its factory's signature).
        places: the place or places accepted (default: all of :data:`PLACES`); ``"pruner"``
            for ``thrifty prune``.

    Raises:
        ValueError: an unknown method or one of another place (see :func:`get_method`), or
            a hyper-parameter the method does not have (the message lists those it has).
    """
    spec = get_method(name, places)
    params = spec.params
    bad = [k for k in kwargs if k not in params]
    if bad:
        raise ValueError(f"method {name!r} has no hyper-parameter {', '.join(bad)}; "
                         f"it accepts: {', '.join(params)}")
    return spec.factory(**kwargs)


def training_methods(names: Sequence[str]) -> list[MethodSpec]:
    """The specs of a training run's methods; refuses pruners and unknown names.

    Args:
        names: the run's method names (``--method``).

    Raises:
        ValueError: an unknown name (listing the training-time methods), or a pruner
            (pointing to ``thrifty prune``).
    """
    return [get_method(n, TRAINING_PLACES) for n in names]


def build_pieces(names: list[str], args: dict[str, Any]) -> dict[str, Any]:
    """Build the reducer/sampler/selector of a run from method names; at most one per place.

    Args:
        names: the run's method names; pruners are refused (they run after training,
            through ``thrifty prune``).
        args: their hyper-parameters, ``KEY`` or ``METHOD.KEY`` to value (see
            :func:`split_method_args`).

    Returns:
        ``{place: piece}`` for the places the methods (and their companions) fill.
    """
    specs = training_methods(names)
    per = split_method_args(names, args)
    pieces: dict[str, Any] = {}
    for spec in specs:
        obj = build_method(spec.name, per[spec.name], TRAINING_PLACES)
        # a method may bring pieces for other places (IDS's easy->hard switch sampler)
        for place, piece in [(spec.place, obj), *obj.companions().items()]:
            if place in pieces:
                raise ValueError(f"methods {pieces[place].name!r} and {piece.name!r} both act "
                                 f"as the {place}; a run can have one of each place")
            pieces[place] = piece
    return pieces


def doc_args(obj: Any) -> dict[str, str]:
    """``{name: meaning}`` from the ``Args:`` section of ``obj``'s docstring (a line
    ``name: text`` or ``a, b: text``, continued on more indented lines)."""
    lines = inspect.getdoc(obj) or ""
    out: dict[str, str] = {}
    names: list[str] = []
    inside, indent = False, None
    for line in lines.splitlines():
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            inside, indent = True, None
            continue
        if not inside:
            continue
        if not stripped:
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth < indent:  # the section ended
            inside = False
            continue
        head, sep, text = stripped.partition(": ")
        keys = [k.strip() for k in head.split(",")]
        if depth == indent and sep and all(k.isidentifier() for k in keys):
            names = keys
            for k in names:
                out[k] = text
        elif names:
            for k in names:
                out[k] += " " + stripped
    return out


def describe_method(name: str) -> str:
    """A method's card for the terminal: place, summary, and each hyper-parameter with its
    default, accepted values (the declared constraints) and meaning (the docstring): one
    source for ``thrifty methods NAME``."""
    spec = get_method(name)
    constraints = getattr(spec.factory, "_parameter_constraints", {}) or {}
    meanings = doc_args(spec.factory)
    lines = [f"{spec.name} ({spec.place}: {PLACE_NOTES[spec.place]})", f"  {spec.summary}",
             f"  run it: {PLACE_COMMANDS[spec.place].replace('NAME', spec.name)}", "",
             "hyper-parameters (--method-arg KEY=VALUE):"]
    for pname, param in spec.params.items():
        default = "required" if param.default is inspect.Parameter.empty \
            else repr(param.default)
        accepted = constraints.get(pname)
        line = f"  {pname} = {default}"
        if accepted is not None:
            line += f"  [{accepted.describe()}]"
        lines.append(line)
        if pname in meanings:
            lines.append(f"      {meanings[pname]}")
    if not spec.params:
        lines.append("  none")
    return "\n".join(lines)


def declared_methods() -> dict[str, tuple[str, str]]:
    """``{name: (place, summary)}`` read from the ``@register_method(...)`` decorators in
    the method packages' source, without importing them (so without PyTorch): what
    ``thrifty methods`` lists. The same decorators fill :data:`METHODS` on import; a test
    checks that both agree."""
    import ast
    from pathlib import Path

    root = Path(__file__).parent
    out: dict[str, tuple[str, str]] = {}
    for pkg in METHOD_PACKAGES:
        for path in sorted((root / pkg.split(".", 1)[1]).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ClassDef):
                    continue
                for deco in node.decorator_list:
                    if isinstance(deco, ast.Call) and getattr(deco.func, "id", "") == \
                            "register_method":
                        args = [ast.literal_eval(a) for a in deco.args]
                        summary = args[2] if len(args) > 2 else \
                            ((ast.get_docstring(node) or "").strip().splitlines() or [""])[0]
                        out[args[0]] = (args[1], summary)
    return dict(sorted(out.items()))
