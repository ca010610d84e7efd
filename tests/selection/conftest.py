"""Fixtures of the selector tests: a bare TrainContext for calling selectors directly."""

from __future__ import annotations

import pytest
import torch

from thrifty.engine import SampleRecord, SelectionInput, TrainContext


@pytest.fixture
def make_ctx():
    """``make_ctx(epoch=0, seed=0)``: a context with a seeded generator and no engine."""

    def make(epoch: int = 0, seed: int = 0) -> TrainContext:
        return TrainContext(epoch=epoch, epochs=10, record=SampleRecord(1), batch_size=64,
                            seed=seed, generator=torch.Generator().manual_seed(seed),
                            score=None, num_classes=10, labels=torch.empty(0, dtype=torch.long))

    return make


@pytest.fixture
def batch_of():
    """``batch_of(losses, fresh=True)``: a SelectionInput carrying only ``losses``."""

    def make(losses, fresh: bool = True) -> SelectionInput:
        losses = torch.as_tensor(losses, dtype=torch.float32)
        n = len(losses)
        return SelectionInput(losses, None, torch.zeros(n, dtype=torch.long), torch.arange(n),
                              fresh)

    return make
