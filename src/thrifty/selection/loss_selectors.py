"""Loss-based sample selectors of the ASSIST thesis' preliminary work (seed 004, §3.2.1).

Smedås, *ASSIST: Accuracy-driven Sampling Strategies for Improved Supervised Training*
(master's thesis, NTNU, 2021) first chose samples by their loss (Alg 3, 4) and later put an
accuracy filter in front of such a selector (Alg 5, 6); §5.4 proposes every combination of
selector and filter. This module is the selector half, as pure functions of a 1-D tensor of
per-sample losses that return the **sorted positions** (CPU long tensor) of the chosen
samples, plus :class:`LossSelector`, the validated, configured form used by
:class:`~thrifty.selection.assist.AssistSelector` (``selector=...``).

- :func:`top_k` (Alg 3): the k largest losses.
- :func:`top_q`: every loss ``>=`` the q-quantile of the losses.
- :func:`loss_weighted`: k random draws without replacement, probability proportional to
  the loss.
- :func:`q_split` (Alg 4): sort ascending, split the cumulative ``loss ** p`` into
  ``buckets`` equal portions, draw ``k / buckets`` samples at random from each.

``k`` is either a **count** (an integer >= 1: at most k samples out of the losses given,
i.e. per raw batch inside ASSIST) or a **share** (a float in (0, 1): ``ceil(k * n)`` of the
n losses given, at least one; :func:`~thrifty.utils.shares.share_count`). See
:func:`resolve_k`. The hyper-parameters are declared once, in :data:`CONSTRAINTS`.

Randomness only comes from the ``generator`` argument (inside the engine: the run's method
generator ``ctx.generator``), so a seeded generator gives the same draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from thrifty.utils.params import Interval, Options, Param, validate_params
from thrifty.utils.shares import share_count

SELECTORS = ("all", "top-k", "top-q", "weighted", "q-split")

_EMPTY = torch.empty(0, dtype=torch.long)

# ---------------------------------------------------------------------- constraints
#: what each hyper-parameter of the loss selectors accepts (:class:`LossSelector` and the
#: functions check against it)
CONSTRAINTS = {
    "selector": Options(str, SELECTORS),
    "k": Param(Interval(int, 1, None, closed="left", integral_floats=True, noun="a count"),
               Interval(float, 0, 1, closed="neither", noun="a share"),
               hint="a count takes that many samples (32 or 32.0), a share that part of the "
                    "samples given (0.25); a value that is neither is refused"),
    "q": Param(Interval(float, 0, 1, closed="neither", noun="a quantile"),
               hint="top-q keeps the losses >= the q-quantile; typically 0.5"),
    "p": Param(Interval(float, 0, math.inf, closed="neither", noun="a finite power"),
               hint="q-split weighs losses by loss ** p; typically 2 or more"),
    "buckets": Param(Interval(int, 2, None, closed="left", integral_floats=True),
                     hint="q-split's q; typically 2"),
    "share": Interval(float, 0, 1, closed="neither"),
}


def resolve_k(k: float, n: int) -> int:
    """How many of ``n`` samples ``k`` asks for: ``min(k, n)`` for a count, ``ceil(k * n)``
    (at least 1, at most n) for a share; 0 when ``n == 0``.

    The share is counted by :func:`~thrifty.utils.shares.share_count`, which ignores float
    noise (``0.3 * 10`` gives 3).

    Args:
        k: a count (integer >= 1, also written ``32.0``) or a share in (0, 1).
        n: the number of samples to choose from.

    Raises:
        ValueError: for a ``k`` that is neither (``k <= 0``, booleans, non-numbers, NaN,
            non-integer values > 1).
    """
    k = validate_params("resolve_k", {"k": k}, CONSTRAINTS)["k"]
    if n <= 0:
        return 0
    if isinstance(k, int):
        return min(k, n)
    return share_count(k, n)


def _losses(losses: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(losses).detach().to("cpu", torch.float64).flatten()
    if not bool(torch.isfinite(x).all()):
        raise ValueError("loss selectors need finite losses (got NaN or inf)")
    return x


# ---------------------------------------------------------------------- selectors
def top_k(losses: torch.Tensor, k: float) -> torch.Tensor:
    """Sorted positions of the k largest losses (Alg 3). Ties are broken by
    :func:`torch.topk`.

    Args:
        losses: 1-D tensor of per-sample losses (finite).
        k: count (integer >= 1) or share in (0, 1) of ``len(losses)``.
    """
    x = _losses(losses)
    m = resolve_k(k, len(x))
    if m == 0:
        return _EMPTY.clone()
    return torch.topk(x, m).indices.sort().values


def top_q(losses: torch.Tensor, q: float) -> torch.Tensor:
    """Sorted positions of the losses ``>=`` their q-quantile (linear interpolation, as
    :func:`torch.quantile`). Keeps about ``(1 - q) * n`` samples, at least one.

    Args:
        losses: 1-D tensor of per-sample losses (finite).
        q: quantile in (0, 1); 0.5 keeps the upper half.
    """
    q = validate_params("top_q", {"q": q}, CONSTRAINTS)["q"]
    x = _losses(losses)
    if len(x) == 0:
        return _EMPTY.clone()
    return torch.nonzero(x >= torch.quantile(x, q)).flatten()


def loss_weighted(losses: torch.Tensor, k: float, generator: torch.Generator | None = None
                  ) -> torch.Tensor:
    """Sorted positions of k samples drawn at random **without replacement** with
    probability **proportional to the loss** (the "loss weighted random selector").

    The thesis leaves open whether the weights follow the loss or its rank and whether
    draws are with replacement; proportional to the loss is the natural reading of "the
    sorted loss as a probability density", and without replacement keeps duplicates out of
    a training batch. Samples of zero (or negative) loss have weight 0 and are never drawn,
    so fewer than k samples come back when fewer than k losses are positive.

    Args:
        losses: 1-D tensor of per-sample losses (finite).
        k: count (integer >= 1) or share in (0, 1) of ``len(losses)``.
        generator: randomness of the draws. Default ``None`` (torch's global generator).
    """
    x = _losses(losses)
    w = x.clamp_min(0.0)
    m = min(resolve_k(k, len(x)), int((w > 0).sum()))
    if m == 0:
        return _EMPTY.clone()
    return torch.multinomial(w, m, replacement=False, generator=generator).sort().values


def q_split_buckets(losses: torch.Tensor, p: float = 2.0, buckets: int = 2) -> torch.Tensor:
    """Bucket (0 = lowest losses) of each sample under Alg 4's split of the cumulative
    ``loss ** p`` into ``buckets`` equal portions.

    The samples are sorted by ascending loss; sample j of that order owns the slice
    ``[cuml[j] - w[j], cuml[j])`` of the total mass ``cuml[-1]`` (``w = loss ** p``,
    ``cuml = cumsum(w)``) and goes to the bucket that holds the **middle** of its slice:
    ``floor(buckets * (cuml[j] - w[j] / 2) / cuml[-1])``. This is the intended algorithm
    without the thesis' indexing bugs (``cuml`` indexed by the original instead of the
    sorted position; ``i``/``j`` mixed up). It equals the thesis' walk ("append to bucket b,
    move on when ``cuml >= width * (b + 1)``") except for the one sample straddling each
    boundary: the walk keeps it in the lower bucket, which with a high p leaves the few
    dominant high-loss samples in bucket 0 and the top bucket empty, the opposite of the
    stated purpose (a 1/q share of the picks among the few highest losses).

    Negative losses count as 0. When every loss is 0 the mass is split by rank (as if all
    losses were equal).

    Args:
        losses: 1-D tensor of per-sample losses (finite).
        p: power > 0 on the losses. Default 2.0 (the thesis: "typically 2 or higher").
        buckets: the number of buckets q >= 2. Default 2.
    """
    v = validate_params("q_split", {"p": p, "buckets": buckets}, CONSTRAINTS)
    p, buckets = v["p"], v["buckets"]
    x = _losses(losses)
    if len(x) == 0:
        return _EMPTY.clone()
    order = torch.argsort(x, stable=True)
    w = x[order].clamp_min(0.0).pow(p)
    if not float(w.sum()) > 0:
        w = torch.ones_like(w)
    cuml = torch.cumsum(w, 0)
    middle = cuml - w / 2
    sorted_bucket = torch.floor(buckets * middle / cuml[-1]).long().clamp(0, buckets - 1)
    out = torch.empty_like(sorted_bucket)
    out[order] = sorted_bucket
    return out


def bucket_quotas(total: int, buckets: int) -> torch.Tensor:
    """``total`` picks split as evenly as possible over ``buckets``: ``total // buckets``
    each, the remainder one more each to the highest-loss buckets."""
    base, rest = divmod(total, buckets)
    quota = torch.full((buckets,), base, dtype=torch.long)
    if rest:
        quota[buckets - rest:] += 1
    return quota


def q_split(losses: torch.Tensor, k: float, p: float = 2.0, buckets: int = 2,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Sorted positions chosen by the loss q-split random selector (Alg 4).

    The losses are split into ``buckets`` by :func:`q_split_buckets`; each bucket then gives
    ``k / buckets`` samples drawn uniformly without replacement (see :func:`bucket_quotas`
    for a k that does not divide). A bucket with fewer members than its quota gives all of
    them and its shortfall is **not** moved to other buckets (that would dilute the
    high-loss picks), so fewer than k samples may come back.

    Args:
        losses: 1-D tensor of per-sample losses (finite).
        k: count (integer >= 1) or share in (0, 1) of ``len(losses)``.
        p: power > 0 on the losses. Default 2.0.
        buckets: the number of buckets q >= 2. Default 2.
        generator: randomness of the draws. Default ``None`` (torch's global generator).
    """
    bucket = q_split_buckets(losses, p, buckets)
    n = len(bucket)
    if n == 0:
        return _EMPTY.clone()
    quota = bucket_quotas(resolve_k(k, n), int(buckets))  # checked by q_split_buckets
    # a random order inside each bucket: sort by bucket + uniform key in [0, 1)
    key = bucket.double() + torch.rand(n, generator=generator, dtype=torch.float64)
    order = torch.argsort(key)
    sorted_bucket = bucket[order]
    size = torch.bincount(bucket, minlength=len(quota))
    start = torch.cumsum(size, 0) - size
    rank = torch.arange(n) - start[sorted_bucket]
    return order[rank < quota[sorted_bucket]].sort().values


