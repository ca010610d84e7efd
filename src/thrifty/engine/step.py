"""The one selection step: forward -> record -> select -> pack, for one loaded batch.

The engine (:class:`~thrifty.engine.loop.Trainer`) and a user's own loop
(:class:`~thrifty.selection.OnlineSelection`) both call :class:`SelectionStep`, so a
selector behaves the same wherever it runs (its ``filter_mode``, stale losses from the
record, its packing rule).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from thrifty.data.tensor import Batch, take_rows
from thrifty.engine.interfaces import BatchSelector, SelectionInput, TrainContext
from thrifty.engine.packing import Packer
from thrifty.engine.record import SampleRecord

ForwardFn = Callable[[Any, torch.Tensor, str], tuple[torch.Tensor, torch.Tensor]]
CorrectFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PhaseFn = Callable[[str], Any]


def argmax_correct(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Whether each sample's top class is its label (single-label classification)."""
    return logits.argmax(1) == targets


def _no_phase(name: str) -> Any:
    return contextlib.nullcontext()


def take(batch: Batch, positions: torch.Tensor) -> Batch:
    """The samples of ``batch`` at ``positions`` (a CPU long tensor), on the batch's device;
    ``x`` may be a tensor or a dict of tensors (a model taking ``model(**x)``)."""
    return Batch(take_rows(batch.x, positions), take_rows(batch.y, positions),
                 batch.idx[positions])


@dataclass
class StepResult:
    """What one selection step did.

    Attributes:
        ready: the training batches now full (train each of them).
        forwarded: samples that went through the no-grad selection forward.
        selected: samples the selector chose.
    """

    ready: list[Batch]
    forwarded: int
    selected: int


class SelectionStep:
    """forward -> record -> select -> pack for one loaded batch.

    Args:
        selector: the in-batch selector.
        packer: the packer of chosen samples (built with the selector's packing rule).
        record: the per-sample record, or ``None`` (then stale losses are unknown: NaN).
        forward: ``forward(x, y, mode) -> (losses, logits)``, the no-grad selection forward
            in ``mode`` (the selector's ``filter_mode``).
        correct: ``correct(logits, y)`` stored in the record, or ``None`` to store none.
            Default: top-1 correctness.
    """

    def __init__(self, selector: BatchSelector, packer: Packer, record: SampleRecord | None,
                 forward: ForwardFn, correct: CorrectFn | None = argmax_correct) -> None:
        self.selector = selector
        self.packer = packer
        self.record = record
        self.forward = forward
        self.correct = correct

    def __call__(self, batch: Batch, ctx: TrainContext, phase: PhaseFn = _no_phase
                 ) -> StepResult:
        """Select from ``batch`` (its ``idx`` are CPU dataset indices, or positions when no
        record is kept); ``phase(name)`` times the ``selection_forward`` and
        ``selection_logic`` parts."""
        n = len(batch.idx)
        if self.selector.identity:
            return StepResult([batch], 0, n)
        forwarded = 0
        if self.selector.needs_forward(ctx):
            with phase("selection_forward"):
                losses, logits = self.forward(batch.x, batch.y, self.selector.filter_mode)
                if self.record is not None:
                    correct = None if self.correct is None else self.correct(logits, batch.y)
                    self.record.update(batch.idx, losses, correct, ctx.epoch, trained=False,
                                       kind="probe")
            forwarded = n
            sel = SelectionInput(losses.detach().float().cpu(), logits, batch.y, batch.idx,
                                 fresh=True)
        else:
            stale = self.record.losses(batch.idx) if self.record is not None \
                else torch.full((n,), float("nan"))
            sel = SelectionInput(stale, None, batch.y, batch.idx, fresh=False)
        with phase("selection_logic"):
            pos = self.selector.select(sel, ctx)
            ready = self.packer.add(take(batch, pos))
        return StepResult(ready, forwarded, len(pos))

    def end_epoch(self, last: bool = False) -> list[Batch]:
        """The packing rule's end of epoch: the training batches left (flush) or none
        (``last``: the run's last epoch, see :meth:`Packer.end_epoch`)."""
        return self.packer.end_epoch(last)
