"""The no-grad forward pass that selection and evaluation share (the model left as it was)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
FORWARD_MODES = ("eval", "train")


def cross_entropy_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample cross entropy (no reduction), computed in float32."""
    return F.cross_entropy(logits.float(), targets, reduction="none")


def _norm_buffers(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Copies of every normalisation layer's running statistics (to restore them after)."""
    return [(b, b.clone()) for m in model.modules() if getattr(m, "track_running_stats", False)
            for b in (getattr(m, n, None) for n in ("running_mean", "running_var",
                                                     "num_batches_tracked"))
            if isinstance(b, torch.Tensor)]


@torch.no_grad()
def no_grad_forward(model: nn.Module, x: Any, y: torch.Tensor, *, mode: str = "eval",
                    autocast: Callable[[], Any] = contextlib.nullcontext,
                    loss_fn: LossFn = cross_entropy_losses
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """No-grad forward of ``x``; returns ``(losses, logits)``; the model's mode is restored.

    Args:
        model: the model.
        x: the model's input (a tensor, or whatever the model takes).
        y: the targets ``loss_fn`` compares the output with.
        mode: ``"eval"`` (default): BatchNorm running statistics are used, not updated,
            dropout is off. ``"train"`` (a selector's ``filter_mode``): the training
            behaviour, BatchNorm normalising with the batch's own statistics and dropout
            active, but the running statistics of every normalisation layer are saved
            before and restored after, so the forward leaves the model as it was.
        autocast: a context-manager factory for mixed precision. Default: none.
        loss_fn: per-sample loss ``f(output, y)``. Default cross entropy.
    """
    if mode not in FORWARD_MODES:
        raise ValueError(f"selection forward mode must be 'eval' or 'train', got {mode!r}")
    was_training = model.training
    saved = [] if mode == "eval" else _norm_buffers(model)
    model.train(mode == "train")
    try:
        with autocast():
            logits = model(x)
    finally:
        for buffer, value in saved:
            buffer.copy_(value)
        model.train(was_training)
    return loss_fn(logits, y), logits
