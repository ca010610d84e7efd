"""ADONIS, Adaptive Online Importance Sampling (seed 000, Algorithm 1).

Functional core (pure functions on tensors, usable in any framework):

- :func:`clip_history`: the history clipped to mean ± sigma·std (outliers capped at the
  band's edge, or removed).
- :func:`loss_histogram`: counts and edges of the clipped history (``numpy.histogram``
  with the ``sturges``, ``sqrt`` or ``rice`` bin rule).
- :func:`adonis_probabilities`: each loss's p = PMF of its histogram bin.
- :func:`adonis_select`: candidates p > theta, then a share alpha of them.

:class:`Adonis` is the selector the engine and :class:`~thrifty.selection.OnlineSelection`
use; it keeps the history and counts every fallback.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from thrifty.engine.interfaces import TrainContext
from thrifty.methods import register_method
from thrifty.selection.history import POSITIVE_INT, LossHistorySelector, as_numpy
from thrifty.utils.params import Interval, Options, Param, validate_params
from thrifty.utils.shares import share_count

BIN_RULES = ("sturges", "sqrt", "rice")
DRAWS = ("random", "first")
FALLBACKS = ("top-bin", "skip")
CLIPS = ("remove", "cap")
WARMUP_RULES = ("lt", "le")
PMF_DENOMINATORS = ("clipped", "history")

#: what the functions and :class:`Adonis` accept
CONSTRAINTS = {
    "bins": Options(str, BIN_RULES),
    "sigma": Param(Interval(float, 0, None, closed="neither"),
                   label="the outlier clip in std", hint="default 1.0"),
    "theta": Param(Interval(float, 0, 1, closed="neither"), label="the PMF threshold",
                   hint="the paper's usable range is 0.1-0.7, default 0.12"),
    "alpha": Param(Interval(float, 0, 1, closed="right"), Options(str, ("none",)),
                   label="the selected share of candidates",
                   hint="default 0.3; none keeps every candidate"),
    "clip": Options(str, CLIPS),
    "warmup_rule": Options(str, WARMUP_RULES),
    "pmf_denominator": Options(str, PMF_DENOMINATORS),
    "eta": POSITIVE_INT,
    "draw": Options(str, DRAWS),
    "fallback": Options(str, FALLBACKS),
}


def _band(h: np.ndarray, sigma: float) -> tuple[float, float]:
    d = h - h.mean()
    half = sigma * np.sqrt(np.dot(d, d) / len(d))  # population std
    return h.mean() - half, h.mean() + half


def _clip(h: np.ndarray, sigma: float, clip: str = "cap") -> np.ndarray:
    h = h[np.isfinite(h)]
    if len(h) == 0:
        return h
    low, high = _band(h, sigma)
    if clip == "cap":  # winsorise: outliers are set to the band's edge, not dropped
        return np.clip(h, low, high)
    d = h - h.mean()
    return h[np.abs(d) <= high - h.mean()]


def clip_history(history: torch.Tensor, sigma: float = 1.0, clip: str = "cap"
                 ) -> torch.Tensor:
    """The history clipped to ``mean ± sigma·std`` (float64).

    Args:
        history: 1-D tensor of losses; non-finite values are ignored.
        sigma: clip width in standard deviations (population std, as ``numpy.std``).
            Default 1.0; ``inf`` keeps everything.
        clip: ``"cap"`` (default): losses outside the band are set to the band's nearer
            edge (winsorised), so they still count; ``"remove"``: they are dropped.
    """
    validate_params("clip_history", {"clip": clip}, CONSTRAINTS)
    return torch.from_numpy(_clip(as_numpy(history), sigma, clip))


def loss_histogram(values: torch.Tensor, bins: str = "sturges"
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``numpy.histogram`` of ``values`` with the bin rule ``bins``: ``(counts, edges)``.

    Equal-width bins over ``[min, max]`` of the values (numpy widens a zero-width range to
    ``±0.5``); the number of bins is numpy's for the rule (``sturges``: ceil(log2 n) + 1,
    ``sqrt``: ceil(sqrt n), ``rice``: ceil(2 n^(1/3))).

    Args:
        values: 1-D tensor, non-empty.
        bins: ``"sturges"`` (default), ``"sqrt"`` or ``"rice"``.
    """
    validate_params("loss_histogram", {"bins": bins}, CONSTRAINTS)
    counts, edges = np.histogram(as_numpy(values), bins=bins)
    return torch.from_numpy(counts), torch.from_numpy(edges)


