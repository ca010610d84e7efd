"""The engine's no-grad passes over the training set, offered to the methods through the
context (``ctx.score``, ``ctx.selection_pass``) and used by the selection step: counted
as selection work, under the selection forward's precision, in eval mode (a
:class:`~thrifty.engine.loop.Trainer` mixin: it reads the trainer's model, data, device,
config, core and timer)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import torch

from thrifty.data import Batch, eval_view, iterate_batches
from thrifty.engine.distributed import gather_in_order, shard
from thrifty.engine.forward import no_grad_forward
from thrifty.engine.step import argmax_correct


class NoGradPasses:
    """Forward passes without gradient of a :class:`~thrifty.engine.loop.Trainer`."""

    model: Any
    device: torch.device
    amp_dtype: torch.dtype | None
    selection_amp_dtype: torch.dtype | None
    train_data: Any
    config: Any
    core: Any
    record: Any
    ctx: Any
    dist: Any
    num_classes: int
    _stats: Any
    _fill_counts: Callable[[Any], None]  # the trainer's: the epoch's counts into its stats

    def _autocast_at(self, dtype: torch.dtype | None) -> Any:
        return contextlib.nullcontext() if dtype is None \
            else torch.autocast(self.device.type, dtype=dtype)

    def _autocast(self) -> Any:
        return self._autocast_at(self.amp_dtype)

    def _selection_autocast(self) -> Any:
        return self._autocast_at(self.selection_amp_dtype)

    def _forward_select(self, x: torch.Tensor, y: torch.Tensor, mode: str = "eval"
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """The selection forward: :meth:`_forward_eval` at ``selection_amp``'s precision."""
        return no_grad_forward(self.model, x, y, mode=mode, autocast=self._selection_autocast)

    def _forward_eval(self, x: torch.Tensor, y: torch.Tensor, mode: str = "eval"
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """No-grad forward of the run's model under its autocast; see
        :func:`~thrifty.engine.forward.no_grad_forward` (``mode``: ``"eval"`` or the
        selector's ``"train"``)."""
        return no_grad_forward(self.model, x, y, mode=mode, autocast=self._autocast)

    def selection_pass(self, indices: torch.Tensor, fn: Callable[[Batch], Any], *,
                       forwards: int = 1, count: bool = True) -> list[Any]:
        """Counted selection work over training samples by dataset index.

        Cuts ``indices`` into batches of ``config.eval_batch_size`` from the evaluation view
        of the training set (no augmentation) and returns ``[fn(batch) for each batch]``.
        ``fn`` runs without gradient, under the selection forward's autocast
        (``selection_amp``), with the model in eval mode (its mode is restored after). Each
        batch adds ``forwards * len(batch)`` to the epoch's ``samples_forwarded`` and its time
        (data loading excluded) to the ``selection_forward`` phase.

        Args:
            indices: dataset indices (CPU long tensor), visited in order.
            fn: ``fn(batch) -> value`` for a :class:`~thrifty.data.Batch` on the device.
            forwards: forward passes ``fn`` makes per sample (CAPER's clean + noisy
                input: 2). Default 1.
            count: count the work. Default ``True``; under DDP every rank makes the whole
                pass (the same on every rank) and counts it: the work done.
        """
        stats = self._stats
        out: list[Any] = []
        was_training = self.model.training
        self.model.eval()
        try:
            for b in iterate_batches(eval_view(self.train_data), indices.tolist(),
                                     self.config.eval_batch_size, device=self.device,
                                     num_workers=self.config.num_workers):
                t0 = time.perf_counter()
                with torch.no_grad(), self._selection_autocast():
                    out.append(fn(b))
                if stats is not None and count:
                    self.core.count("forwarded", forwards * len(b.idx))
                    stats.time["selection_forward"] += time.perf_counter() - t0
        finally:
            self.model.train(was_training)
        if stats is not None:
            self._fill_counts(stats)
        return out

    def score(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Selection forward over training samples ``indices`` (no augmentation, eval mode):
        returns CPU ``(losses, logits)``, stores them in the record, counts them as
        selection work. Under DDP each rank scores its share, and all get the whole."""

        def forward(b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
            lo, lg = self._forward_select(b.x, b.y)
            self.record.update(b.idx, lo, argmax_correct(lg, b.y), self.ctx.epoch,
                               trained=False, kind="score")
            return lo.cpu(), lg.float().cpu()

        parts = self.selection_pass(shard(indices, self.dist), forward)
        losses = torch.cat([p[0] for p in parts]) if parts else torch.empty(0)
        logits = torch.cat([p[1] for p in parts]) if parts \
            else torch.empty(0, self.num_classes)
        return gather_in_order(losses, self.dist), gather_in_order(logits, self.dist)

