"""RPC and RPD: random offline reduction (baselines of seed 000).

- **RPC** (random per class): keep a random share alpha of every class, ``ceil(alpha*L_i)``
  samples of class i (at least one per class).
- **RPD** (random per dataset): keep ``ceil(alpha*N)`` samples drawn from the whole dataset,
  regardless of class.

Both are static for the whole run (alpha = 0.8 in the seed paper, Table A1) and seeded; the
kept indices are saved with the run.
"""

from __future__ import annotations

from typing import Any

import torch

from thrifty.engine.interfaces import Reducer, TrainContext
from thrifty.methods import register_method
from thrifty.offline.common import check_alpha, check_class_labels, keep_count


def _check_class_labels(labels: Any) -> torch.Tensor:
    """Labels for a per-class draw as a CPU long tensor: one class per sample, none negative.

    Raises ``ValueError`` for an empty, multi-label (``(N, C)``) or unlabeled (label < 0)
    set, naming RPD (classes ignored) as the way out.

    Args:
        labels: class of every sample, ``(N,)`` (or ``(N, 1)``).
    """
    return check_class_labels(labels, "RPC (a draw per class)",
                              "use rpd (random per dataset, classes ignored)")


def random_per_class(labels: torch.Tensor, alpha: float, seed: int = 0) -> torch.Tensor:
    """Indices of a random share ``alpha`` of each class (sorted): ``ceil(alpha * L_i)``
    samples of class i, at least one.

    Args:
        labels: class of every sample (non-negative; unlabeled samples are refused).
        alpha: kept share in (0, 1] (a bool is refused).
        seed: seed of the draw. Default 0.
    """
    alpha = check_alpha(alpha)
    labels = _check_class_labels(labels)
    g = torch.Generator().manual_seed(seed)
    kept = []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        k = keep_count(alpha, len(members))  # 0.55 * 100 -> 55, not 56
        kept.append(members[torch.randperm(len(members), generator=g)[:k]])
    return torch.cat(kept).sort().values


def random_per_dataset(n: int, alpha: float, seed: int = 0) -> torch.Tensor:
    """Indices of a random share ``alpha`` of ``n`` samples (sorted): ``ceil(alpha * n)``.

    Args:
        n: number of samples (labels are not needed).
        alpha: kept share in (0, 1] (a bool is refused).
        seed: seed of the draw. Default 0.
    """
    alpha = check_alpha(alpha)
    if n <= 0:
        raise ValueError("cannot reduce an empty dataset")
    g = torch.Generator().manual_seed(seed)
    k = keep_count(alpha, n)  # float noise must not add a sample
    return torch.randperm(n, generator=g)[:k].sort().values


@register_method("rpc", "reducer", "random share alpha of each class (offline)")
class RPC(Reducer):
    """Random per class: keep ``ceil(alpha * L_i)`` random samples of every class i.

    Args:
        alpha: kept share in (0, 1]. Default 0.8.
        seed: seed of the draw; ``None`` uses the run's seed. Default ``None``.
    """

    name = "rpc"
    needs_labels = True

    def __init__(self, alpha: float = 0.8, seed: int | None = None) -> None:
        self.alpha = check_alpha(alpha)
        self.seed = seed

    def fit(self, labels: torch.Tensor, *, seed: int = 0, dataset: Any = None,
            ctx: TrainContext | None = None) -> RPC:
        """Draw the subset.

        Args:
            labels: class of every sample (non-negative).
            seed: the run's seed, used unless ``seed`` was given. Default 0.
            dataset: unused. Default ``None``.
            ctx: unused. Default ``None``.
        """
        self.indices_ = random_per_class(labels, self.alpha, seed if self.seed is None
                                         else self.seed)
        return self


@register_method("rpd", "reducer", "random share alpha of the whole dataset (offline)")
class RPD(Reducer):
    """Random per dataset: keep ``ceil(alpha * N)`` random samples, classes ignored.

    Args:
        alpha: kept share in (0, 1]. Default 0.8.
        seed: seed of the draw; ``None`` uses the run's seed. Default ``None``.
    """

    name = "rpd"

    def __init__(self, alpha: float = 0.8, seed: int | None = None) -> None:
        self.alpha = check_alpha(alpha)
        self.seed = seed

    def fit(self, labels: torch.Tensor, *, seed: int = 0, dataset: Any = None,
            ctx: TrainContext | None = None) -> RPD:
        """Draw the subset (only the number of labels is used).

        Args:
            labels: one entry per sample (their values are ignored).
            seed: the run's seed, used unless ``seed`` was given. Default 0.
            dataset: unused. Default ``None``.
            ctx: unused. Default ``None``.
        """
        self.indices_ = random_per_dataset(len(labels), self.alpha,
                                           seed if self.seed is None else self.seed)
        return self
