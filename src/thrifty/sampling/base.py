"""Shared machinery of the per-epoch samplers: periodic renewal of a subset of the pool."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from thrifty.engine.interfaces import EpochSampler, TrainContext
from thrifty.utils.random import draw_generator
from thrifty.utils.schedules import RatioSchedule, subset_size

__all__ = ["RenewingSampler"]


class RenewingSampler(EpochSampler, ABC):
    """Every ``period`` epochs, choose a fresh subset of share S_t of the pool; load only it.

    Subclasses implement :meth:`draw`. The subset and the renewal it belongs to are part of the
    state, so a resumed run continues with the same subset until the next renewal. Renewals
    happen at the epochs ``t`` with ``t % period == 0``, the first at ``t = 0``; the ratio
    comes from a :class:`~thrifty.utils.schedules.RatioSchedule` and is a share of the pool
    (what the offline reducer kept), rounded up to whole samples
    (:func:`~thrifty.utils.schedules.subset_size`).

    Args:
        ratio: S_0, the (initial) share of the pool, in (0, 1].
        period: R, epochs between renewals, >= 1.
        schedule: ratio schedule shape: constant, exponential, linear, cosine, step.
        final_ratio, alpha, gamma, mean_ratio, mean_over, step_size: see
            :class:`~thrifty.utils.schedules.RatioSchedule`.
    """

    _state_attrs = ("active", "renewal", "current_ratio", "diag")

    def __init__(self, ratio: float, period: int, schedule: str = "constant", *,
                 final_ratio: float | None = None, alpha: float | None = None,
                 gamma: float | None = None, mean_ratio: float | None = None,
                 mean_over: str = "renewals", step_size: int | None = None) -> None:
        super().__init__()
        self.schedule = RatioSchedule(schedule, ratio, final_ratio=final_ratio, alpha=alpha,
                                      gamma=gamma, mean_ratio=mean_ratio, mean_over=mean_over,
                                      period=period, step_size=step_size)
        self.period = period
        self.renewal = -1
        self.current_ratio = self.schedule.ratio
        self.diag: dict[str, float] = {}

    def setup(self, pool: torch.Tensor, ctx: TrainContext) -> None:
        super().setup(pool, ctx)
        self.schedule.resolve(ctx.epochs)
        self.renewal = -1

    @abstractmethod
    def draw(self, ctx: TrainContext, size: int, generator: torch.Generator) -> torch.Tensor:
        """Return ``size`` distinct dataset indices from ``self.pool`` for this renewal."""

    def begin_epoch(self, ctx: TrainContext) -> None:
        k = ctx.epoch // self.period
        renewed = k != self.renewal
        if renewed:
            self.current_ratio = self.schedule.ratio_at(ctx.epoch)
            size = subset_size(self.current_ratio, len(self.pool))
            g = draw_generator(self.seed, ctx.epoch, self.name)
            self.active = self.draw(ctx, size, g).sort().values
            self.renewal = k
        self.diag = {"ratio": self.current_ratio, "selected": float(len(self.active)),
                     "selected_share": len(self.active) / len(self.pool),
                     "renewed": float(renewed)}

    def epoch_diagnostics(self) -> dict[str, float]:
        diag, self.diag = self.diag, {}
        return diag
