"""Activation taps: per-filter summaries of chosen layers (seed 003, §0.1; used by MINT, SNACS,
CAPER), and the class-balanced sample they are read on.

Each filter gives one scalar per sample: the mean of its activation map over H x W (a
``Linear`` neuron gives its output). Activations are read from the raw output of the module
(before BatchNorm/ReLU, as in the reference code), with the weights frozen (no grad).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from thrifty.utils.masks import prunable_layers


def spatial_mean(out: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W] -> [B, C]`` (mean over the spatial dims); ``[B, C]`` unchanged."""
    return out.flatten(2).mean(2) if out.dim() > 2 else out


@contextmanager
def tap(model: nn.Module, layers: Iterable[str]) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Record the spatial means of the outputs of the named modules while inside the block.

    Yields a dict ``name -> list of [B, C] CPU tensors`` (one entry per forward call).

    Raises:
        ValueError: a name is not a module of ``model``.
    """
    modules = dict(model.named_modules())
    names = list(layers)
    missing = [n for n in names if n not in modules]
    if missing:
        raise ValueError(f"no layer named {', '.join(missing)} in the model; its prunable "
                         f"layers are: {', '.join(prunable_layers(model))}")
    store: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    handles = [modules[n].register_forward_hook(
        lambda _m, _i, out, n=n: store[n].append(spatial_mean(out.detach()).float().cpu()))
        for n in names]
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def collect_activations(model: nn.Module, inputs: torch.Tensor, layers: Iterable[str], *,
                        batch_size: int = 512, device: torch.device | str = "cpu"
                        ) -> dict[str, torch.Tensor]:
    """Spatial-mean activations ``[N, C]`` of ``layers`` for ``inputs`` (eval mode, no grad).

    The model's train/eval mode is restored afterwards.

    Args:
        model: the trained network.
        inputs: ``[N, ...]`` input tensor (already normalised).
        layers: module names (see :func:`~thrifty.utils.masks.prunable_layers`).
        batch_size: forward batch size (default 512).
        device: where to run the forward passes (default CPU).
    """
    was_training = model.training
    model.eval()
    try:
        with tap(model, layers) as store:
            for start in range(0, len(inputs), batch_size):
                model(inputs[start:start + batch_size].to(device))
    finally:
        model.train(was_training)
    return {n: torch.cat(v) if v else torch.empty(0) for n, v in store.items()}


def balanced_subset(labels: torch.Tensor, per_class: int, seed: int = 0) -> torch.Tensor:
    """``per_class`` random indices of every class (sorted), the activation sample of §0.1.

    Raises:
        ValueError: ``per_class < 1``, or a class has fewer samples than ``per_class``.
    """
    if per_class < 1:
        raise ValueError(f"samples per class must be at least 1, got {per_class}")
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        if len(idx) < per_class:
            raise ValueError(f"class {c} has {len(idx)} samples, fewer than the {per_class} "
                             "per class asked for; lower samples per class")
        chosen.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return torch.cat(chosen).sort().values
