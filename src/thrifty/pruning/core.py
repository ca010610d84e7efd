"""The functional core shared by MINT, SNACS and the baselines: activation samples, the loop
over (child group, parent group) connections, lowest-score pruning and the pruning report.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from thrifty.pruning.groups import PairGroups, connection_mask, expand_mask
from thrifty.utils.masks import prunable_layers
from thrifty.utils.taps import balanced_subset, collect_activations

#: ``scorer(i, j) -> score`` of the connection (child group i, parent group j) of one pair
PairScorer = Callable[[int, int], float]
#: ``prepare(child_acts, parent_acts, groups, seed) -> scorer`` builds one pair's scorer
ScorerFactory = Callable[[np.ndarray, np.ndarray, PairGroups, int], PairScorer]


@dataclass
class PruneResult:
    """Masks of a pruned model and the report of how they were made.

    Attributes:
        masks: layer name -> bool tensor shaped like its weight (True = kept).
        report: ``method``, ``layers`` (per pruned layer: ``pruned_share``, ``weights``,
            ``groups``), ``total_pruned_share`` (share of all Conv + Linear weights),
            ``time_s`` (seconds) and ``settings``.
        scores: layer name -> ``[child groups, parent groups]`` connection scores.
    """

    masks: dict[str, torch.Tensor]
    report: dict[str, Any]
    scores: dict[str, np.ndarray] = field(default_factory=dict)


class PruneMethod:
    """The thin class over a pruning function: options checked at construction, then
    ``prune(model, inputs, labels)``; subclasses set ``config_class`` and ``prune_fn``."""

    config_class: Any
    prune_fn: Callable[..., PruneResult]

    def __init__(self, **options) -> None:
        self.config = self.config_class(**options).validate()

    def prune(self, model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor
              ) -> PruneResult:
        """Masks and report for ``model`` (see the method's ``*_prune`` function)."""
        return self.prune_fn(model, inputs, labels, self.config)

    def get_params(self) -> dict:
        """The hyper-parameters (for reproducible configs)."""
        return asdict(self.config)


def activation_sample(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor,
                      layers: Iterable[str], per_class: int, seed: int = 0,
                      batch_size: int = 512) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Spatial-mean activations ``[N, C]`` of ``layers`` on a class-balanced subset (§0.1).

    Args:
        model: the trained network (weights frozen; eval mode while collecting).
        inputs: ``[N, ...]`` training inputs (normalised, no augmentation).
        labels: ``[N]`` integer labels.
        layers: module names to tap.
        per_class: ``m``, samples drawn per class.
        seed: seed of the draw (default 0).
        batch_size: forward batch size (default 512).

    Returns:
        ``({layer: float64 array [m*C, width]}, labels of the subset)``.
    """
    idx = balanced_subset(labels, per_class, seed)
    device = next(model.parameters()).device
    acts = collect_activations(model, inputs[idx], list(dict.fromkeys(layers)),
                               batch_size=batch_size, device=device)
    out = {k: v.double().numpy() for k, v in acts.items()}
    check_finite(out)
    return out, labels[idx].numpy()


def check_finite(acts: Mapping[str, np.ndarray | torch.Tensor]) -> None:
    """Refuse NaN/inf activations: every score computed from them would be meaningless.

    Raises:
        ValueError: naming the first layer with non-finite values and how many.
    """
    for name, values in acts.items():
        values = values.numpy() if isinstance(values, torch.Tensor) else values
        bad = ~np.isfinite(values)
        if bad.any():
            raise ValueError(f"layer {name!r} gives {int(bad.sum())} NaN/inf activation "
                             f"value(s) of {values.size} on the activation subset: the model's "
                             "weights or the inputs are broken (check the checkpoint, the "
                             "dataset and its normalisation); nothing was pruned")


def score_matrix(scorer: PairScorer, shape: tuple[int, int], skip_rows: np.ndarray | None = None,
                 bar: tqdm | None = None) -> np.ndarray:
    """``[Gc, Gp]`` scores of every connection; rows in ``skip_rows`` are left ``NaN``."""
    scores = np.full(shape, np.nan)
    for i in range(shape[0]):
        if skip_rows is not None and skip_rows[i]:
            if bar is not None:
                bar.update(shape[1])
            continue
        for j in range(shape[1]):
            scores[i, j] = scorer(i, j)
            if bar is not None:
                bar.update(1)
    return scores


def score_pairs(groupings: list[PairGroups], acts: Mapping[str, np.ndarray],
                prepare: ScorerFactory, seed: int = 0, progress: bool = True,
                skip_rows: Mapping[str, np.ndarray] | None = None, desc: str = "scoring"
                ) -> dict[str, np.ndarray]:
    """Connection scores of every layer pair (all from the unpruned network: single shot).

    Args:
        groupings: the grouping of each pair.
        acts: activations by layer name (see :func:`activation_sample`).
        prepare: builds the scorer of one pair.
        seed: base seed; pair ``p`` uses ``seed + p`` (default 0).
        progress: show a tqdm bar over all connections (default ``True``).
        skip_rows: per child layer, child groups not to score (protected), default none.
        desc: the progress bar's label.
    """
    skip_rows = skip_rows or {}
    total = sum(int(np.prod(g.shape)) for g in groupings)
    with tqdm(total=total, desc=desc, unit="pair", disable=not progress, leave=False) as bar:
        return {g.pair.child: score_matrix(
                    prepare(acts[g.pair.child], acts[g.pair.parent], g, seed + p), g.shape,
                    skip_rows.get(g.pair.child), bar)
                for p, g in enumerate(groupings)}


def group_blocks(child_acts: np.ndarray, parent_acts: np.ndarray, groups: PairGroups,
                 i: int, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, Y, Z)`` of a connection: child group ``i``, parent group ``j``, rest of the
    parent layer (§0.1)."""
    in_j = groups.parent == j
    return child_acts[:, groups.child == i], parent_acts[:, in_j], parent_acts[:, ~in_j]


def tie_rng(seed: int, layer: str) -> np.random.Generator:
    """The generator that breaks score ties in ``layer`` (same ``seed``, same order)."""
    return np.random.default_rng([seed % 2**32, zlib.crc32(layer.encode())])


def prune_lowest(scores: np.ndarray, budget: float, sizes: np.ndarray | None = None,
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """Cut the lowest-scoring connections while their total size stays within ``budget``.

    Args:
        scores: ``[Gc, Gp]`` scores; ``NaN`` entries are never cut (protected).
        budget: the most weights to cut (in units of ``sizes``).
        sizes: ``[Gc, Gp]`` weights per connection (default: 1 each).
        rng: breaks ties between equal scores in a random order drawn from it (default
            ``None``: row-major order, which makes low-index child groups lose every tie).

    Returns:
        Bool ``[Gc, Gp]``, True = cut.
    """
    sizes = np.ones_like(scores) if sizes is None else sizes
    flat = scores.ravel()
    first = rng.permutation(flat.size) if rng is not None else np.arange(flat.size)
    keyed = np.where(np.isnan(flat), np.inf, flat)[first]
    order = first[np.argsort(keyed, kind="stable")]
    order = order[~np.isnan(flat[order])]
    within = np.cumsum(sizes.ravel()[order]) <= budget + 1e-9
    cut = np.zeros(flat.shape, dtype=bool)
    cut[order[within]] = True  # sizes are positive, so `within` is a prefix
    return cut.reshape(scores.shape)


def layer_masks(model: nn.Module, groupings: list[PairGroups], pruned: Mapping[str, np.ndarray],
                protected: Mapping[str, np.ndarray] | None = None) -> dict[str, torch.Tensor]:
    """Weight-shaped masks of the child layers from their ``[Gc, Gp]`` cut matrices."""
    layers = prunable_layers(model)
    protected = protected or {}
    return {g.pair.child: expand_mask(connection_mask(g, pruned[g.pair.child],
                                                      protected.get(g.pair.child)),
                                      layers[g.pair.child].weight.shape)
            for g in groupings}


def prune_report(model: nn.Module, masks: Mapping[str, torch.Tensor],
                 groupings: Iterable[PairGroups], method: str, settings: Mapping[str, Any],
                 started: float, extra: Mapping[str, Mapping[str, Any]] | None = None
                 ) -> dict[str, Any]:
    """The report of a pruning: per-layer and total pruned shares, time, settings.

    Args:
        model: the pruned model (for the total weight count).
        masks: the masks.
        groupings: the pairs' groupings (for the group counts).
        method: method name.
        settings: hyper-parameters to record.
        started: ``time.perf_counter()`` at the start.
        extra: optional per-layer fields to add (e.g. ``gamma``).
    """
    groups = {g.pair.child: list(g.shape) for g in groupings}
    extra = extra or {}
    weights = {n: m.weight.numel() for n, m in prunable_layers(model).items()}
    layers = {name: {"pruned_share": float(1 - mask.float().mean()), "weights": weights[name],
                     "groups": groups.get(name), "inputless_filters": inputless(mask),
                     **extra.get(name, {})}
              for name, mask in masks.items()}
    pruned = sum(int((~m).sum()) for m in masks.values())
    return {"method": method, "layers": layers,
            "total_pruned_share": pruned / max(1, sum(weights.values())),
            "time_s": time.perf_counter() - started, "settings": dict(settings),
            "warnings": layer_warnings(layers)}


def inputless(mask: torch.Tensor) -> int:
    """Child filters (rows of a weight mask) that lost every input connection."""
    return int((~mask.flatten(1).any(1)).sum())


def layer_warnings(layers: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Warnings on layers cut entirely and child filters left without inputs."""
    out = []
    for name, v in layers.items():
        if v["pruned_share"] >= 1.0:
            out.append(f"layer {name} is cut 100%: its output no longer depends on its input "
                       "(lower the share, gamma or tau, or skip the layer)")
        elif v.get("inputless_filters"):
            out.append(f"layer {name}: {v['inputless_filters']} filter(s) lost all their "
                       "inputs (their output is the bias alone)")
    return out


def check_layer_keys(option: str, value: Any, layers: Iterable[str]) -> None:
    """Refuse a per-layer mapping that names a layer outside ``layers``."""
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(layers))
        if unknown:
            raise ValueError(f"{option} names {', '.join(unknown)}, not among the layers of "
                             f"the pairs: {', '.join(layers)}")


def check_share(name: str, value: float, low: float = 0.0, high: float = 1.0) -> float:
    """``value`` as a float if it lies in ``[low, high]``; a ``ValueError`` naming it else."""
    value = float(value)
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return value
