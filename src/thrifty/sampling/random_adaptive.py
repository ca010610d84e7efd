"""Random adaptive selection (seed 002): a fresh random subset of the pool every R epochs."""

from __future__ import annotations

import torch

from thrifty.engine.interfaces import TrainContext
from thrifty.methods import register_method
from thrifty.sampling.base import RenewingSampler
from thrifty.utils.params import Boolean, validate_params
from thrifty.utils.schedules import subset_size


@register_method("random-adaptive", "sampler",
                 "fresh random share S_t of the pool every R epochs (seed 002)")
class RandomAdaptive(RenewingSampler):
    """Random adaptive selection: every ``period`` epochs, a fresh random subset.

    Boumendil, Bechkit, Benatchba, "On data selection for the energy efficiency of neural
    networks: Towards a new solution based on a dynamic selectivity ratio", ICTAI 2023.
    Every R epochs, draw a random subset holding a share S_t of the pool (uniformly, without
    replacement) and train only on it until the next renewal; unselected samples are never
    loaded, so the overhead is a random permutation per renewal. S_t comes from a ratio
    schedule (constant by default; the paper's decreasing exponential schedule with
    ``schedule="exponential"``).

    Args:
        ratio: S (or S_0 of a decreasing schedule), the share of the pool, in (0, 1].
            Default 0.4 (the paper's random 40% on CIFAR-10: 89.70% vs 91.35% full).
        period: R, epochs between renewals, >= 1. Default 3 (the paper's value, taken from
            Jiang et al. 2019).
        schedule: ratio schedule shape: ``constant``, ``exponential``, ``linear``,
            ``cosine``, ``step``. Default ``"constant"``.
        final_ratio: target share in the last epoch (decaying schedules). Default ``None``.
        alpha: decay per renewal of the exponential schedule. Default ``None``.
        gamma: factor of each drop of the step schedule. Default ``None``.
        mean_ratio: target mean share (decaying schedules, solved numerically). Default
            ``None``.
        mean_over: what ``mean_ratio`` averages, ``"renewals"`` (the paper's S_avg) or
            ``"epochs"``. Default ``"renewals"``.
        step_size: epochs between drops of the step schedule. Default ``None``.
        stratified: draw ``ceil(S_t * n_c)`` samples from each class c of the pool instead of
            ``ceil(S_t * n)`` from the whole pool. Default ``False`` (the paper draws over the
            dataset).

    Decisions: renewals at the 0-based epochs ``t % period == 0`` (the first at t = 0); the
    subset size is ``ceil(S_t * n)``, at least one sample (per class when stratified); each
    draw uses a generator seeded by (run seed, renewal epoch), and the chosen subset is saved
    with the checkpoints.
    """

    name = "random-adaptive"

    @property
    def needs_labels(self) -> bool:  # a share of each class
        return self.stratified
    _parameter_constraints = {"stratified": Boolean()}

    def __init__(self, ratio: float = 0.4, period: int = 3, schedule: str = "constant",
                 final_ratio: float | None = None, alpha: float | None = None,
                 gamma: float | None = None, mean_ratio: float | None = None,
                 mean_over: str = "renewals", step_size: int | None = None,
                 stratified: bool = False) -> None:
        super().__init__(ratio, period, schedule, final_ratio=final_ratio, alpha=alpha,
                         gamma=gamma, mean_ratio=mean_ratio, mean_over=mean_over,
                         step_size=step_size)
        validate_params("RandomAdaptive", {"stratified": stratified},
                        self._parameter_constraints)
        self.stratified = stratified

    def draw(self, ctx: TrainContext, size: int, generator: torch.Generator) -> torch.Tensor:
        if not self.stratified:
            return self.pool[torch.randperm(len(self.pool), generator=generator)[:size]]
        labels = ctx.labels[self.pool]
        chosen = []
        for c in torch.unique(labels).tolist():
            members = self.pool[labels == c]
            k = subset_size(self.current_ratio, len(members))
            chosen.append(members[torch.randperm(len(members), generator=generator)[:k]])
        return torch.cat(chosen)