def _bin_pmf(x: np.ndarray, pmf: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # searchsorted(side="right") puts x in [e_j, e_j+1) at j + 1, below e_0 at 0 and above the
    # last edge (or NaN) at k + 1; nudging the last edge up closes the last bin, and the
    # zero-padded PMF maps both outside positions to 0.
    closed = edges.copy()
    closed[-1] = np.nextafter(closed[-1], np.inf)
    return np.concatenate(([0.0], pmf, [0.0]))[np.searchsorted(closed, x, side="right")]


def bin_probabilities(losses: torch.Tensor, pmf: torch.Tensor, edges: torch.Tensor
                      ) -> torch.Tensor:
    """The PMF of the bin each loss falls in (numpy's bins: ``[e_j, e_j+1)``, the last one
    closed); 0 for a loss outside ``[edges[0], edges[-1]]`` or NaN.

    Args:
        losses: 1-D tensor of losses.
        pmf: per-bin probabilities, length ``len(edges) - 1``.
        edges: increasing bin edges.
    """
    return torch.from_numpy(_bin_pmf(as_numpy(losses), as_numpy(pmf), as_numpy(edges)))


def adonis_probabilities(losses: torch.Tensor, history: torch.Tensor, sigma: float = 1.0,
                         bins: str = "sturges", clip: str = "cap",
                         pmf_denominator: str = "clipped") -> torch.Tensor:
    """ADONIS's p for each loss: ``freq_j / R`` of its bin in the clipped history (eq. 6).

    Computed in numpy (float64): on histories of a few hundred values numpy's small-array
    calls cost a fraction of torch's.

    Args:
        losses: 1-D tensor of the batch's losses.
        history: the loss history H; per Algorithm 1 it already holds the batch's losses.
        sigma: outlier clip in standard deviations. Default 1.0.
        bins: bin rule ``"sturges"`` (default), ``"sqrt"`` or ``"rice"``.
        clip: ``"cap"`` (default) or ``"remove"`` (see :func:`clip_history`); with
            ``"cap"`` the batch's losses are capped the same way before their bin is looked
            up, so a loss beyond the band falls in the edge bin.
        pmf_denominator: ``"clipped"`` (default): R is the clipped history's length;
            ``"history"``: R is the history's length (eq. 6 read literally).

    Returns:
        float64 tensor of p in [0, 1]; 0 for losses outside the clipped range (and for all
        losses when the clipped history is empty).
    """
    validate_params("adonis_probabilities", {"bins": bins, "clip": clip,
                                             "pmf_denominator": pmf_denominator}, CONSTRAINTS)
    return torch.from_numpy(_probabilities(as_numpy(losses), as_numpy(history), sigma, bins,
                                           clip, pmf_denominator))


def _probabilities(x: np.ndarray, history: np.ndarray, sigma: float, bins: str,
                   clip: str = "cap", pmf_denominator: str = "clipped") -> np.ndarray:
    clipped = _clip(history, sigma, clip)
    if len(clipped) == 0:
        return np.zeros(len(x))
    if clip == "cap":
        finite = history[np.isfinite(history)]
        x = np.clip(x, *_band(finite, sigma))
    counts, edges = np.histogram(clipped, bins=bins)
    r = len(clipped) if pmf_denominator == "clipped" else int(np.isfinite(history).sum())
    return _bin_pmf(x, counts / r, edges)


class AdonisChoice(NamedTuple):
    """What :func:`adonis_select` chose: sorted ``positions``, the number of
    ``candidates`` (p > theta) and whether the no-candidate ``fallback`` was used."""

    positions: torch.Tensor
    candidates: int
    fallback: bool


def adonis_select(p: torch.Tensor, theta: float = 0.12, alpha: float | None = 0.3,
                  generator: torch.Generator | None = None, draw: str = "random",
                  fallback: str = "top-bin") -> AdonisChoice:
    """Choose a share ``alpha`` of the candidates ``p > theta`` (eq. 3, strict).

    Args:
        p: per-sample probabilities (:func:`adonis_probabilities`).
        theta: PMF threshold. Default 0.12.
        alpha: share of the candidates kept: ``ceil(alpha * candidates)``, at least 1 when
            there is a candidate (:func:`~thrifty.utils.shares.share_count`); ``None``: every
            candidate. Default 0.3.
        generator: randomness of ``draw="random"``. Default ``None`` (torch's global one).
        draw: ``"random"`` (default): a uniform draw without replacement among candidates;
            ``"first"``: the first candidates in batch order (no randomness).
        fallback: when no sample passes theta: ``"top-bin"`` (default) uses the samples
            whose p equals the batch's largest p (the most frequent bin present; the whole
            batch if every p is 0) as candidates; ``"skip"`` selects nothing.
    """
    validate_params("adonis_select", {"draw": draw, "fallback": fallback}, CONSTRAINTS)
    pos, n, used_fallback = _select(as_numpy(p), theta, alpha, generator, draw, fallback)
    return AdonisChoice(torch.from_numpy(pos), n, used_fallback)


def _select(p: np.ndarray, theta: float, alpha: float | None,
            generator: torch.Generator | None,
            draw: str, fallback: str) -> tuple[np.ndarray, int, bool]:
    pos = np.flatnonzero(p > theta)
    n = len(pos)
    used_fallback = n == 0 and len(p) > 0
    if used_fallback:
        pos = pos if fallback == "skip" else np.flatnonzero(p == p.max())
    m = len(pos) if alpha is None else share_count(alpha, len(pos))
    if draw == "random" and m < len(pos):
        pos = np.sort(pos[torch.randperm(len(pos), generator=generator)[:m].numpy()])
    return pos[:m].astype(np.int64), n, used_fallback


@register_method("adonis", "selector",
                 "ADONIS: backprop an alpha share of samples in frequent loss bins (PMF > theta)")
class Adonis(LossHistorySelector):
    """ADONIS, Adaptive Online Importance Sampling (Demidovskij et al., "Lightweight and
    Elegant Data Reduction Strategies for Training Acceleration of Convolutional Neural
    Networks", Mathematics 2023, 11, 3120; Algorithm 1, Appendix B).

    For each forward batch: compute per-sample losses with a no-grad forward pass (eval
    mode), append them to the loss history H (last ``history`` losses), clip H to
    mean ± sigma·std, histogram the clipped H with the ``bins`` rule, give each sample the
    PMF of its bin (freq_j / R, R = size of the clipped H), take the samples with
    PMF > ``theta`` as candidates and train on a share ``alpha`` of them. Chosen samples are
    packed into full training batches of the run's batch size (rho). Unlike Selective
    Backprop it prefers the most *frequent* losses over the highest (possible label noise).

    Args:
        history: l, length of the loss history H. Default 512 ("divisible by the batch
            size" is the paper's advice).
        bins: k, histogram bin rule: ``"sturges"`` (default), ``"sqrt"`` or ``"rice"``
            (numpy's rules on the clipped history size).
        sigma: outlier clip of H in standard deviations (> 0). Default 1.0.
        theta: PMF threshold in (0, 1); candidates have p > theta. Default 0.12 (the
            paper's usable range is 0.1-0.7; tune per model and dataset).
        alpha: share of the candidates trained, in (0, 1], or ``"none"`` (every
            candidate; not in Algorithm 1 nor the paper's defaults table, see the card).
            Default 0.3.
        eta: losses stay "actual" for eta epochs: the selection forward runs only every
            eta-th epoch counted from the end of warm-up; in between the losses stored in
            the sample record are reused. Integer >= 1. Default 1.
        warmup: omega, epochs of plain training on every sample first. Default 0.
        clip: how the history is clipped to mean ± sigma·std: ``"cap"`` (default since
            issue 14: winsorised to the band's edge, the paper's "clipped"; a large group
            of not-yet-fit samples can then pass theta, and every class keeps being
            trained) or ``"remove"`` (the first reading: the outliers leave the histogram
            and get p = 0; on fmnist-cnn it starves three to four classes, see the card).
        warmup_rule: ``"lt"`` (default; plain while epoch < omega, so omega = 0 trains no
            plain epoch) or ``"le"`` (Algorithm 1's ``if i <= omega``: plain while
            epoch <= omega, so even omega = 0 trains the first epoch on everything).
        pmf_denominator: R of eq. 6: ``"clipped"`` (default; the clipped history's
            length) or ``"history"`` (the history's length).
        draw: how the alpha share is drawn: ``"random"`` (default, uniform without
            replacement with the run's method generator) or ``"first"`` (first candidates
            in batch order; the loader's order is already shuffled).
        fallback: no sample of a batch above theta: ``"top-bin"`` (default; the alpha share
            of the batch's samples in its most frequent bin, the whole batch if all its
            losses lie outside the clipped range) or ``"skip"`` (train nothing from the
            batch). Either way the batch is counted.
        end_of_epoch: partial training batch at the end of an epoch: ``"carry"`` (default;
            trained with the next epoch's first chosen samples, as in Algorithm 1 where the
            training batch outlives the epoch loop; at the very end of training fewer than
            rho chosen samples stay untrained), ``"flush"`` (one smaller step) or ``"drop"``.

    Decisions (the paper leaves them open):
        * The alpha share is ``ceil(alpha * candidates)`` per forward batch, at least 1 when
          there is a candidate; with ``fallback="top-bin"`` every batch contributes at least
          one sample.
        * The histogram is built on the clipped history (Figures 3-4); a loss outside the
          range of the clipped history gets p = 0. The std is the population std.
        * In stale epochs (eta > 1) the stored losses enter H like fresh ones, so the
          histogram describes the losses it judges. Stored losses are the latest per-sample
          losses the engine saw (the selection forward, or the training step of a sample
          that was trained since).
        * A NaN stored loss (a sample never seen) is always trained and never enters H.
        * During warm-up every sample is trained and H is not filled.
        * The selection forward runs in eval mode (the engine's rule): BatchNorm statistics
          are used, not updated; dropout is off.

    Per-epoch diagnostics (``epoch_diagnostics``): ``selector_considered``,
    ``selector_candidates``, ``selector_selected``, ``selector_selected_share``,
    ``selector_no_candidate_batches`` (fallback used), ``selector_unseen_trained``,
    ``selector_warmup_trained``, ``selector_stale_batches``, ``selector_batches``.
    """

    name = "adonis"
    _count_keys = LossHistorySelector._count_keys + ("candidates", "no_candidate_batches")
    _parameter_constraints = {**LossHistorySelector._parameter_constraints, **CONSTRAINTS}

    def __init__(self, history: int = 512, bins: str = "sturges", sigma: float = 1.0,
                 theta: float = 0.12, alpha: float | str = 0.3, eta: int = 1,
                 warmup: int = 0, draw: str = "random", fallback: str = "top-bin",
                 end_of_epoch: str = "carry", clip: str = "cap", warmup_rule: str = "lt",
                 pmf_denominator: str = "clipped") -> None:
        v = validate_params("Adonis", {
            "theta": theta, "alpha": alpha, "sigma": sigma, "eta": eta, "bins": bins,
            "draw": draw, "fallback": fallback, "clip": clip, "warmup_rule": warmup_rule,
            "pmf_denominator": pmf_denominator}, self._parameter_constraints)
        super().__init__(history, v["eta"], warmup, end_of_epoch)
        self.bins = bins
        self.sigma, self.theta = v["sigma"], v["theta"]
        self.alpha = None if v["alpha"] == "none" else v["alpha"]
        self.eta = self.every
        self.draw, self.fallback = draw, fallback
        self.clip, self.warmup_rule, self.pmf_denominator = clip, warmup_rule, pmf_denominator

    @property
    def plain_epochs(self) -> int:
        """omega epochs (``warmup_rule="lt"``) or omega + 1 (``"le"``: ``i <= omega``)."""
        return self.warmup + (1 if self.warmup_rule == "le" else 0)

    def _choose(self, losses: np.ndarray, ctx: TrainContext) -> np.ndarray:
        p = _probabilities(losses, as_numpy(self.history), self.sigma, self.bins, self.clip,
                           self.pmf_denominator)
        pos, n, used_fallback = _select(p, self.theta, self.alpha, ctx.generator, self.draw,
                                        self.fallback)
        self.counts["candidates"] += n
        self.counts["no_candidate_batches"] += int(used_fallback)
        return pos
