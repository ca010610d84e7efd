"""InfoBatch (Qin et al., ICLR 2024): unbiased dynamic pruning of well-learned samples."""

from __future__ import annotations

import torch

from thrifty.engine.interfaces import EpochSampler, TrainContext
from thrifty.methods import register_method
from thrifty.utils.params import Interval, Param, validate_params
from thrifty.utils.random import draw_generator
from thrifty.utils.schedules import EpochRatio
from thrifty.utils.shares import share_count


def anneal_start(epochs: int, delta: float) -> int:
    """First 0-based epoch trained on full data: ``floor(delta * epochs)`` (float noise
    ignored, :func:`~thrifty.utils.shares.share_count`). Epochs ``0 .. anneal_start - 1`` may
    be pruned.

    Args:
        epochs: the run's number of epochs, >= 0.
        delta: the share of the epochs in which pruning may happen, in [0, 1].
    """
    return share_count(delta, epochs, rounding="floor", minimum=0)


@register_method("infobatch", "sampler",
                 "prune a random share r_t of below-mean-loss samples, reweight by 1/(1-r_t)")
class InfoBatch(EpochSampler):
    """InfoBatch: each epoch, drop a random share of the well-learned samples, rescale the rest.

    Qin et al., "InfoBatch: Lossless Training Speed Up by Unbiased Dynamic Data Pruning",
    ICLR 2024 (arXiv:2303.04947). A sample's score is its most recent training loss, read from
    the engine's :class:`~thrifty.engine.record.SampleRecord` (no extra forward pass). At the
    start of each epoch, the *well-learned* samples are those whose score is below the mean
    score of the pool; a random share r of them is not loaded this epoch, and the kept
    well-learned samples get loss weight ``1 / (1 - r)`` so that the expected gradient is
    unchanged. The last ``1 - delta`` share of the epochs trains on the full pool with weight 1
    (annealing).

    Args:
        prune_ratio: r, the share of the well-learned samples dropped each epoch, in [0, 1)
            (r_0, in (0, 1), with a decaying schedule). Default 0.5 (the paper's default).
        delta: share of the epochs in which pruning may happen, in [0, 1]. Default 0.875 (the
            paper's default).
        schedule: shape of a prune ratio r_t that decreases over the pruning epochs:
            ``constant`` (default, the paper), ``exponential``, ``linear``, ``cosine`` or
            ``step``; see :class:`~thrifty.utils.schedules.RatioSchedule`.
        final_ratio: target r in the last pruning epoch, in (0, prune_ratio]. Default
            ``None``.
        alpha: decay per epoch of the exponential schedule, >= 0. Default ``None``.
        gamma: factor of each drop of the step schedule, in (0, 1]. Default ``None``.
        mean_ratio: target mean of r over the pruning epochs, in (0, prune_ratio]. Default
            ``None``.
        mean_over: ``"renewals"`` (default) or ``"epochs"``; the same here, r_t changing
            every epoch.
        step_size: epochs between drops of the step schedule, >= 1. Default ``None``.

    Decisions:

    - Never-seen samples (no loss in the record yet) count as high: they are never
      well-learned and do not enter the mean, so every sample is trained on before it can be
      pruned (epoch 0 loads the full pool).
    - The record holds the latest loss of any forward pass; without a batch selector that
      forwards samples it is the latest training loss (raw, before the loss weight).
    - Of ``n`` well-learned samples, ``floor((1 - r) * n)`` are kept, drawn uniformly without
      replacement with a generator seeded by (run seed, epoch). (The public code draws with
      replacement, which keeps duplicates and fewer distinct samples.)
    - Annealing: epochs ``t >= floor(delta * epochs)`` (0-based) load the full pool, i.e. at
      least the last ``(1 - delta) * epochs`` epochs.
    - Pruning happens in the sampler, so pruned samples are not loaded; nothing of PyTorch is
      patched. The learning-rate schedule steps per epoch, so fewer steps do not shift it.
    - A prune ratio schedule (an extension; the paper keeps r fixed) is read once per epoch
      (R = 1) and spans the pruning epochs ``0 .. floor(delta * epochs) - 1``: ``final_ratio``
      is the ratio of the last pruning epoch and ``mean_ratio`` a mean over the pruning
      epochs, the annealing epochs being full whatever the schedule. Epoch t keeps
      ``floor((1 - r_t) * n)`` of its n well-learned samples with weight ``1 / (1 - r_t)``.

    Per-epoch diagnostics: ``annealing``, ``prune_ratio`` (r_t; 0 while annealing),
    ``well_learned``, ``pruned``, ``threshold`` (when pruning) and ``kept_share``.
    """

    name = "infobatch"
    weighted = True
    _state_attrs = ("active", "weights", "diag")
    _parameter_constraints = {
        "prune_ratio": Param(Interval(float, 0, 1, closed="left"), label="r",
                             hint="the kept well-learned samples are weighted 1/(1-r); 0.5 is "
                                  "the paper's default"),
        "delta": Param(Interval(float, 0, 1), label="share of epochs with pruning",
                       hint="0.875 is the paper's default, 0 disables pruning"),
    }
    loss_kinds = ("train",)  # scores are training losses, never a selector's probe
    needs_train_losses = True

    def __init__(self, prune_ratio: float = 0.5, delta: float = 0.875,
                 schedule: str = "constant", final_ratio: float | None = None,
                 alpha: float | None = None, gamma: float | None = None,
                 mean_ratio: float | None = None, mean_over: str = "renewals",
                 step_size: int | None = None) -> None:
        super().__init__()
        v = validate_params("InfoBatch", {"prune_ratio": prune_ratio, "delta": delta},
                            self._parameter_constraints)
        self.prune_ratio, self.delta = v["prune_ratio"], v["delta"]
        self.ratio = EpochRatio(self.prune_ratio, schedule, final_ratio=final_ratio,
                                alpha=alpha, gamma=gamma, mean_ratio=mean_ratio,
                                mean_over=mean_over, step_size=step_size, name="prune_ratio")
        self.weights = torch.ones(0)
        self.diag: dict[str, float] = {}

    def setup(self, pool: torch.Tensor, ctx: TrainContext) -> None:
        super().setup(pool, ctx)
        self.weights = torch.ones(len(ctx.labels))
        pruning_epochs = anneal_start(ctx.epochs, self.delta)
        if self.ratio.scheduled and pruning_epochs < 1:
            raise ValueError(f"a prune_ratio schedule needs pruning epochs, but delta "
                             f"{self.delta} of {ctx.epochs} epochs leaves none; raise delta or "
                             "drop the schedule")
        self.ratio.resolve(pruning_epochs)

    def prune_ratio_at(self, epoch: int, epochs: int) -> float:
        """r_t, the share of the well-learned samples pruned at 0-based ``epoch`` of an
        ``epochs``-long run: 0 in the annealing epochs, else the schedule's value
        (``prune_ratio`` when constant). Needs :meth:`setup` when scheduled.

        Args:
            epoch: the 0-based epoch.
            epochs: the run's number of epochs.
        """
        if epoch >= anneal_start(epochs, self.delta):
            return 0.0
        return self.ratio.at(epoch)

    def begin_epoch(self, ctx: TrainContext) -> None:
        self.weights.fill_(1.0)
        self.active = self.pool
        annealing = ctx.epoch >= anneal_start(ctx.epochs, self.delta)
        r = self.prune_ratio_at(ctx.epoch, ctx.epochs)
        self.diag = {"annealing": float(annealing), "prune_ratio": r, "well_learned": 0.0,
                     "pruned": 0.0}
        scores = ctx.record.losses(self.pool, "train")
        seen = ~torch.isnan(scores)
        if not annealing and seen.any():
            threshold = scores[seen].mean()
            well = seen & (scores < threshold)
            learned = self.pool[well]
            keep = share_count(1 - r, len(learned), rounding="floor", minimum=0)
            g = draw_generator(self.seed, ctx.epoch, self.name)
            kept = learned[torch.randperm(len(learned), generator=g)[:keep]]
            self.weights[kept] = 1 / (1 - r)
            self.active = torch.cat([self.pool[~well], kept]).sort().values
            self.diag.update(well_learned=float(len(learned)),
                             pruned=float(len(learned) - keep), threshold=float(threshold))
        self.diag["kept_share"] = len(self.active) / len(self.pool)

    def loss_weights(self, idx: torch.Tensor) -> torch.Tensor:
        """``1 / (1 - r_t)`` for the kept well-learned samples of this epoch, 1 for the
        others."""
        return self.weights[idx]

    def epoch_diagnostics(self) -> dict[str, float]:
        diag, self.diag = self.diag, {}
        return diag
