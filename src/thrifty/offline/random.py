"""RPC and RPD: random offline reduction (baselines of seed 000).

- **RPC** (random per class): keep a random share alpha of every class, ``ceil(alpha*L_i)``
  samples of class i (at least one per class).
- **RPD** (random per dataset): keep ``ceil(alpha*N)`` samples drawn from the whole dataset,
  regardless of class.

Both are static for the whole run (alpha = 0.8 in the seed paper, Table A1) and seeded; the
kept indices are saved with the run.
"""

from __future__ import annotations

import math

import torch

from thrifty.engine.interfaces import Reducer
from thrifty.methods import register_method


def _check_alpha(alpha: float) -> float:
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha (the kept share) must be in (0, 1], got {alpha}; "
                         "1 keeps everything, 0.8 is the paper's default")
    return float(alpha)


def random_per_class(labels: torch.Tensor, alpha: float, seed: int = 0) -> torch.Tensor:
    """Indices of a random share ``alpha`` of each class (sorted)."""
    alpha = _check_alpha(alpha)
    g = torch.Generator().manual_seed(seed)
    kept = []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        k = max(1, math.ceil(round(alpha * len(members), 9)))  # 0.55 * 100 -> 55, not 56
        kept.append(members[torch.randperm(len(members), generator=g)[:k]])
    return torch.cat(kept).sort().values


def random_per_dataset(n: int, alpha: float, seed: int = 0) -> torch.Tensor:
    """Indices of a random share ``alpha`` of ``n`` samples (sorted)."""
    alpha = _check_alpha(alpha)
    if n <= 0:
        raise ValueError("cannot reduce an empty dataset")
    g = torch.Generator().manual_seed(seed)
    k = max(1, math.ceil(round(alpha * n, 9)))  # float noise must not add a sample
    return torch.randperm(n, generator=g)[:k].sort().values


@register_method("rpc", "reducer", "random share alpha of each class (offline)")
class RPC(Reducer):
    """Random per class: keep ``ceil(alpha * L_i)`` random samples of every class i.

    Args:
        alpha: kept share in (0, 1]. Default 0.8.
        seed: seed of the draw; ``None`` uses the run's seed. Default ``None``.
    """

    name = "rpc"

    def __init__(self, alpha: float = 0.8, seed: int | None = None) -> None:
        self.alpha = _check_alpha(alpha)
        self.seed = seed

    def fit(self, labels: torch.Tensor, *, seed: int = 0, dataset=None, trainer=None) -> RPC:
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
        self.alpha = _check_alpha(alpha)
        self.seed = seed

    def fit(self, labels: torch.Tensor, *, seed: int = 0, dataset=None, trainer=None) -> RPD:
        self.indices_ = random_per_dataset(len(labels), self.alpha,
                                           seed if self.seed is None else self.seed)
        return self
