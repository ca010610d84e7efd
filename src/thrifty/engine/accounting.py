"""Work accounting: what one epoch cost, in exact counts and in wall time by phase."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

PHASES = ("data", "selection_forward", "train_step", "selection_logic", "evaluation")


@dataclass
class EpochStats:
    """Counts and times of one epoch (the per-epoch record of a run's result).

    Counts are exact and machine independent; times are seconds. ``train_time`` is
    everything but evaluation (data + selection forward + train step + selection logic).
    """

    epoch: int
    samples_loaded: int = 0
    samples_forwarded: int = 0  # no-grad selection forwards
    samples_trained: int = 0  # forward + backward
    optimizer_steps: int = 0
    time: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    lr: float = 0.0
    train_loss: float = float("nan")  # mean training loss over the samples trained on
    test_accuracy: float = float("nan")
    test_loss: dict[str, float] = field(default_factory=dict)
    train_loss_stats: dict[str, float] = field(default_factory=dict)
    loss_ratios: dict[str, float] = field(default_factory=dict)
    robust_accuracy: float | None = None  # under --attack, where it was computed
    robust: dict[str, Any] = field(default_factory=dict)  # the attack's parameters
    evaluated: bool = False  # the epoch's whole evaluation ended (a stop may cut it short)
    method: dict[str, Any] = field(default_factory=dict)
    energy_j: float = 0.0  # training energy of the epoch (see the run's energy source)
    _loss_sum: float = 0.0

    @property
    def train_time(self) -> float:
        return sum(v for k, v in self.time.items() if k != "evaluation")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("_loss_sum")
        d["train_time"] = self.train_time
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpochStats:
        """The stats :meth:`to_dict` wrote (``train_time`` is derived, not stored)."""
        return cls(**{k: v for k, v in d.items() if k != "train_time"})


class PhaseTimer:
    """Adds the time of a phase to ``stats.time[phase]``.

    On the CPU: wall time. On CUDA: the time between two CUDA events recorded around the
    phase on the current stream, read once at :meth:`flush` (the engine flushes at an
    epoch's end and before a checkpoint), so timing never synchronises the host with the
    GPU inside a training step.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self._events: list[tuple[EpochStats, str, Any, Any]] = []

    @contextmanager
    def __call__(self, stats: EpochStats, phase: str) -> Iterator[None]:
        if self.cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            try:
                yield
            finally:
                end.record()
                self._events.append((stats, phase, start, end))
            return
        t0 = time.perf_counter()
        try:
            yield
        finally:
            stats.time[phase] += time.perf_counter() - t0

    def flush(self) -> None:
        """Add the recorded CUDA phases to their stats (one synchronisation)."""
        if not self._events:
            return
        torch.cuda.synchronize()
        events, self._events = self._events, []
        for stats, phase, start, end in events:
            stats.time[phase] += start.elapsed_time(end) / 1000.0
