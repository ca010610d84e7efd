"""Batch selectors in your own PyTorch training loop (two added lines, one changed).

    from thrifty.selection import Adonis, OnlineSelection
    online = OnlineSelection(Adonis(), batch_size=64)
    for epoch in range(epochs):
        for xb, yb in online.batches(model, loader):     # was: for xb, yb in loader:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()

The helper is a few lines over the engine's run-time core
(:class:`~thrifty.engine.core.RunCore`): the no-grad selection forward in the selector's
``filter_mode`` (eval by default), the record, the selector's choice, and the packing of
the chosen samples into full training batches, which it yields. For finer control call
:meth:`step` per loader batch and :meth:`end_epoch` at the end of each epoch.

It is the selector-only helper of earlier versions: your training losses are not seen.
:class:`thrifty.Thrift` runs the whole protocol (the training losses fed back, any method
of any place, DDP, exact resume) in the same loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

from thrifty.data.tensor import Batch
from thrifty.engine.core import RunCore
from thrifty.engine.forward import LossFn, cross_entropy_losses, no_grad_forward
from thrifty.engine.interfaces import BatchSelector, EpochSampler, Pieces, Reducer
from thrifty.engine.step import argmax_correct


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
        self.loss_fn = loss_fn or cross_entropy_losses
        n = num_samples or 1
        # the number of samples, when known (ASSIST's first patience reads it)
        labels = torch.full((num_samples or 0,), -1, dtype=torch.long)
        everything = Reducer().fit(labels)  # no reducer, no sampler: the loop loads
        self.core = RunCore(Pieces(everything, EpochSampler(), selector), size=n,
                            labels=labels, num_classes=0,
                            epochs=epochs, batch_size=batch_size, seed=seed,
                            forward=self._forward,
                            correct=argmax_correct if loss_fn is None else None,
                            feedback=False, keyed=num_samples is not None)
        self.core.generator.manual_seed(seed)  # this helper's draws, as before the core
        self.keyed = num_samples is not None
        self.packer, self.ctx = self.core.packer, self.core.ctx
        self.record = self.core.record if self.keyed else None
        self.trained = 0
        self._model: nn.Module | None = None
        selector.setup(self.ctx)

    @property
    def epoch(self) -> int:
        """Epochs ended so far (the current epoch's number)."""
        return self.core.epoch + (1 if self.core.epoch_done else 0) if self.core.epoch >= 0 \
            else 0

    @property
    def forwarded(self) -> int:
        return self.core.counts["forwarded"]

    @property
    def selected(self) -> int:
        return self.core.counts["selected"]

    @property
    def diagnostics(self) -> dict[str, float]:
        return self.core.diagnostics

    def _forward(self, x: torch.Tensor, y: torch.Tensor, mode: str
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        assert self._model is not None  # step() sets it
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
        if self.keyed and idx is None:
            raise ValueError("OnlineSelection keeps per-sample losses: pass idx= (the dataset "
                             "indices of the batch) to step()")
        if self.core.epoch_done:
            self.core.begin_epoch(self.epoch)
        key = torch.arange(len(y)) if idx is None else torch.as_tensor(idx).long().cpu()
        self._model = self.ctx.model = model
        for b in self.core.select(Batch(x, y, key)):
            self.trained += len(b.y)
            yield b.x, b.y

    def end_epoch(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Apply the selector's end-of-epoch packing rule, end the epoch, and return the
        remaining training batches (empty unless the rule is ``"flush"``)."""
        if self.core.epoch_done:
            self.core.begin_epoch(self.epoch)
        out = [(b.x, b.y) for b in self.core.finish_batches()]
        self.trained += sum(len(y) for _, y in out)
        self.core.end_epoch()
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
        """Checkpointable state (``torch.load(weights_only=True)`` reads it back): the
        core's, and the samples yielded."""
        return {"core": self.core.state_dict(), "trained": self.trained}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu"
                        ) -> None:
        """Restore :meth:`state_dict`; pending samples go to ``device`` (default CPU)."""
        self.core.load_state_dict(state["core"], device=device)
        self.trained = state["trained"]
