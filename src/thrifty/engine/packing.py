"""Packing chosen samples into full training batches (see :class:`PackingRule`)."""

from __future__ import annotations

import torch

from thrifty.data.tensor import Batch, cat_rows, slice_rows, to_device
from thrifty.engine.interfaces import PackingRule, min_batch


class Packer:
    """A buffer of chosen samples that releases training batches of ``batch_size``.

    Args:
        batch_size: the training batch size rho.
        rule: the :class:`PackingRule` (threshold, overflow, repeat, end of epoch).

    Counters (kept until the owner resets them): ``discarded``, the samples dropped as
    overflow after a step (``overflow="discard"``; the engine reports it per epoch as
    ``overflow_discarded``), and ``end_dropped``, the pending samples dropped by
    ``end_of_epoch="drop"``. They are separate because the thesis' overflow diagnostic
    (ASSIST, Fig 6b) counts the overflow only.
    """

    def __init__(self, batch_size: int, rule: PackingRule | None = None) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = batch_size
        self.rule = rule or PackingRule()
        self._parts: list[Batch] = []
        self.count = 0
        self.discarded = 0  # samples dropped as overflow after a step
        self.end_dropped = 0  # pending samples dropped at the end of an epoch

    def _merge(self) -> Batch:
        if len(self._parts) == 1:
            return self._parts[0]
        return Batch(cat_rows([p.x for p in self._parts]), cat_rows([p.y for p in self._parts]),
                     torch.cat([p.idx for p in self._parts]))

    def _ready(self) -> bool:
        if self.rule.strict:
            return self.count > self.batch_size
        return self.count >= self.batch_size

    def add(self, batch: Batch) -> list[Batch]:
        """Queue chosen samples; return the training batches that are now complete."""
        if len(batch.idx):
            self._parts.append(batch)
            self.count += len(batch.idx)
        if self.rule.immediate:
            if not self.count:
                return []
            merged = self._merge()
            self._parts, self.count = [], 0
            return [merged]
        out: list[Batch] = []
        while self._ready():
            merged = self._merge()
            b = self.batch_size
            out.append(Batch(slice_rows(merged.x, 0, b), slice_rows(merged.y, 0, b),
                             merged.idx[:b]))
            rest = Batch(slice_rows(merged.x, b, None), slice_rows(merged.y, b, None),
                         merged.idx[b:])
            if self.rule.overflow == "discard":
                self.discarded += len(rest.idx)
                self._parts, self.count = [], 0
            else:
                self._parts = [rest] if len(rest.idx) else []
                self.count = len(rest.idx)
            if not self.rule.repeat:
                break
        return out

    def end_epoch(self, last: bool = False) -> list[Batch]:
        """Apply the end-of-epoch rule to what is still pending.

        Args:
            last: the run's last epoch. ``flush`` keeps a remainder under
                :func:`~thrifty.engine.interfaces.min_batch` for the next epoch (no tiny
                batch is trained alone); after the last epoch it is dropped and counted in
                ``end_dropped``. Default ``False``.
        """
        if not self.count or self.rule.end_of_epoch == "carry":
            return []
        if self.rule.end_of_epoch == "flush" and self.count < min_batch(self.batch_size):
            if last:
                self.drop_pending()
            return []
        merged = self._merge()
        self._parts, self.count = [], 0
        if self.rule.end_of_epoch == "drop":
            self.end_dropped += len(merged.idx)
            return []
        return [merged]

    def drop_pending(self) -> int:
        """Drop what is pending (counted in ``end_dropped``); return how many samples."""
        n = self.count
        self.end_dropped += n
        self._parts, self.count = [], 0
        return n

    def state_dict(self) -> dict:
        merged = self._merge() if self.count else None
        return {"pending": None if merged is None else
                {"x": to_device(merged.x, "cpu"), "y": merged.y.cpu(), "idx": merged.idx},
                "discarded": self.discarded, "end_dropped": self.end_dropped}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        p = state["pending"]
        self._parts = [] if p is None else [Batch(to_device(p["x"], device), p["y"].to(device),
                                                  p["idx"])]
        self.count = 0 if p is None else len(p["idx"])
        self.discarded = state["discarded"]
        self.end_dropped = state.get("end_dropped", 0)  # absent in older checkpoints
