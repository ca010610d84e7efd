"""SeTa (Zhou et al., CVPR 2025): scale-efficient training by a sliding window over
loss-sorted groups of a random subset."""

from __future__ import annotations

import numpy as np
import torch

from thrifty.engine.interfaces import EpochSampler, TrainContext
from thrifty.methods import register_method
from thrifty.sampling.infobatch import anneal_start
from thrifty.utils.params import Interval, Param, validate_params
from thrifty.utils.random import draw_generator
from thrifty.utils.shares import share_count

#: The score of a sample never trained on (the official code's initial value).
UNSEEN_SCORE = 3.0


def loss_groups(scores: np.ndarray, k: int) -> list[np.ndarray]:
    """Positions of ``scores`` in ``k`` groups by 1-D k-means (scikit-learn, seeded 0),
    ordered from the lowest mean score (easy) to the highest (hard). Equal scores (or
    fewer distinct values than ``k``) give ``k`` equal chunks of the sorted order."""
    order = np.argsort(scores, kind="stable")
    if len(np.unique(scores)) < k:
        return [c for c in np.array_split(order, k)]
    from sklearn.cluster import KMeans

    labels = KMeans(n_clusters=k, n_init=1, random_state=0).fit_predict(
        scores.reshape(-1, 1).astype(np.float64))
    groups = [np.flatnonzero(labels == c) for c in range(k)]
    return sorted(groups, key=lambda g: float(scores[g].mean()) if len(g) else np.inf)


def window_start(t: int, k: int, w: int) -> int:
    """The first group of the window at pruning epoch ``t``: it slides from easy to hard,
    one group per epoch, and starts over (``t mod (k - w + 1)``)."""
    return t % (k - w + 1)


@register_method("seta", "sampler",
                 "SeTa: random pruning, then a sliding window over loss-sorted k-means "
                 "groups, easy to hard; random subsets while annealing")
class SeTa(EpochSampler):
    """SeTa: each epoch, a random subset, grouped by loss, of which a window of groups that
    slides from easy to hard is trained.

    Zhou, Gao, Wang et al., "Scale Efficient Training for Large Datasets", CVPR 2025
    (arXiv:2503.13385; official code github.com/mrazhou/SeTa). A sample's score is its
    latest training loss from the engine's record (no extra forward pass). In a pruning
    epoch t (0-based, counted over the pruning epochs):

    1. keep a uniform random share ``1 - prune_ratio`` of the pool (at least 10 %);
    2. split it into ``groups`` groups by 1-D k-means on the scores, easy to hard;
    3. train the ``w = round(groups * window)`` consecutive groups starting at
       ``t mod (groups - w + 1)``; in the first pruning epoch, every group.

    The last ``1 - delta`` share of the epochs (annealing) trains a uniform random share
    ``1 - prune_ratio`` of the pool. Losses are not reweighted.

    Args:
        prune_ratio: p, the share of the pool randomly dropped each epoch, in [0, 0.9].
            Default 0.1 (the official CIFAR "lossless" script).
        groups: k, the number of loss groups, >= 1. Default 5 (both official scripts).
        window: the share of the groups trained, in (0, 1]. Default 0.9 (CIFAR; the
            ImageNet script uses 0.6).
        delta: the share of the epochs that prune by the window, in [0, 1]. Default 0.875.

    Decisions: never-trained samples score :data:`UNSEEN_SCORE` (3.0), as in the official
    code; the random subset holds ``floor((1 - p) * n)`` samples; each epoch's draw uses a
    generator seeded by (run seed, epoch); the window slides cyclically, as the official
    code does (the paper's text speaks of an easy-to-hard curriculum).

    Per-epoch diagnostics: ``annealing``, ``window_start``, ``selected_share``.
    """

    name = "seta"
    loss_kinds = ("train",)
    needs_train_losses = True
    _state_attrs = ("active", "diag")
    _parameter_constraints = {
        "prune_ratio": Param(Interval(float, 0, 0.9), label="p",
                             hint="the random share dropped each epoch; 0.1 in the paper's "
                                  "CIFAR script"),
        "groups": Param(Interval(int, 1, None), label="k", hint="5 in the paper's scripts"),
        "window": Param(Interval(float, 0, 1, closed="right"), label="window scale",
                        hint="0.9 (CIFAR) or 0.6 (ImageNet)"),
        "delta": Param(Interval(float, 0, 1), label="share of epochs with pruning",
                       hint="0.875 anneals the last eighth"),
    }

    def __init__(self, prune_ratio: float = 0.1, groups: int = 5, window: float = 0.9,
                 delta: float = 0.875) -> None:
        super().__init__()
        v = validate_params("SeTa", {"prune_ratio": prune_ratio, "groups": groups,
                                     "window": window, "delta": delta},
                            self._parameter_constraints)
        self.prune_ratio, self.groups = v["prune_ratio"], v["groups"]
        self.window, self.delta = v["window"], v["delta"]
        self.diag: dict[str, float] = {}

    @property
    def width(self) -> int:
        """w, the groups trained per pruning epoch (at least 1)."""
        return max(1, min(self.groups, round(self.groups * self.window)))

    def begin_epoch(self, ctx: TrainContext) -> None:
        g = draw_generator(self.seed, ctx.epoch, self.name)
        keep = share_count(1 - self.prune_ratio, len(self.pool), rounding="floor", minimum=1)
        subset = self.pool[torch.randperm(len(self.pool), generator=g)[:keep]]
        annealing = ctx.epoch >= anneal_start(ctx.epochs, self.delta)
        self.diag = {"annealing": float(annealing), "window_start": -1.0}
        if not annealing and ctx.epoch > 0 and self.width < self.groups:
            scores = ctx.record.losses(subset, "train").numpy().copy()
            scores[np.isnan(scores)] = UNSEEN_SCORE
            groups = loss_groups(scores, min(self.groups, len(subset)))
            start = window_start(ctx.epoch, len(groups), min(self.width, len(groups)))
            chosen = np.concatenate(groups[start:start + self.width])
            subset = subset[torch.from_numpy(np.sort(chosen))]
            self.diag["window_start"] = float(start)
        self.active = subset.sort().values
        self.diag["selected_share"] = len(self.active) / len(self.pool)

    def epoch_diagnostics(self) -> dict[str, float]:
        diag, self.diag = self.diag, {}
        return diag
