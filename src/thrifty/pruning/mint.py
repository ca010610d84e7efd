"""MINT: Mutual Information-based Neuron Trimming (seed 003, Ch. 3, Algorithm 1).

Paper: M. R. Ganesh, J. J. Corso, S. Y. Sekeh, "MINT: Deep Network Compression via Mutual
Information-based Neuron Trimming", ICPR 2020 (thesis Ch. 3).

After training and before one retraining pass, for every adjacent layer pair (l, l+1), the
filters of both layers are split into sequential groups and every connection (child group
i of l+1, parent group j of l) gets the score
``rho(i, j) = I(F_i^(l+1); F_j^(l) | rest of layer l)`` from the MST conditional GMI
estimator (:func:`~thrifty.pruning.estimators.gmi_mst`) on the activations of a
class-balanced training subset. Connections with ``rho <= cutoff`` are cut (whole kernels
``W[i, j]``); a layer that would lose more than ``gamma`` of its weights instead loses
exactly its ``floor(gamma * connections)`` lowest-``rho`` connections.

Hyper-parameters (defaults):
- ``groups``: groups per layer, an int for all layers or ``{layer: G}`` (default ``None``:
  the largest divisor of the width that is at most 20); the last layer's children are
  always one group per class.
- ``per_class``: ``m``, samples per class of the activation subset (100; the thesis uses
  250–650 on MNIST, digits has about 135 per class).
- ``delta``: threshold (0.645, the thesis's MLP value).
- ``delta_mode``: ``"quantile"`` (default, as the reference code: the cutoff is
  ``sorted_unique[min(round(delta * len), len - 1)]`` over the unique ``rho`` values pooled
  over all pairs, ``delta`` in [0, 1]) or ``"raw"`` (cut ``rho <= delta``). The estimator
  takes discrete values ``1 - r/n``, so many connections tie and a small quantile can cut a
  lot.
- ``gamma``: per-layer cap on the pruned share, in [0, 1] (0.75); connections tied at the
  cap are cut in a random order seeded by ``seed`` (not row-major, which would make the
  low-index child groups lose every tie).
- ``skip``: child layers never pruned (none). ``seed`` (0), ``progress`` (``True``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from thrifty.methods import config_signature, register_method
from thrifty.pruning.core import (
    PairScorer,
    PruneMethod,
    PruneResult,
    activation_sample,
    check_layer_keys,
    check_share,
    group_blocks,
    layer_masks,
    prune_lowest,
    prune_report,
    score_pairs,
    tie_rng,
)
from thrifty.pruning.estimators import gmi_mst
from thrifty.pruning.groups import PairGroups, layer_pairs, pair_groups

DELTA_MODES = ("quantile", "raw")


def pair_seed(seed: int, i: int, j: int) -> int:
    """A distinct deterministic seed for connection ``(i, j)`` of a pair seeded ``seed``."""
    return (seed * 1_000_003 + i * 10_007 + j) % 2**32


def mst_scorer(child_acts: np.ndarray, parent_acts: np.ndarray, groups: PairGroups,
               seed: int) -> PairScorer:
    """``rho(i, j)`` of one pair by the MST estimator (§0.3)."""
    return lambda i, j: gmi_mst(*group_blocks(child_acts, parent_acts, groups, i, j),
                                seed=pair_seed(seed, i, j))


def delta_cutoff(scores: Iterable[np.ndarray], delta: float, mode: str = "quantile") -> float:
    """The global cutoff: ``delta`` itself (``raw``) or the ``delta`` quantile of the sorted
    unique pooled scores (``quantile``)."""
    if mode == "raw":
        return delta
    unique = np.unique(np.concatenate([s[~np.isnan(s)].ravel() for s in scores]))
    return float(unique[min(round(delta * len(unique)), len(unique) - 1)])


def threshold_with_cap(scores: np.ndarray, cutoff: float, gamma: float,
                       rng: np.random.Generator | None = None) -> np.ndarray:
    """Cut ``scores <= cutoff``; if that cuts more than ``gamma`` of the connections, cut
    the ``floor(gamma * n)`` lowest instead (Algorithm 1, step 4), ties between equal
    scores broken in a random order from ``rng`` (default ``None``: row-major)."""
    cut = scores <= cutoff
    if cut.mean() > gamma:
        cut = prune_lowest(scores, math.floor(gamma * scores.size + 1e-9), rng=rng)
    return cut


@dataclass
class MintConfig:
    """The hyper-parameters of MINT (see the module docstring for meanings and defaults)."""

    groups: int | dict[str, int] | None = None
    per_class: int = 100
    delta: float = 0.645
    delta_mode: str = "quantile"
    gamma: float = 0.75
    skip: tuple[str, ...] = field(default_factory=tuple)
    seed: int = 0
    progress: bool = True

    def validate(self) -> MintConfig:
        """Check ranges; raise ``ValueError`` naming the option."""
        if self.delta_mode not in DELTA_MODES:
            raise ValueError(f"delta_mode must be one of {DELTA_MODES}, got {self.delta_mode!r}")
        if self.delta_mode == "quantile":
            check_share("delta (a quantile with delta_mode=quantile)", self.delta)
        check_share("gamma", self.gamma)
        if self.per_class < 1:
            raise ValueError(f"per_class must be at least 1, got {self.per_class}")
        return self


def mint_prune(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor,
               config: MintConfig | None = None, **options) -> PruneResult:
    """Prune ``model`` with MINT; the model is not changed (apply the returned masks).

    Args:
        model: the trained network.
        inputs: ``[N, ...]`` training inputs (no augmentation).
        labels: ``[N]`` integer labels.
        config: hyper-parameters (default :class:`MintConfig`); ``**options`` override
            its fields (``groups``, ``per_class``, ``delta``, ``delta_mode``, ``gamma``,
            ``skip``, ``seed``, ``progress``).

    Returns:
        A :class:`~thrifty.pruning.core.PruneResult` (masks, report, ``rho`` scores).
    """
    cfg = MintConfig(**{**asdict(config or MintConfig()), **options}).validate()
    started = time.perf_counter()
    pairs = layer_pairs(model, cfg.skip)
    if not pairs:
        raise ValueError("the model has no adjacent prunable layer pair to prune")
    layers = [n for p in pairs for n in (p.parent, p.child)]
    check_layer_keys("groups", cfg.groups, layers)
    groupings = [pair_groups(p, cfg.groups) for p in pairs]
    acts, _ = activation_sample(model, inputs, labels, layers, cfg.per_class, cfg.seed)
    rho = score_pairs(groupings, acts, mst_scorer, cfg.seed, cfg.progress, desc="MINT rho")
    cutoff = delta_cutoff(rho.values(), cfg.delta, cfg.delta_mode)
    cut = {name: threshold_with_cap(s, cutoff, cfg.gamma, tie_rng(cfg.seed, name))
           for name, s in rho.items()}
    masks = layer_masks(model, groupings, cut)
    settings = {**asdict(cfg), "cutoff": cutoff, "samples": cfg.per_class * len(labels.unique())}
    return PruneResult(masks, prune_report(model, masks, groupings, "mint", settings, started),
                       rho)


@register_method("mint", "pruner", "conditional MI (MST estimator) between filter groups of "
                 "adjacent layers; cut below a quantile delta, at most gamma per layer "
                 "(docs/methods/mint.md)")
class MINT(PruneMethod):
    """MINT as an object: ``MINT(delta=0.645).prune(model, inputs, labels)``.

    Args: the fields of :class:`MintConfig` as keywords (checked here); its signature is
    theirs, so the registry (``thrifty prune --method mint``) lists them.
    """

    config_class = MintConfig
    prune_fn = staticmethod(mint_prune)
    #: ``prune`` needs training inputs and labels (the activation subset)
    needs_inputs = True
    __signature__ = config_signature(MintConfig)
