"""SNACS: hybrid single-shot pruning (seed 003, Ch. 4; Algorithm 4 rebuilt from the prose).

Paper: M. R. Ganesh, D. Blanchard, J. J. Corso, S. Y. Sekeh, "Slimming Neural Networks
using Adaptive Connectivity Scores", IEEE TNNLS 2022 (thesis Ch. 4).

After training and before one retraining pass, for every adjacent layer pair (l, l+1):

1. the top ``protect`` share of the filters of layer l+1 by sensitivity (§0.5, computed
   from the next layer's weight) keep all their incoming connections;
2. every other connection (child group i, parent group j) gets the connectivity score
   ``eta(i, j) = phi(i, j) * I(F_i^(l+1); F_j^(l) | rest of layer l)`` from the hash ACMI
   estimator (:mod:`thrifty.pruning.estimators`, linear in N);
3. the lowest-``eta`` connections of layer l+1 are cut up to its upper limit ``gamma_l``: the
   share of the layer's weights from RBF-SVM accuracies matched to the target sparsity
   ``tau`` (:mod:`thrifty.pruning.limits`), or given directly.

All scores come from the unpruned network (single shot).

Hyper-parameters (defaults):
- ``tau``: target sparsity of the pruned layers' weights, in [0, 1) (0.5).
- ``gamma``: per-layer limits, a float for every layer or ``{layer: share}``; skips the
  SVMs (default ``None``: from the SVMs and ``tau``).
- ``phi``: ``"exp_weight"`` (default, ``exp(-w^2/2)``), ``"weight"`` (``w``),
  ``"weight_sq"`` (``w^2``) or ``"one"`` (1); ``w`` = the mean of the connection's weights
  after min-max scaling of the child layer's signed weights to [0, 1].
- ``protect``: share of each layer's filters protected by sensitivity, in [0, 1] (0: off).
- ``groups``: as MINT (default: the largest divisor of the width at most 20; the last
  layer's children are the classes).
- ``per_class``: samples per class of the activation subset (100).
- ``cells``: occupied hash cells per block (default ``max(2, round(N ** 0.25))``);
  ``repeats``: hashes averaged (1); ``empty_cells``: count empty joint cells (``True``).
- ``delta``: optional raw threshold; only connections with ``eta <= delta`` may be cut
  (default ``None``: prune up to gamma, as the large-scale runs).
- ``svm_step``: percent between SVM compression levels (2: 1, 3, ..., 99).
- ``skip``: child layers never pruned (none). ``seed`` (0), ``progress`` (``True``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

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
    layer_masks,
    prune_lowest,
    prune_report,
    score_pairs,
    tie_rng,
)
from thrifty.pruning.estimators import acmi_from_codes, block_codes, default_cells
from thrifty.pruning.groups import (
    PairGroups,
    connection_mask,
    expand_mask,
    layer_pairs,
    pair_groups,
)
from thrifty.pruning.limits import (
    compression_levels,
    layer_inputs,
    match_sparsity,
    svm_accuracy_curve,
)
from thrifty.utils.masks import prunable_layers
from thrifty.utils.sensitivity import filter_sensitivity, protected_filters
from thrifty.utils.taps import balanced_subset

PHI = {"one": lambda w: np.ones_like(w), "weight": lambda w: w,
       "weight_sq": lambda w: w ** 2, "exp_weight": lambda w: np.exp(-w ** 2 / 2)}


@dataclass
class SnacsConfig:
    """The hyper-parameters of SNACS (see the module docstring for meanings and defaults)."""

    tau: float = 0.5
    gamma: float | dict[str, float] | None = None
    phi: str = "exp_weight"
    protect: float = 0.0
    groups: int | dict[str, int] | None = None
    per_class: int = 100
    cells: int | None = None
    repeats: int = 1
    empty_cells: bool = True
    delta: float | None = None
    svm_step: float = 2.0
    skip: tuple[str, ...] = field(default_factory=tuple)
    seed: int = 0
    progress: bool = True

    def validate(self) -> SnacsConfig:
        """Check ranges; raise ``ValueError`` naming the option."""
        check_share("tau", self.tau, 0.0, 0.999)
        gammas = self.gamma.values() if isinstance(self.gamma, Mapping) else [self.gamma]
        for g in gammas:
            if g is not None:
                check_share("gamma", g)
        if self.phi not in PHI:
            raise ValueError(f"phi must be one of {', '.join(PHI)}, got {self.phi!r}")
        check_share("protect", self.protect)
        if self.per_class < 1 or self.repeats < 1:
            raise ValueError("per_class and repeats must be at least 1")
        if self.cells is not None and self.cells < 2:
            raise ValueError(f"cells must be at least 2, got {self.cells}")
        compression_levels(self.svm_step)
        return self


# ------------------------------------------------------------------ connection scores
def hash_scorer(cells: int | None, repeats: int, empty_cells: bool):
    """A scorer factory for the hash ACMI: every group's X, Y and Z block is hashed once per
    repeat, so each connection only counts cells (linear in N)."""

    def prepare(child_acts: np.ndarray, parent_acts: np.ndarray, groups: PairGroups,
                seed: int) -> PairScorer:
        k = cells or default_cells(len(child_acts))
        rng = np.random.default_rng(seed)
        gc, gp = groups.shape
        codes = [([block_codes(child_acts[:, groups.child == i], k, rng) for i in range(gc)],
                  [block_codes(parent_acts[:, groups.parent == j], k, rng) for j in range(gp)],
                  [block_codes(parent_acts[:, groups.parent != j], k, rng) for j in range(gp)])
                 for _ in range(repeats)]
        return lambda i, j: float(np.mean([acmi_from_codes(cx[i], cy[j], cz[j],
                                                           empty_cells=empty_cells)
                                           for cx, cy, cz in codes]))

    return prepare


def block_means(values: torch.Tensor, groups: PairGroups) -> np.ndarray:
    """``[Gc, Gp]`` means of a ``[N_child, N_parent]`` matrix over each connection block."""
    v = values.double().numpy()
    gc, gp = groups.shape
    sums = np.zeros((gc, gp))
    np.add.at(sums, (groups.child[:, None], groups.parent[None, :]), v)
    counts = np.bincount(groups.child, minlength=gc)[:, None] * \
        np.bincount(groups.parent, minlength=gp)[None, :]
    return sums / counts


def per_connection(weight: torch.Tensor, n_parent: int) -> torch.Tensor:
    """``[N_child, N_parent]`` mean of the weight entries of each filter connection."""
    w = weight.detach().float().cpu()
    return w.reshape(w.shape[0], n_parent, -1).mean(2)


def phi_matrix(weight: torch.Tensor, groups: PairGroups, kind: str = "exp_weight"
               ) -> np.ndarray:
    """``phi`` of every connection from the child layer's weight (min-max scaled per layer,
    averaged over the connection block), as a ``[Gc, Gp]`` multiplier of the estimate."""
    w = weight.detach().float()
    span = (w.max() - w.min()).clamp_min(1e-12)
    scaled = per_connection((w - w.min()) / span, groups.pair.parent_width)
    return PHI[kind](block_means(scaled, groups))


# ------------------------------------------------------------------------- protection
def protection(model: nn.Module, groupings: list[PairGroups], share: float
               ) -> dict[str, np.ndarray]:
    """Per child layer, a bool vector of its protected filters (top ``share`` by
    sensitivity from the next layer's weight; layers with no next layer: none)."""
    layers = prunable_layers(model)
    consumer = {g.pair.parent: g.pair.child for g in groupings}
    out = {}
    for g in groupings:
        vec = np.zeros(g.pair.child_width, dtype=bool)
        nxt = consumer.get(g.pair.child)
        if share > 0 and nxt is not None:
            lam = filter_sensitivity(layers[nxt].weight, g.pair.child_width)
            vec[protected_filters(lam, share).numpy()] = True
        out[g.pair.child] = vec
    return out


def connection_sizes(groups: PairGroups, protected: np.ndarray, weight_numel: int
                     ) -> np.ndarray:
    """``[Gc, Gp]`` weights each connection removes when cut (protected rows excluded)."""
    per_entry = weight_numel // (groups.pair.child_width * groups.pair.parent_width)
    gc, gp = groups.shape
    free_rows = np.bincount(groups.child[~protected], minlength=gc)
    cols = np.bincount(groups.parent, minlength=gp)
    return (free_rows[:, None] * cols[None, :] * per_entry).astype(float)


# ------------------------------------------------------------------------------ limits
def _gamma_of(gamma: float | Mapping[str, float], layer: str) -> float:
    if isinstance(gamma, Mapping):
        if layer not in gamma:
            raise ValueError(f"no gamma for layer {layer!r}; give one for each of the pruned "
                             "layers, or a single value")
        return float(gamma[layer])
    return float(gamma)


def svm_gammas(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor,
               cut_at: Mapping[str, Any], cfg: SnacsConfig) -> tuple[dict[str, float], dict]:
    """Per-layer gammas from SVM accuracy curves matched to ``cfg.tau`` (§0.6)."""
    layers = prunable_layers(model)
    idx = balanced_subset(labels, cfg.per_class, cfg.seed)
    y = labels[idx].numpy()
    feeds = layer_inputs(model, inputs[idx], list(cut_at))
    levels = compression_levels(cfg.svm_step)
    curves = {name: svm_accuracy_curve(layers[name], feeds[name], y, mask_at, levels)
              for name, mask_at in cut_at.items()}
    reached = {name: np.array([1.0 - float(mask_at(c).float().mean()) for c in levels])
               for name, mask_at in cut_at.items()}
    total = sum(layers[n].weight.numel() for n in cut_at)
    betas = {n: layers[n].weight.numel() / total for n in cut_at}
    theta, gammas = match_sparsity(curves, levels, betas, cfg.tau, reached)
    return gammas, {"theta": theta, "levels": levels.tolist(),
                    "svm_accuracy": {n: c.tolist() for n, c in curves.items()},
                    "reached_at_level": {n: r.tolist() for n, r in reached.items()}}


def sparsity_warnings(report: Mapping[str, Any], cfg: SnacsConfig,
                      gammas: Mapping[str, float]) -> list[str]:
    """Warnings when the masks cut less than asked: the pruned layers' share below ``tau``
    by more than one level step, or a layer below its given ``gamma``."""
    layers = report["layers"]
    total = sum(v["weights"] for v in layers.values())
    reached = sum(v["weights"] * v["pruned_share"] for v in layers.values()) / max(1, total)
    why = ("protected filters keep their inputs" if cfg.protect > 0 else
           "delta keeps the connections scored above it" if cfg.delta is not None else
           "the SVM limits")
    if cfg.gamma is None:
        if abs(reached - cfg.tau) > cfg.svm_step / 100 + 1e-9:
            return [f"SNACS cut {reached:.3f} of the pruned layers' weights, not tau="
                    f"{cfg.tau} (the closest share reachable: {why}); lower protect or tau"]
        return []
    return [f"layer {n} lost {layers[n]['pruned_share']:.3f} of its weights, less than its "
            f"gamma {g} ({why})" for n, g in gammas.items()
            if layers[n]["pruned_share"] < g - 1.0 / layers[n]["weights"] - 1e-9
            and (cfg.protect > 0 or cfg.delta is not None)]


# ------------------------------------------------------------------------------ prune
def snacs_prune(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor,
                config: SnacsConfig | None = None, **options) -> PruneResult:
    """Prune ``model`` with SNACS; the model is not changed (apply the returned masks).

    Args:
        model: the trained network.
        inputs: ``[N, ...]`` training inputs (no augmentation).
        labels: ``[N]`` integer labels.
        config: hyper-parameters (default :class:`SnacsConfig`); ``**options`` override
            its fields.

    Returns:
        A :class:`~thrifty.pruning.core.PruneResult` with the ``eta`` scores; the report's
        ``settings`` hold the gammas and (when computed) the SVM curves and ``theta``.
    """
    cfg = SnacsConfig(**{**asdict(config or SnacsConfig()), **options}).validate()
    started = time.perf_counter()
    pairs = layer_pairs(model, cfg.skip)
    if not pairs:
        raise ValueError("the model has no adjacent prunable layer pair to prune")
    check_layer_keys("groups", cfg.groups, [n for p in pairs for n in (p.parent, p.child)])
    check_layer_keys("gamma", cfg.gamma, [p.child for p in pairs])
    groupings = [pair_groups(p, cfg.groups) for p in pairs]
    layers = prunable_layers(model)
    protected = protection(model, groupings, cfg.protect)
    skip_rows = {g.pair.child: np.bincount(g.child[~protected[g.pair.child]],
                                           minlength=g.shape[0]) == 0 for g in groupings}
    acts, _ = activation_sample(model, inputs, labels,
                                [n for g in groupings for n in (g.pair.parent, g.pair.child)],
                                cfg.per_class, cfg.seed)
    raw = score_pairs(groupings, acts, hash_scorer(cfg.cells, cfg.repeats, cfg.empty_cells),
                      cfg.seed, cfg.progress, skip_rows, desc="SNACS eta")
    eta = {g.pair.child: raw[g.pair.child] * phi_matrix(layers[g.pair.child].weight, g, cfg.phi)
           for g in groupings}
    if cfg.delta is not None:
        eta = {n: np.where(s <= cfg.delta, s, np.nan) for n, s in eta.items()}
    sizes = {g.pair.child: connection_sizes(g, protected[g.pair.child],
                                            layers[g.pair.child].weight.numel())
             for g in groupings}

    def cut(name: str, share: float) -> np.ndarray:
        return prune_lowest(eta[name], share * layers[name].weight.numel(), sizes[name],
                            rng=tie_rng(cfg.seed, name))

    svm_info: dict[str, Any] = {}
    if cfg.gamma is None:
        cut_at = {g.pair.child: (lambda c, g=g: expand_mask(
            connection_mask(g, cut(g.pair.child, c), protected[g.pair.child]),
            layers[g.pair.child].weight.shape)) for g in groupings}
        gammas, svm_info = svm_gammas(model, inputs, labels, cut_at, cfg)
    else:
        gammas = {g.pair.child: _gamma_of(cfg.gamma, g.pair.child) for g in groupings}
    masks = layer_masks(model, groupings, {n: cut(n, gammas[n]) for n in gammas}, protected)
    settings = {**asdict(cfg), "gammas": gammas, **svm_info}
    extra = {n: {"gamma": gammas[n], "protected_filters": int(protected[n].sum())}
             for n in gammas}
    report = prune_report(model, masks, groupings, "snacs", settings, started, extra)
    layers_total = sum(v["weights"] for v in report["layers"].values())
    report["settings"]["reached"] = sum(v["weights"] * v["pruned_share"] for v in
                                        report["layers"].values()) / max(1, layers_total)
    report["warnings"] += sparsity_warnings(report, cfg, gammas)
    return PruneResult(masks, report, eta)


@register_method("snacs", "pruner", "hash-estimated MI x phi(weight), per-layer limits from "
                 "SVM accuracies matched to a sparsity tau, optional sensitivity protection "
                 "(docs/methods/snacs.md)")
class SNACS(PruneMethod):
    """SNACS as an object: ``SNACS(tau=0.6).prune(model, inputs, labels)``.

    Args: the fields of :class:`SnacsConfig` as keywords (checked here); its signature is
    theirs, so the registry (``thrifty prune --method snacs``) lists them.
    """

    config_class = SnacsConfig
    prune_fn = staticmethod(snacs_prune)
    #: ``prune`` needs training inputs and labels (the activation subset)
    needs_inputs = True
    __signature__ = config_signature(SnacsConfig)
