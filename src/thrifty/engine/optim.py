"""Optimizers and learning-rate schedules.

Schedules step once per **epoch**, never per optimizer step, so they stay correct when a
method changes the number of steps per epoch (selection, pruning, accumulation): the LR of
epoch ``e`` depends on ``e`` only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

SCHEDULES = ("constant", "step", "multistep", "cosine", "exponential")
OPTIMIZERS = ("sgd", "adamw")


def build_optimizer(model: nn.Module, name: str = "sgd", lr: float = 0.05,
                    momentum: float = 0.9, nesterov: bool = True,
                    weight_decay: float = 5e-4) -> torch.optim.Optimizer:
    """SGD (momentum, optional Nesterov) or AdamW over all parameters.

    Args:
        model: the model.
        name: ``"sgd"`` or ``"adamw"``. Default ``"sgd"``.
        lr: learning rate (> 0). Default 0.05.
        momentum: SGD momentum. Default 0.9.
        nesterov: Nesterov momentum (SGD only; needs momentum > 0). Default ``True``.
        weight_decay: L2 (SGD) or decoupled (AdamW) weight decay. Default 5e-4.
    """
    if lr <= 0:
        raise ValueError(f"learning rate must be positive, got {lr}")
    name = name.lower()
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                               nesterov=nesterov and momentum > 0, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, epochs: int,
                    step_size: int = 30, milestones: list[int] | None = None,
                    gamma: float = 0.1) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-epoch LR schedule (call ``.step()`` once at the end of every epoch).

    Args:
        optimizer: the optimizer.
        name: ``constant``, ``step`` (x gamma every ``step_size`` epochs), ``multistep``
            (x gamma at each of ``milestones``), ``cosine`` (to 0 over ``epochs``) or
            ``exponential`` (x gamma per epoch).
        epochs: total epochs (cosine horizon).
        step_size: period of ``step``. Default 30.
        milestones: epochs of ``multistep``. Default ``None`` (required for multistep).
        gamma: decay factor of step/multistep/exponential. Default 0.1.
    """
    sched = torch.optim.lr_scheduler
    name = name.lower()
    if name == "constant":
        return sched.LambdaLR(optimizer, lambda e: 1.0)
    if name == "step":
        if step_size <= 0:
            raise ValueError(f"step_size must be positive, got {step_size}")
        return sched.StepLR(optimizer, step_size=step_size, gamma=gamma)
    if name == "multistep":
        if not milestones:
            raise ValueError("the multistep schedule needs milestones, e.g. --milestones 60 120")
        return sched.MultiStepLR(optimizer, milestones=list(milestones), gamma=gamma)
    if name == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    if name == "exponential":
        return sched.ExponentialLR(optimizer, gamma=gamma)
    raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")


#: The step's context when nothing scales the rate: one reusable no-op, so the hot step
#: builds no context manager of its own.
PLAIN_RATE = contextlib.nullcontext()


@contextlib.contextmanager
def scaled_lr(optimizer: torch.optim.Optimizer, factor: float) -> Iterator[None]:
    """The learning rate of every parameter group times ``factor`` inside the block (one
    optimizer step), restored exactly after it, so that the schedule and the checkpoints
    only ever see the plain rate (KAKURENBO's ``1 / (1 - F)``)."""
    if factor == 1.0:
        yield
        return
    plain = [g["lr"] for g in optimizer.param_groups]
    for g in optimizer.param_groups:
        g["lr"] = g["lr"] * factor
    try:
        yield
    finally:
        for g, lr in zip(optimizer.param_groups, plain):
            g["lr"] = lr
