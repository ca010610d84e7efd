"""Batch selectors in your own PyTorch training loop (two added lines, one changed).

    from thrifty.selection import Adonis, OnlineSelection
    online = OnlineSelection(Adonis(), batch_size=64)
    for epoch in range(epochs):
        for xb, yb in online.batches(model, loader):     # was: for xb, yb in loader:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()

The helper runs the engine's own selection step (:class:`~thrifty.engine.SelectionStep`):
the no-grad selection forward in the selector's ``filter_mode`` (eval by default), the
record, the selector's choice, and the packing of the chosen samples into full training
batches, which it yields. For finer control call :meth:`step` per
loader batch and :meth:`end_epoch` at the end of each epoch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

from thrifty.data.tensor import Batch
from thrifty.engine.forward import LossFn, cross_entropy_losses, no_grad_forward
from thrifty.engine.interfaces import BatchSelector, TrainContext
from thrifty.engine.packing import Packer
from thrifty.engine.record import SampleRecord
from thrifty.engine.step import SelectionStep, argmax_correct


class OnlineSelection:
    """Run a :class:`~thrifty.engine.BatchSelector` inside a plain training loop.

    Args:
        selector: the selector, e.g. ``Adonis()``, ``SelectiveBackprop()`` or
            ``thrifty.methods.build_method("stale-sb", {})``.
        batch_size: rho, size of the training batches it yields.
        num_samples: size of the training set. Needed (with ``idx`` given to :meth:`step`)
            to keep per-sample losses in a :class:`~thrifty.engine.SampleRecord`, which
            selectors with stale epochs (ADONIS eta > 1, Stale-SB) require. Default ``None``.
        loss_fn: per-sample loss ``f(logits, targets) -> losses`` (no reduction) of the
            selection forward. Default cross entropy.
        seed: seed of the selector's random generator. Default 0.
        epochs: total epochs, for selectors that schedule by it (``ctx.epochs``). Default 0
            (unknown).

    Counters: ``forwarded`` (samples in selection forwards), ``selected`` and ``trained``
    (samples yielded in training batches); ``diagnostics`` holds the selector's numbers of
    the last finished epoch. The record keeps selection-forward losses only (your training
    step's losses are not seen).
    """

    def __init__(self, selector: BatchSelector, batch_size: int, num_samples: int | None = None,
                 loss_fn: LossFn | None = None, seed: int = 0, epochs: int = 0) -> None:
        if num_samples is None and selector.reads_stored_losses:
            raise ValueError(f"{selector.name!r} reuses stored losses between selection "
                             "forwards: pass num_samples=len(train_set) and idx= to step()")
        self.selector = selector
        self.packer = Packer(batch_size, selector.packing)
        self.record = SampleRecord(num_samples) if num_samples else None
        self.loss_fn = loss_fn or cross_entropy_losses
        self.epoch = 0
        self.forwarded = self.selected = self.trained = 0
        self.diagnostics: dict[str, float] = {}
        self.ctx = TrainContext(
            epoch=0, epochs=epochs, record=self.record, batch_size=batch_size, seed=seed,
            generator=torch.Generator().manual_seed(seed), num_classes=0,
            labels=torch.empty(0, dtype=torch.long))
        self._model: nn.Module | None = None
        self._step = SelectionStep(selector, self.packer, self.record, self._forward,
                                   correct=argmax_correct if loss_fn is None else None)
        selector.setup(self.ctx)

    def _forward(self, x: torch.Tensor, y: torch.Tensor, mode: str
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        losses, logits = no_grad_forward(self._model, x, y, mode=mode, loss_fn=self.loss_fn)
        return losses.float().cpu(), logits

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             idx: torch.Tensor | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Select from one loader batch; yield the training batches ``(x, y)`` now full.

        Args:
            model: the model (put back in its own mode after the selection forward).
            x, y: the loader batch.
            idx: dataset indices of the batch (any integer tensor or list). Required when
                ``num_samples`` was given. Default ``None``.
        """
        n = len(y)
        if self.record is not None and idx is None:
            raise ValueError("OnlineSelection keeps per-sample losses: pass idx= (the dataset "
                             "indices of the batch) to step()")
        key = torch.arange(n) if idx is None else torch.as_tensor(idx).long().cpu()
        self._model = model
        self.ctx.model = model
        done = self._step(Batch(x, y, key), self.ctx)
        self.forwarded += done.forwarded
        self.selected += done.selected
        for b in done.ready:
            self.trained += len(b.y)
            yield b.x, b.y

    def end_epoch(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Apply the selector's end-of-epoch packing rule, start the next epoch, and return
        the remaining training batches (empty unless the rule is ``"flush"``)."""
        out = [(b.x, b.y) for b in self.packer.end_epoch()]
        self.trained += sum(len(y) for _, y in out)
        self.diagnostics = self.selector.epoch_diagnostics()
        self.epoch += 1
        self.ctx.epoch = self.epoch
        return out

    def batches(self, model: nn.Module, loader: Iterable[Any]
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch: :meth:`step` over every loader batch ``(x, y)`` or ``(x, y, idx)``,
        then :meth:`end_epoch`. Yields the training batches ``(x, y)``."""
        for batch in loader:
            if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
                raise TypeError(
                    f"OnlineSelection.batches takes loaders of (x, y) or (x, y, idx) tuples, "
                    f"got a {type(batch).__name__}; for dict batches or models taking "
                    "model(**inputs) use thrifty.Thrift (target_key=, index_key=)")
            x, y, *rest = batch
            yield from self.step(model, x, y, rest[0] if rest else None)
        yield from self.end_epoch()

    def state_dict(self) -> dict[str, Any]:
        """Checkpointable state (``torch.load(weights_only=True)`` reads it back)."""
        return {"selector": self.selector.state_dict(), "packer": self.packer.state_dict(),
                "record": None if self.record is None else self.record.state_dict(),
                "generator": self.ctx.generator.get_state(), "epoch": self.epoch,
                "counters": [self.forwarded, self.selected, self.trained]}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu"
                        ) -> None:
        """Restore :meth:`state_dict`; pending samples go to ``device`` (default CPU)."""
        self.selector.load_state_dict(state["selector"])
        self.packer.load_state_dict(state["packer"], device)
        if self.record is not None:
            self.record.load_state_dict(state["record"])
        self.ctx.generator.set_state(state["generator"])
        self.epoch = self.ctx.epoch = state["epoch"]
        self.forwarded, self.selected, self.trained = state["counters"]
