"""Connection masks of a pruned model: build, save, load, apply (fixed during retraining).

The engine applies them (``RunConfig.masks``) and the pruning methods write them, so they
live in the neutral layer.

Pruning in thrifty zeroes *connections*: entries of the weight of a ``Conv2d`` or ``Linear``
layer (whole kernels ``W[i, j, :, :]`` for convolutions). Biases and BatchNorm are never
pruned, and the pruning share counts Conv + Linear weights only (seed 003, §0.7).

A mask file (``torch.save``) holds ``{"format": "thrifty-masks/1", "masks": {layer name:
bool tensor shaped like its weight (True = kept)}, "meta": {...}}``. Applying it uses
:func:`torch.nn.utils.prune.custom_from_mask`, so the masked weights stay zero through any
number of optimizer steps, and checkpoints of the masked model resume exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

FORMAT = "thrifty-masks/1"


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The ``Conv2d`` and ``Linear`` layers of ``model`` by qualified name, in module order."""
    return {name: m for name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))}


def weight_of(module: nn.Module) -> torch.Tensor:
    """The effective weight of a layer (``weight_orig * weight_mask`` when already masked)."""
    return module.weight.detach()


def save_masks(path: str | Path, masks: dict[str, torch.Tensor],
               meta: dict[str, Any] | None = None) -> Path:
    """Write ``masks`` (layer name -> bool tensor, True = kept) and ``meta`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"format": FORMAT, "masks": {k: v.bool().cpu() for k, v in masks.items()},
                "meta": meta or {}}, tmp)
    tmp.replace(path)  # never leave a half-written mask file
    return path


def load_masks(path: str | Path) -> dict[str, torch.Tensor]:
    """Read the masks of a file written by :func:`save_masks` (clear errors otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask file not found: {path} (write one with `thrifty prune`)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, garbage or a pickle payload: name the file
        raise ValueError(f"{path} is not a readable mask file ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:120]}); write it again with "
                         "`thrifty prune`") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a thrifty mask file (expected format {FORMAT!r})")
    masks = data.get("masks")
    if not isinstance(masks, dict):
        raise ValueError(f"{path} holds no masks mapping: write it again with `thrifty prune`")
    for name, mask in masks.items():
        if not isinstance(mask, torch.Tensor) or not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"{path}: the mask of layer {name!r} is not all 0s and 1s (a "
                             "mask keeps a weight (1) or removes it (0)); write it again "
                             "with `thrifty prune`")
    return masks


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    """Mask the weights of ``model`` in place; the masked entries stay zero while training.

    Raises:
        ValueError: a mask names a layer the model does not have, or has the wrong shape.
    """
    layers = prunable_layers(model)
    for name, mask in masks.items():
        if name not in layers:
            raise ValueError(f"mask for layer {name!r}, which the model does not have (its "
                             f"prunable layers: {', '.join(layers)}): the masks belong to "
                             "another model")
        module = layers[name]
        if tuple(mask.shape) != tuple(module.weight.shape):
            raise ValueError(f"mask for layer {name!r} has shape {tuple(mask.shape)}, the "
                             f"layer's weight {tuple(module.weight.shape)}")
        if prune.is_pruned(module) and hasattr(module, "weight_mask"):
            module.weight_mask.mul_(mask.to(module.weight_mask.device,
                                            module.weight_mask.dtype))
        else:
            prune.custom_from_mask(module, "weight", mask.to(module.weight.device))
    return model


def remove_masks(model: nn.Module) -> nn.Module:
    """Make the masking permanent (plain ``weight`` parameters holding the zeros)."""
    for module in prunable_layers(model).values():
        if hasattr(module, "weight_mask"):
            prune.remove(module, "weight")
    return model


def pruned_share(model: nn.Module, masks: dict[str, torch.Tensor] | None = None) -> float:
    """Share of Conv + Linear weights that are zero by a mask (``masks`` default: the model's
    own masks). Layers without a mask count as fully kept."""
    total = pruned = 0
    for name, module in prunable_layers(model).items():
        n = module.weight.numel()
        total += n
        mask = masks.get(name) if masks is not None else getattr(module, "weight_mask", None)
        if mask is not None:
            pruned += int(n - mask.bool().sum())
    return pruned / total if total else 0.0
