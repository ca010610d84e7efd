"""A warm-up copy of a run's model, by hand (the snapshot embedder outside a run; inside
one the methods call ``ctx.warmup``): :func:`warm_up` trains it with the engine's
:class:`~thrifty.engine.loop.Trainer`. One direction only: this module uses the loop, the
loop does not import it (both use :mod:`thrifty.engine.snapshot`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from thrifty.engine.config import RunConfig
from thrifty.engine.loop import Trainer
from thrifty.engine.signals import TrainingInterrupted
from thrifty.engine.snapshot import WARMUP_TEST_LIMIT, train_copy

__all__ = ["WARMUP_TEST_LIMIT", "TrainingInterrupted", "warm_up"]


def warm_up(config: RunConfig, model: nn.Module, train: Any, test: Any, epochs: int, *,
            device: torch.device | str = "cpu", progress: bool = True,
            log: Callable[[str], None] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``model`` (in place) for ``epochs`` with ``config``'s recipe and no method;
    see :func:`~thrifty.engine.snapshot.train_copy` (every argument but the trainer)."""
    return train_copy(Trainer, config, model, train, test, epochs, device=device,
                      progress=progress, log=log)
