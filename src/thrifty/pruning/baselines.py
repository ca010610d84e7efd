"""Magnitude and random pruning at a given sparsity: the baselines MINT and SNACS are
compared with (seed 003, §7).

Both cut filter *connections* (whole kernels ``W[i, j]`` of a conv, the column block of
one parent channel for a ``Linear`` after a conv and a flatten, single weights of a plain
``Linear``), the granularity of MINT/SNACS with one filter per group, in the same layers
(the children of the layer pairs; the first layer is never pruned). Magnitude scores a
connection by the L1 norm of its weights; ties are broken in a random order from ``seed``.
The per-layer shares are either one ``sparsity`` for every layer or copied from an earlier
pruning report (``match``: the ``layers`` of a ``prune.json``), so a baseline prunes exactly
as much, layer by layer, as the method it is compared with.

Hyper-parameters (defaults): ``sparsity`` (share cut in each layer, in [0, 1]; default
``None``, then ``match`` is required), ``match`` (a report dict or the path of a
``prune.json``; default ``None``), ``skip`` (child layers never pruned, also under
``match``), ``seed`` (0: random scores, magnitude ties).

:func:`baseline_prune` is the functional form; :class:`MagnitudePruning` and
:class:`RandomPruning` are the registered pruners ``magnitude`` and ``random`` of
:mod:`thrifty.methods` (``thrifty prune --method magnitude``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from thrifty.methods import config_signature, register_method
from thrifty.pruning.core import (
    PruneMethod,
    PruneResult,
    check_share,
    layer_masks,
    prune_lowest,
    prune_report,
    tie_rng,
)
from thrifty.pruning.groups import LayerPair, PairGroups, group_labels, layer_pairs, out_width
from thrifty.utils.masks import prunable_layers


def layer_shares(model: nn.Module, sparsity: float | None = None,
                 match: Mapping[str, Any] | str | Path | None = None,
                 skip: tuple[str, ...] | str = ()) -> dict[str, float]:
    """Share to cut in each child layer: ``sparsity`` everywhere or the shares of ``match``
    (layers in ``skip`` left out either way)."""
    skipped = {skip} if isinstance(skip, str) else set(skip)
    children = [p.child for p in layer_pairs(model, skipped)]  # also checks the skip names
    check_one_source(sparsity, match)
    if sparsity is not None:
        return {c: check_share("sparsity", sparsity) for c in children}
    report = match if isinstance(match, Mapping) else _read_report(Path(match))
    layers = prunable_layers(model)
    unknown = sorted(set(report["layers"]) - set(layers))
    if unknown:
        raise ValueError(f"the report to match prunes {', '.join(unknown)}, which this model "
                         "does not have: it belongs to another model")
    return {n: float(v["pruned_share"]) for n, v in report["layers"].items()
            if n not in skipped}


def check_one_source(sparsity: float | None, match: Any) -> None:
    """Refuse none or both of ``sparsity`` and ``match`` (the baselines take one)."""
    if (sparsity is None) == (match is None):
        raise ValueError("give exactly one of sparsity (a share in [0, 1]) or match (a "
                         "prune.json whose per-layer shares to copy)")


def _read_report(path: Path) -> dict[str, Any]:
    if path.is_dir():
        path = path / "prune.json"
    if not path.is_file():
        raise FileNotFoundError(f"no pruning report at {path} (written by `thrifty prune`)")
    return json.loads(path.read_text())


def _single_groups(model: nn.Module, name: str, parent_width: int) -> PairGroups:
    width = out_width(prunable_layers(model)[name])
    pair = LayerPair("", name, parent_width, width, last=False)
    return PairGroups(pair, group_labels(width, width), group_labels(parent_width, parent_width))


def parent_widths(model: nn.Module) -> dict[str, int]:
    """Per prunable layer, the number of input units MINT/SNACS cut it by: the parent's
    filters for a child of a layer pair (a ``Linear`` after a conv and a flatten: the conv's
    channels, one column block each), else its input channels or features."""
    widths = {n: m.in_channels if isinstance(m, nn.Conv2d) else m.in_features
              for n, m in prunable_layers(model).items()}
    widths.update({p.child: p.parent_width
                   for p in layer_pairs(model, cross_residual=True)})
    return widths


def baseline_prune(model: nn.Module, kind: str, sparsity: float | None = None,
                   match: Mapping[str, Any] | str | Path | None = None,
                   skip: tuple[str, ...] = (), seed: int = 0) -> PruneResult:
    """Cut the smallest-|W| (``kind="magnitude"``) or random (``kind="random"``) connections.

    Args:
        model: the trained network (not changed).
        kind: ``"magnitude"`` (L1 norm of each kernel) or ``"random"``.
        sparsity: share cut in every child layer (default ``None``).
        match: report (or ``prune.json`` path) whose per-layer shares to copy (default
            ``None``).
        skip: child layers never pruned (default none).
        seed: seed of the random scores (default 0).
    """
    if kind not in ("magnitude", "random"):
        raise ValueError(f"unknown baseline {kind!r}; use magnitude or random")
    started = time.perf_counter()
    shares = layer_shares(model, sparsity, match, skip)
    layers = prunable_layers(model)
    widths = parent_widths(model)
    rng = np.random.default_rng(seed)
    groupings, cut = [], {}
    for name, share in shares.items():
        w = layers[name].weight.detach().float().cpu()
        parents = widths[name]
        g = _single_groups(model, name, parents)
        scores = (w.reshape(w.shape[0], parents, -1).abs().sum(2).double().numpy()
                  if kind == "magnitude" else rng.random((w.shape[0], parents)))
        cut[name] = prune_lowest(scores, np.floor(share * scores.size + 1e-9),
                                 rng=tie_rng(seed, name) if kind == "magnitude" else None)
        groupings.append(g)
    masks = layer_masks(model, groupings, cut)
    settings = {"sparsity": sparsity, "match": str(match) if match is not None else None,
                "skip": [skip] if isinstance(skip, str) else list(skip), "seed": seed}
    return PruneResult(masks, prune_report(model, masks, groupings, kind, settings, started))


def magnitude_prune(model: nn.Module, **options) -> PruneResult:
    """Magnitude pruning (see :func:`baseline_prune`)."""
    return baseline_prune(model, "magnitude", **options)


def random_prune(model: nn.Module, **options) -> PruneResult:
    """Random pruning (see :func:`baseline_prune`)."""
    return baseline_prune(model, "random", **options)



@dataclass
class BaselineConfig:
    """The hyper-parameters of the magnitude and random baselines (see the module docstring
    for meanings and defaults; :func:`baseline_prune` takes the same)."""

    sparsity: float | None = None
    match: Mapping[str, Any] | str | Path | None = None
    skip: tuple[str, ...] = ()
    seed: int = 0

    def validate(self) -> BaselineConfig:
        """Check that exactly one of ``sparsity`` and ``match`` is given and the share's
        range; raise ``ValueError`` naming the option."""
        check_one_source(self.sparsity, self.match)
        if self.sparsity is not None:
            check_share("sparsity", self.sparsity)
        return self


class BaselinePruner(PruneMethod):
    """A baseline as an object: ``MagnitudePruning(sparsity=0.5).prune(model)``; subclasses
    set ``kind`` (``"magnitude"`` or ``"random"``).

    Args: the fields of :class:`BaselineConfig` as keywords (checked here).
    """

    config_class = BaselineConfig
    kind: str
    #: ``prune`` needs no training data: inputs and labels are ignored
    needs_inputs = False
    __signature__ = config_signature(BaselineConfig)

    def prune(self, model: nn.Module, inputs: torch.Tensor | None = None,
              labels: torch.Tensor | None = None) -> PruneResult:
        """Masks and report for ``model`` (see :func:`baseline_prune`).

        Args:
            model: the trained network (not changed).
            inputs: ignored (default ``None``), for the interface of MINT and SNACS.
            labels: ignored (default ``None``).
        """
        options = {f.name: getattr(self.config, f.name) for f in fields(self.config)}
        return baseline_prune(model, self.kind, **options)


@register_method("magnitude", "pruner", "baseline: cut the smallest-L1 connections at a "
                 "sparsity or the shares of a prune.json (match=)")
class MagnitudePruning(BaselinePruner):
    """Magnitude pruning as an object (see :class:`BaselinePruner`)."""

    kind = "magnitude"


@register_method("random", "pruner", "baseline: cut random connections at a sparsity or the "
                 "shares of a prune.json (match=)")
class RandomPruning(BaselinePruner):
    """Random pruning as an object (see :class:`BaselinePruner`)."""

    kind = "random"
