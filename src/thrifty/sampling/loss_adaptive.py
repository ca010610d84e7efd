"""Loss-based adaptive selection (seed 002, after Jiang et al. 2019's Selective-Backprop)."""

from __future__ import annotations

import math

import torch
from scipy.stats import percentileofscore

from thrifty.engine.interfaces import TrainContext
from thrifty.methods import register_method
from thrifty.sampling.base import RenewingSampler
from thrifty.utils.params import Interval, Param, validate_params


def selection_weights(losses: torch.Tensor, history: torch.Tensor, beta: float) -> torch.Tensor:
    """Selective-Backprop weights: the percentile of each loss within ``history`` (in [0, 1],
    :func:`scipy.stats.percentileofscore` with ``kind="rank"``) raised to ``beta``.
    A NaN loss gets weight 1 (the highest)."""
    pct = percentileofscore(history.double().numpy(), losses.double().numpy(), kind="rank")
    weights = torch.as_tensor(pct, dtype=torch.float64).reshape(-1) / 100
    return torch.nan_to_num(weights, nan=1.0) ** beta


def weighted_draw(weights: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """``size`` distinct positions drawn with probability proportional to ``weights``
    (:func:`torch.multinomial` without replacement). Positions of zero weight are only taken,
    uniformly at random, when fewer than ``size`` positions have a positive weight."""
    positive = torch.nonzero(weights > 0).flatten()
    if len(positive) >= size:
        return torch.multinomial(weights, size, replacement=False, generator=generator)
    zero = torch.nonzero(weights <= 0).flatten()
    fill = zero[torch.randperm(len(zero), generator=generator)[: size - len(positive)]]
    return torch.cat([positive, fill])


@register_method("loss-adaptive", "sampler",
                 "every R epochs, score the pool and draw S_t by loss percentile^beta (seed 002)")
class LossAdaptive(RenewingSampler):
    """Loss-based adaptive selection: every ``period`` epochs, a subset drawn by loss.

    The comparison method of Boumendil et al., ICTAI 2023 (seed 002), after Jiang et al.,
    "Accelerating deep learning by focusing on the biggest losers" (2019). At each renewal a
    selection forward pass (no gradient, counted as selection work) computes the loss of every
    pool sample. Each sample's weight is the percentile of its loss within a history of the
    most recent losses, raised to the power beta; a subset holding a share S_t of the pool is
    drawn with these weights and trained on until the next renewal.

    Args:
        ratio: S (or S_0 of a decreasing schedule), the share of the pool, in (0, 1].
            Default 0.4.
        period: R, epochs between renewals (and selection forward passes), >= 1. Default 3
            (the paper's value).
        beta: selectivity exponent, >= 0 (0 draws uniformly). Default 2.0 (Selective-Backprop
            default; the paper does not state its value).
        history: number of most recent losses the percentiles are taken in, >= 1. Default
            1024 (Selective-Backprop default).
        schedule, final_ratio, alpha, gamma, mean_ratio, mean_over, step_size: the ratio
            schedule, as for ``random-adaptive`` (see
            :class:`~thrifty.utils.schedules.RatioSchedule`); default constant.

    Decisions: the pool is scored in one pass per renewal (renewals at the 0-based epochs
    ``t % period == 0``, the first at t = 0). Its losses enter the history in a random order
    (Selective-Backprop's history is a stream of recent losses; a random order makes its last
    ``history`` entries a uniform sample of the pass rather than the last indices), then all
    percentiles are read against the updated history at once. The subset is drawn with
    :func:`torch.multinomial` without replacement; samples below every loss of the history
    have weight 0 and are only taken if too few samples have a positive weight. Each draw uses
    a generator seeded by (run seed, renewal epoch); the history and the subset are saved with
    the checkpoints.
    """

    name = "loss-adaptive"
    _state_attrs = (*RenewingSampler._state_attrs, "history")
    _parameter_constraints = {
        "beta": Param(Interval(float, 0, math.inf, closed="left"),
                      hint="0 selects uniformly, 2 is the Selective-Backprop default"),
        "history": Param(Interval(int, 1, None, closed="left"),
                         label="number of recent losses for the percentiles"),
    }

    def __init__(self, ratio: float = 0.4, period: int = 3, beta: float = 2.0,
                 history: int = 1024, schedule: str = "constant",
                 final_ratio: float | None = None, alpha: float | None = None,
                 gamma: float | None = None, mean_ratio: float | None = None,
                 mean_over: str = "renewals", step_size: int | None = None) -> None:
        super().__init__(ratio, period, schedule, final_ratio=final_ratio, alpha=alpha,
                         gamma=gamma, mean_ratio=mean_ratio, mean_over=mean_over,
                         step_size=step_size)
        v = validate_params("LossAdaptive", {"beta": beta, "history": history},
                            self._parameter_constraints)
        self.beta = v["beta"]
        self.history_size = v["history"]
        self.history = torch.empty(0)

    def setup(self, pool: torch.Tensor, ctx: TrainContext) -> None:
        super().setup(pool, ctx)
        self.history = torch.empty(0)

    def draw(self, ctx: TrainContext, size: int, generator: torch.Generator) -> torch.Tensor:
        losses, _ = ctx.score(self.pool)
        losses = losses.float().cpu()
        order = torch.randperm(len(losses), generator=generator)
        self.history = torch.cat([self.history, losses[order]])[-self.history_size:]
        weights = selection_weights(losses, self.history, self.beta)
        return self.pool[weighted_draw(weights, size, generator)]

    def begin_epoch(self, ctx: TrainContext) -> None:
        super().begin_epoch(ctx)
        self.diag["scored"] = float(len(self.pool)) if self.diag["renewed"] else 0.0
