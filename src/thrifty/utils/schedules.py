"""Ratio schedules: which share of the pool a per-epoch sampler loads at each epoch.

Seed 002 (Boumendil et al., ICTAI 2023) replaces the fixed selectivity ratio S by a decreasing
one, ``S_t = S_0 * exp(-alpha * floor(t / R))``, changed only when the subset is renewed (every
R epochs), with alpha given directly or chosen from a target final ratio S_N or a target mean.
:class:`RatioSchedule` offers that exponential shape and four others (constant, linear, cosine,
step) to every method that has a ratio. The renewing samplers (random-adaptive, loss-adaptive)
use it with their period R; :class:`EpochRatio` is the same schedule read once per epoch
(R = 1) by the methods whose ratio acts every epoch (InfoBatch's prune ratio, the share kept
by ASSIST's loss selectors). Both take the same options, declared in
:data:`RatioSchedule._parameter_constraints` and checked here only
(:func:`~thrifty.utils.params.validate_params`). A subset of a share S of n samples holds
:func:`subset_size` ``= ceil(S * n)`` of them (:func:`~thrifty.utils.shares.share_count`).

Epoch indexing (the convention of this module)
----------------------------------------------
Epochs are 0-based, ``t = 0 .. N-1`` (the engine's ``ctx.epoch``). Renewal ``k = floor(t / R)``
happens at the epochs ``t = k * R`` -- the first one at ``t = 0`` -- and its ratio holds for the
R epochs ``kR .. kR + R - 1``. The last renewal of an N-epoch run is ``K = floor((N - 1) / R)``
and the *final ratio* S_N is the ratio in force in the last epoch, ``S_0 * exp(-alpha * K)``.
Hence ``alpha = ln(S_0 / S_N) / K``. The paper's Algorithm 1 counts epochs from 1 and renews
at ``t % R == 0``; read literally, its first subset serves R - 1 epochs and, when R divides N,
a last subset serves the final epoch alone. We keep whole periods instead, which is why K is
``floor((N - 1) / R)`` where the paper's formula for alpha divides by ``floor(N / R)``. The two
agree whenever R does not divide N, as in the paper's example (N = 160, R = 3: K = 53). When R
divides N they differ: N = 150, R = 3, S_0 = 0.8, S_N = 0.05 gives K = 49 and
alpha = 0.05658 here, against floor(N / R) = 50 and alpha = 0.05545 with the paper's formula.
With whole periods from epoch 0 that alpha's 50th renewal would fall on epoch 150, after the
run, so the last epoch would train on 0.8 * exp(-0.05545 * 49) = 5.29% instead of the 5%
asked for.

The *mean ratio* is, by default, the paper's ``S_avg``: the mean of the K + 1 ratios the
schedule generates (one per renewal). This reproduces the paper's example: S_0 = 0.8,
alpha = 0.05, N = 160, R = 3 gives S_N = 5.65% and S_avg = 28.34%. ``mean_over="epochs"``
instead averages the ratio in force over the N epochs, which is the share of the data actually
loaded (28.62% in that example, because the last period is cut to one epoch).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq

from thrifty.utils.params import Interval, Options, Param, validate_params
from thrifty.utils.shares import share_count

__all__ = ["MEAN_OVER", "SHAPES", "SHARE", "EpochRatio", "RatioSchedule", "check_ratio",
           "last_renewal", "subset_size"]

SHAPES = ("constant", "exponential", "linear", "cosine", "step")
MEAN_OVER = ("renewals", "epochs")

#: a share of the pool: in (0, 1]
SHARE = Interval(float, 0, 1, closed="right", noun="a share")
_SHARE_HINT = "1 keeps the whole pool, 0.4 keeps 40% of it"

# what sets the decay of each shape, besides final_ratio and mean_ratio
_OWN_PARAM = {"exponential": "alpha", "step": "gamma"}


def subset_size(ratio: float, n: int) -> int:
    """``ceil(ratio * n)``, at least 1 (0 of an empty pool), ignoring floating-point noise
    (0.55 of 100 is 55): :func:`~thrifty.utils.shares.share_count` with its defaults.

    Args:
        ratio: the share, in [0, 1].
        n: the number of samples to draw from.
    """
    return share_count(ratio, n)


def check_ratio(value: float, name: str = "ratio", owner: str = "RatioSchedule") -> float:
    """Refuse a share outside (0, 1] (the constraint :data:`SHARE`); return it as a float.

    Args:
        value: the share.
        name: the parameter's name in the message. Default ``"ratio"``.
        owner: who checks, the message's prefix. Default ``"RatioSchedule"``.
    """
    return validate_params(owner, {name: value}, {name: Param(SHARE, hint=_SHARE_HINT)})[name]


def last_renewal(epochs: int, period: int) -> int:
    """Index K of the last renewal of an ``epochs``-long run: ``floor((epochs - 1) / period)``."""
    return (epochs - 1) // period


class RatioSchedule:
    """The share S_t of the pool to select at epoch t, changed only at renewals.

    Shapes, with renewal index ``k = floor(t / R)``, last renewal K and final ratio S_N:

    - ``constant``: ``S_0``.
    - ``exponential`` (seed 002, eq. 1): ``S_0 * exp(-alpha * k)``.
    - ``linear``: ``S_0 + (S_N - S_0) * k / K``.
    - ``cosine``: ``S_N + (S_0 - S_N) * (1 + cos(pi * k / K)) / 2``.
    - ``step``: ``S_0 * gamma ** floor(k * R / step_size)``: a drop by gamma every
      ``step_size`` epochs, applied at the next renewal.

    Every shape only decreases. A decaying shape needs exactly one of: ``alpha``
    (exponential), ``gamma`` (step), ``final_ratio`` or ``mean_ratio`` (any). A target mean is
    solved numerically (:func:`scipy.optimize.brentq` over the final ratio, the mean being
    increasing in it). See the module docstring for the epoch indexing.

    Args:
        shape: one of ``constant``, ``exponential``, ``linear``, ``cosine``, ``step``.
            Default ``"constant"``.
        ratio: S_0, the share at epoch 0, in (0, 1]. Default 1.0.
        final_ratio: target S_N, the share in the last epoch, in (0, ratio]. Default ``None``.
        alpha: decay per renewal of the exponential shape, >= 0. Default ``None``.
        gamma: factor of each drop of the step shape, in (0, 1]. Default ``None``.
        mean_ratio: target mean share, in (0, ratio]. Default ``None``.
        mean_over: what ``mean_ratio`` averages: ``"renewals"`` (the paper's S_avg, one value
            per renewal) or ``"epochs"`` (the share of data loaded over the run). Default
            ``"renewals"``.
        period: R, epochs between renewals, >= 1. Default 1.
        step_size: epochs between drops of the step shape, >= 1; required for ``step``.
            Default ``None``.
        name: what the method calls S_0, used in error messages (e.g. ``"prune_ratio"``).
            Default ``"ratio"``.

    Call :meth:`resolve` with the run's number of epochs before :meth:`ratio_at`; it solves
    for ``final_ratio_`` (and ``alpha_`` or ``gamma_``) and refuses targets that no schedule
    of that shape reaches.
    """

    _parameter_constraints = {
        "shape": Options(str, SHAPES, what="ratio schedule"),
        "ratio": Param(SHARE, hint=_SHARE_HINT),
        "final_ratio": Param(SHARE, None, hint="the share in the last epoch"),
        "alpha": Param(Interval(float, 0, math.inf, closed="left"), None,
                       hint="0 keeps the ratio constant"),
        "gamma": Param(Interval(float, 0, 1, closed="right"), None,
                       label="the factor of each step"),
        "mean_ratio": Param(SHARE, None, hint="the target mean share"),
        "mean_over": Param(Options(str, MEAN_OVER),
                           hint="'renewals' is the paper's S_avg, 'epochs' the share of data "
                                "loaded"),
        "period": Param(Interval(int, 1, None, closed="left"),
                        label="R, epochs between renewals"),
        "step_size": Param(Interval(int, 1, None, closed="left", integral_floats=True), None,
                           label="epochs between drops of the step schedule"),
        "epochs": Interval(int, 1, None, closed="left"),
        "over": Options(str, MEAN_OVER),
    }

    def __init__(self, shape: str = "constant", ratio: float = 1.0, *,
                 final_ratio: float | None = None, alpha: float | None = None,
                 gamma: float | None = None, mean_ratio: float | None = None,
                 mean_over: str = "renewals", period: int = 1,
                 step_size: int | None = None, name: str = "ratio") -> None:
        constraints = self._parameter_constraints
        v = validate_params("RatioSchedule", {
            "shape": shape, "mean_over": mean_over, "period": period}, constraints)
        ratio = validate_params("RatioSchedule", {name: ratio}, {name: constraints["ratio"]})[name]
        v.update(validate_params("RatioSchedule", {
            "final_ratio": final_ratio, "mean_ratio": mean_ratio, "alpha": alpha, "gamma": gamma,
            "step_size": step_size}, constraints))
        final_ratio, mean_ratio = v["final_ratio"], v["mean_ratio"]
        self.shape, self.ratio, self.name = shape, ratio, name
        self.period, self.mean_over = period, mean_over
        given = {k: v for k, v in (("final_ratio", final_ratio), ("alpha", alpha),
                                   ("gamma", gamma), ("mean_ratio", mean_ratio)) if v is not None}
        allowed = {"final_ratio", "mean_ratio", _OWN_PARAM.get(shape)} - {None}
        if shape == "constant" and given:
            raise ValueError(f"the constant schedule takes no {', '.join(given)}; give only "
                             f"{name}, or choose a decaying schedule (exponential, linear, "
                             "cosine, step)")
        wrong = sorted(set(given) - allowed)
        if wrong:
            raise ValueError(f"the {shape} schedule has no {', '.join(wrong)}; it is set by one "
                             f"of {', '.join(sorted(allowed))}")
        if shape != "constant" and len(given) != 1:
            what = "none" if not given else ", ".join(sorted(given))
            raise ValueError(f"the {shape} schedule needs exactly one of "
                             f"{', '.join(sorted(allowed))} to set its decay; got {what}")
        for what, target in (("final_ratio", final_ratio), ("mean_ratio", mean_ratio)):
            if target is not None and target > self.ratio:
                raise ValueError(f"{what} {target} is above the initial {name} {self.ratio}, "
                                 f"but the schedules only decrease; lower {what} or raise "
                                 f"{name}")
        if shape == "step" and step_size is None:
            raise ValueError("the step schedule needs step_size, the epochs between drops, "
                             "an integer >= 1; got None")
        self.final_ratio, self.alpha, self.gamma = final_ratio, v["alpha"], v["gamma"]
        if shape != "step" and step_size is not None:
            raise ValueError(f"step_size is a parameter of the step schedule, not of {shape}; "
                             "drop it or use schedule=step")
        self.mean_ratio = mean_ratio
        self.step_size = v["step_size"]
        self.epochs: int | None = None
        self.final_ratio_, self.alpha_, self.gamma_ = self.ratio, 0.0, 1.0

    # ------------------------------------------------------------------ shape
    def _drops(self, k: int) -> int:
        return (k * self.period) // self.step_size if self.step_size else 0

    def _value(self, k: int, end: float, last: int) -> float:
        """Ratio at renewal ``k`` of a schedule ending at ``end`` at renewal ``last``."""
        s0 = self.ratio
        if self.shape == "constant" or last == 0 or end == s0:
            return s0
        if self.shape == "exponential":
            return s0 * math.exp(-math.log(s0 / end) * k / last)
        if self.shape == "linear":
            return s0 + (end - s0) * k / last
        if self.shape == "cosine":
            return end + (s0 - end) * (1 + math.cos(math.pi * k / last)) / 2
        return s0 * (end / s0) ** (self._drops(k) / self._drops(last))

    def _renewal_values(self, end: float, epochs: int) -> np.ndarray:
        last = last_renewal(epochs, self.period)
        return np.array([self._value(k, end, last) for k in range(last + 1)])

    def _mean(self, end: float, epochs: int, over: str) -> float:
        values = self._renewal_values(end, epochs)
        if over == "renewals":
            return float(values.mean())
        return float(values[np.arange(epochs) // self.period].mean())

    # ------------------------------------------------------------------ public
    def resolve(self, epochs: int) -> RatioSchedule:
        """Fix the run length; solve ``final_ratio_`` (and ``alpha_``/``gamma_``). Returns self.

        Raises ``ValueError`` when the target cannot be reached in ``epochs`` epochs.
        """
        validate_params("RatioSchedule", {"epochs": epochs}, self._parameter_constraints)
        last = last_renewal(epochs, self.period)
        s0 = self.ratio
        if self.shape == "constant":
            end = s0
        elif last == 0 or (self.shape == "step" and self._drops(last) == 0):
            end = self.final_ratio if self.final_ratio is not None else self.mean_ratio
            if end is not None and not math.isclose(end, s0):
                why = (f"{epochs} epochs with period {self.period} have a single renewal"
                       if last == 0 else f"step_size {self.step_size} leaves no drop before the "
                       f"last renewal at epoch {last * self.period}")
                raise ValueError(f"the ratio cannot decrease: {why}. Lower period or "
                                 "step_size, train longer, or use a constant ratio")
            end = s0
        elif self.alpha is not None:
            end = s0 * math.exp(-self.alpha * last)
        elif self.gamma is not None:
            end = s0 * self.gamma ** self._drops(last)
        elif self.final_ratio is not None:
            end = self.final_ratio
        else:
            end = self._solve_mean(epochs)
        self.epochs, self.final_ratio_ = epochs, float(end)
        self.alpha_ = math.log(s0 / end) / last if last else 0.0
        drops = self._drops(last)
        self.gamma_ = (end / s0) ** (1 / drops) if drops else 1.0
        return self

    def _solve_mean(self, epochs: int) -> float:
        target, s0 = self.mean_ratio, self.ratio
        if math.isclose(target, s0):
            return s0
        tiny = s0 * 1e-9
        low = self._mean(tiny, epochs, self.mean_over)
        if target <= low:
            fix = ("train longer or renew more often (smaller period)"
                   if self.shape == "exponential" else
                   "use the exponential shape, which reaches the lowest means")
            raise ValueError(
                f"mean_ratio {target} is not reachable: the {self.shape} schedule from ratio "
                f"{s0} over {epochs} epochs (period {self.period}) has a mean over "
                f"{self.mean_over} in ({low:.4g}, {s0}]. Raise mean_ratio, lower {self.name}, "
                f"or {fix}")
        return brentq(lambda end: self._mean(end, epochs, self.mean_over) - target, tiny, s0,
                      xtol=1e-15, rtol=1e-12)

    def _require_resolved(self) -> int:
        if self.epochs is None:
            raise RuntimeError("call resolve(epochs) before asking the schedule for ratios")
        return self.epochs

    def ratio_at(self, epoch: int) -> float:
        """The share S_t in force at 0-based ``epoch``."""
        epochs = self._require_resolved()
        if not 0 <= epoch < epochs:
            raise ValueError(f"epoch {epoch} is outside the run's 0 .. {epochs - 1}")
        return self._value(epoch // self.period, self.final_ratio_,
                           last_renewal(epochs, self.period))

    def ratios(self) -> list[float]:
        """The share in force at every epoch of the run."""
        return [self.ratio_at(t) for t in range(self._require_resolved())]

    def renewal_ratios(self) -> list[float]:
        """The ratios generated at the renewals (one per renewal)."""
        return self._renewal_values(self.final_ratio_, self._require_resolved()).tolist()

    def mean(self, over: str | None = None) -> float:
        """Mean ratio over ``renewals`` or ``epochs`` (default: ``mean_over``)."""
        over = over or self.mean_over
        validate_params("RatioSchedule", {"over": over}, self._parameter_constraints)
        return self._mean(self.final_ratio_, self._require_resolved(), over)

    def __repr__(self) -> str:
        return (f"RatioSchedule({self.shape!r}, ratio={self.ratio}, period={self.period}, "
                f"final_ratio_={self.final_ratio_:.4g}, epochs={self.epochs})")


class EpochRatio:
    """A method's ratio read once per epoch: a constant, or a :class:`RatioSchedule` with one
    value per epoch (R = 1).

    The options are those of the renewing samplers (``schedule``, ``final_ratio``, ``alpha``,
    ``gamma``, ``mean_ratio``, ``mean_over``, ``step_size``) and are checked by
    :class:`RatioSchedule`; with R = 1 the means over renewals and over epochs coincide. The
    constant schedule without options returns ``ratio`` unchanged, whatever its range (e.g.
    InfoBatch's prune ratio 0), so a method keeps its own check of the constant value.

    Args:
        ratio: S_0, the value at epoch 0 (in (0, 1] when a decaying schedule is given).
        schedule: ``constant`` (default), ``exponential``, ``linear``, ``cosine`` or ``step``.
        final_ratio, alpha, gamma, mean_ratio, mean_over, step_size: see
            :class:`RatioSchedule`. Defaults ``None`` (``mean_over``: ``"renewals"``).
        name: what the method calls the ratio, for error messages. Default ``"ratio"``.

    Call :meth:`resolve` with the number of epochs the schedule spans, then :meth:`at`.
    """

    _parameter_constraints = {
        "epochs": Param(Interval(int, 1, None, closed="left"),
                        label="the number of epochs the schedule spans"),
    }

    def __init__(self, ratio: float, schedule: str = "constant", *,
                 final_ratio: float | None = None, alpha: float | None = None,
                 gamma: float | None = None, mean_ratio: float | None = None,
                 mean_over: str = "renewals", step_size: int | None = None,
                 name: str = "ratio") -> None:
        self.ratio, self.name = ratio, name
        options = (final_ratio, alpha, gamma, mean_ratio, step_size)
        self.schedule: RatioSchedule | None = None
        if schedule != "constant" or any(v is not None for v in options) \
                or mean_over != "renewals":
            self.schedule = RatioSchedule(schedule, ratio, final_ratio=final_ratio,
                                          alpha=alpha, gamma=gamma, mean_ratio=mean_ratio,
                                          mean_over=mean_over, period=1, step_size=step_size,
                                          name=name)

    @property
    def scheduled(self) -> bool:
        """Whether the value changes over the run (a schedule other than a bare constant)."""
        return self.schedule is not None

    def resolve(self, epochs: int) -> EpochRatio:
        """Fix the number of epochs the schedule spans (see :meth:`RatioSchedule.resolve`).
        Returns self."""
        if self.schedule is not None:
            validate_params(f"EpochRatio ({self.name})", {"epochs": epochs},
                            self._parameter_constraints)
            self.schedule.resolve(epochs)
        return self

    def at(self, epoch: int) -> float:
        """The value in force at 0-based ``epoch``; epochs past the span keep the last value."""
        if self.schedule is None:
            return self.ratio
        last = self.schedule._require_resolved() - 1
        return self.schedule.ratio_at(min(max(epoch, 0), last))

    def __repr__(self) -> str:
        return f"EpochRatio({self.name}={self.ratio}, schedule={self.schedule!r})"