# ---------------------------------------------------------------------- configured form
@dataclass(frozen=True)
class LossSelector:
    """A loss selector with its validated hyper-parameters; call it on a batch's losses.

    Args:
        kind: ``"all"`` (keep every sample; the default), ``"top-k"``, ``"top-q"``,
            ``"weighted"`` or ``"q-split"``.
        k: count (integer >= 1) or share in (0, 1) for top-k, weighted and q-split.
            Default ``None`` = 0.5 (half of the samples given).
        q: quantile in (0, 1) for top-q. Default ``None`` = 0.5.
        p: power > 0 for q-split. Default ``None`` = 2.0.
        buckets: number of buckets >= 2 for q-split. Default ``None`` = 2.

    A hyper-parameter that the chosen kind does not use is refused (``ValueError``), so a
    typo such as ``selector=top-q, k=8`` does not pass silently.

    :attr:`share` is the share of the losses kept (``k`` as a share, ``1 - q`` for top-q) and
    :meth:`with_share` gives the same selector keeping another share: the handle a ratio
    schedule turns (``AssistSelector(schedule=...)``).
    """

    kind: str = "all"
    k: float | None = None
    q: float | None = None
    p: float | None = None
    buckets: int | None = None

    _USES = {"all": (), "top-k": ("k",), "top-q": ("q",), "weighted": ("k",),
             "q-split": ("k", "p", "buckets")}
    _DEFAULTS = {"k": 0.5, "q": 0.5, "p": 2.0, "buckets": 2}
    # ``kind`` is checked as "selector", the name AssistSelector gives it
    _parameter_constraints = CONSTRAINTS

    def __post_init__(self) -> None:
        validate_params("LossSelector", {"selector": self.kind}, self._parameter_constraints)
        uses = self._USES[self.kind]
        values = {}
        for name in ("k", "q", "p", "buckets"):
            value = getattr(self, name)
            if name not in uses:
                if value is not None:
                    raise ValueError(f"{name} is not a hyper-parameter of selector "
                                     f"{self.kind!r} (it uses: {', '.join(uses) or 'none'})")
                continue
            values[name] = self._DEFAULTS[name] if value is None else value
        for name, value in validate_params("LossSelector", values,
                                           self._parameter_constraints).items():
            object.__setattr__(self, name, value)

    @property
    def share(self) -> float | None:
        """The share of the given losses this selector keeps: ``k`` when it is a share in
        (0, 1) (top-k, weighted, q-split), ``1 - q`` for top-q (about that share is at or
        above the q-quantile); ``None`` for ``"all"`` and for ``k`` given as a count."""
        if self.kind == "top-q":
            return 1.0 - self.q
        if "k" in self._USES[self.kind] and isinstance(self.k, float):
            return self.k
        return None

    def with_share(self, share: float) -> LossSelector:
        """The same selector keeping ``share`` of the losses: ``k = share`` (top-k, weighted,
        q-split) or ``q = 1 - share`` (top-q).

        Args:
            share: the kept share, in (0, 1).

        Raises:
            ValueError: for a selector without a share (``"all"``, or ``k`` given as a
                count) and for a share outside (0, 1).
        """
        if self.share is None:
            raise ValueError(f"selector {self.kind!r} has no share to change: "
                             + ("it keeps every sample" if self.kind == "all" else
                                f"k = {self.k} is a count; give k as a share in (0, 1)"))
        share = validate_params("LossSelector.with_share", {"share": share},
                                self._parameter_constraints)["share"]
        if self.kind == "top-q":
            return replace(self, q=1.0 - float(share))
        return replace(self, k=float(share))

    def __call__(self, losses: torch.Tensor, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Sorted positions (into ``losses``) of the chosen samples.

        Args:
            losses: 1-D tensor of per-sample losses.
            generator: randomness of weighted and q-split. Default ``None``.
        """
        if self.kind == "all":
            return torch.arange(len(losses))
        if self.kind == "top-k":
            return top_k(losses, self.k)
        if self.kind == "top-q":
            return top_q(losses, self.q)
        if self.kind == "weighted":
            return loss_weighted(losses, self.k, generator)
        return q_split(losses, self.k, self.p, self.buckets, generator)
