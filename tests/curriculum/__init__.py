"""Tests of the curricula (LILAC, CAPER) and a shared context factory."""

from __future__ import annotations

import torch

from thrifty.engine import SampleRecord, TrainContext


def make_ctx(labels: torch.Tensor, epochs: int = 10, batch_size: int = 16, seed: int = 0,
             num_classes: int | None = None) -> TrainContext:
    """A :class:`TrainContext` over ``labels`` without a Trainer (``score`` must not run)."""

    def no_score(indices: torch.Tensor):
        raise AssertionError("this method must not call ctx.score")

    return TrainContext(epoch=0, epochs=epochs, record=SampleRecord(len(labels)),
                        batch_size=batch_size, seed=seed,
                        generator=torch.Generator().manual_seed(seed), score=no_score,
                        num_classes=num_classes or int(labels.max()) + 1, labels=labels)
