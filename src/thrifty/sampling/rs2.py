"""RS2 (Okanovic et al., ICLR 2024): repeated random sampling without replacement."""

from __future__ import annotations

import torch

from thrifty.engine.interfaces import EpochSampler, TrainContext
from thrifty.methods import register_method
from thrifty.utils.params import Interval, Param, validate_params
from thrifty.utils.random import draw_generator
from thrifty.utils.schedules import subset_size


@register_method("rs2", "sampler",
                 "RS2: each epoch the next share r of a random permutation, without "
                 "replacement until every sample was seen")
class RS2(EpochSampler):
    """RS2 without replacement: every epoch (a *round*) trains on the next ``r·n`` samples
    of a random permutation of the pool; a new permutation starts when the last is used
    up, so every sample is seen once per ``ceil(1/r)`` rounds.

    Okanovic, Waleffe, Mageirakos, Nikolakakis, Karbasi, Kalogerias, Gürel, Rekatsinas,
    "Repeated Random Sampling for Minimizing the Time-to-Accuracy of Learning", ICLR 2024
    (arXiv:2305.18424; official code github.com/PatrikOkanovic/RS2). The paper's strong
    simple baseline: against static pruning and score-based selection at the same budget.

    Args:
        ratio: r, the share of the pool trained per round, in (0, 1]. Default 0.1 (the
            paper's README example and its argparse default).

    Decisions:

    - The learning-rate schedule spans the rounds: the paper decays its cosine over the
      reduced number of iterations (T_max = rounds x r·n / batch); thrifty's per-epoch
      schedule over the run's epochs (= rounds) does the same at epoch granularity.
    - A round holds ``ceil(r·n)`` samples. When fewer than that are left of the current
      permutation, the round takes them all and tops up from a new permutation (skipping
      those it already holds, which stay in the new cycle), so no sample repeats within a
      round and every cycle sees every sample once.
      (The official code's wrap-around reuses the head of the used permutation.)
    - Each permutation is drawn with a generator seeded by (run seed, cycle number); the
      unused rest of the current one is saved with the checkpoints.

    Per-epoch diagnostics: ``cycle`` (0-based permutation number), ``selected_share``.
    """

    name = "rs2"
    _state_attrs = ("active", "rest", "cycle", "diag")
    _parameter_constraints = {
        "ratio": Param(Interval(float, 0, 1, closed="right"), label="r",
                       hint="the share of the pool per round; 0.1 is the paper's example"),
    }

    def __init__(self, ratio: float = 0.1) -> None:
        super().__init__()
        self.ratio = validate_params("RS2", {"ratio": ratio},
                                     self._parameter_constraints)["ratio"]
        self.rest = torch.empty(0, dtype=torch.long)
        self.cycle = -1
        self.diag: dict[str, float] = {}

    def setup(self, pool: torch.Tensor, ctx: TrainContext) -> None:
        super().setup(pool, ctx)
        self.rest, self.cycle = torch.empty(0, dtype=torch.long), -1

    def _permutation(self) -> torch.Tensor:
        self.cycle += 1
        g = draw_generator(self.seed, self.cycle, self.name)
        return self.pool[torch.randperm(len(self.pool), generator=g)]

    def begin_epoch(self, ctx: TrainContext) -> None:
        m = subset_size(self.ratio, len(self.pool))
        if len(self.rest) == 0:
            self.rest = self._permutation()
        taken = self.rest[:m]
        self.rest = self.rest[m:]
        if len(taken) < m:  # the permutation ran out: top up from the next one
            fresh = self._permutation()
            held = torch.isin(fresh, taken)
            top_up = fresh[~held][:m - len(taken)]
            # the rest of the new cycle keeps the samples this round already holds: each
            # is seen once in the new cycle too
            self.rest = fresh[~torch.isin(fresh, top_up)]
            taken = torch.cat([taken, top_up])
        self.active = taken.sort().values
        self.diag = {"cycle": float(self.cycle),
                     "selected_share": len(self.active) / len(self.pool)}

    def epoch_diagnostics(self) -> dict[str, float]:
        diag, self.diag = self.diag, {}
        return diag
