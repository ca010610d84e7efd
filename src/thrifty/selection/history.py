"""Shared mechanics of the loss-history selectors (ADONIS, Selective Backprop, Stale-SB).

Both methods keep a rolling history of the last ``l`` per-sample losses, refresh losses
with a no-grad forward pass only every few epochs (stored losses in between), and pack the
chosen samples into full training batches. :class:`LossHistorySelector` holds that shared
part once; a method only implements :meth:`LossHistorySelector._choose`. Hyper-parameters
are declared in ``_parameter_constraints`` (:mod:`thrifty.utils.params`); a subclass extends
the base's declaration.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch

from thrifty.engine.interfaces import BatchSelector, PackingRule, SelectionInput, TrainContext
from thrifty.utils.params import Interval, Options, Param, validate_params

#: what ends an epoch's partial training batch: train it later, alone, or never
END_OF_EPOCH = ("carry", "flush", "drop")

#: an integer >= 1 (``2.0`` accepted as 2)
POSITIVE_INT = Interval(int, 1, None, closed="left", integral_floats=True)


def push_history(history: torch.Tensor, losses: torch.Tensor, size: int) -> torch.Tensor:
    """The history after appending ``losses``: the last ``size`` values, oldest first.

    A pure function (a new tensor is returned; ``history`` is left unchanged); non-finite
    losses are not appended.

    Args:
        history: 1-D tensor of past losses, oldest first.
        losses: 1-D tensor of new losses, in arrival order.
        size: the history length (l for ADONIS, R for SB).
    """
    new = as_numpy(losses, np.float32)
    return torch.from_numpy(_push(as_numpy(history, np.float32), new[np.isfinite(new)], size))


def as_numpy(values: torch.Tensor | np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """``values`` as a 1-D numpy array of ``dtype`` (no copy when already one).

    The selectors compute in numpy: on a few hundred values right after a forward pass its
    small-array calls cost a fraction of torch's dispatch.
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype).reshape(-1)


def _push(history: np.ndarray, finite: np.ndarray, size: int) -> np.ndarray:
    return np.concatenate([history, finite])[-size:].copy()


class LossHistorySelector(BatchSelector, ABC):
    """Base of the selectors that keep a rolling loss history (not registered itself).

    Args:
        history: number of recent per-sample losses kept. Must be >= 1.
        every: a fresh no-grad selection forward runs in every ``every``-th epoch counted
            from the end of warm-up; the epochs in between reuse the losses stored in the
            :class:`~thrifty.engine.SampleRecord` (``SelectionInput.fresh == False``).
        warmup: epochs of plain training (every sample, no selection forward) at the start.
        end_of_epoch: what happens to a partial training batch at the end of an epoch:
            ``"carry"`` (train it with the next epoch's first samples), ``"flush"`` (one
            smaller step) or ``"drop"``. With ``"carry"`` an epoch that chose fewer than rho
            samples ends without an optimizer step and the engine accepts that (they wait in
            the buffer); an epoch that chose none at all is refused.

    Rules shared by every subclass:
        * The batch's losses are appended to the history *before* its probabilities are
          computed (Algorithm 1 of seed 000 appends, then builds the histogram). In stale
          epochs the stored losses enter the history in the same way, so that the histogram
          or CDF describes the same kind of losses as the ones it judges.
        * A non-finite loss (NaN: a sample never seen before, in a stale epoch) never enters
          the history and its sample is always trained; the count is reported as
          ``selector_unseen_trained``.
        * During warm-up every sample is trained and the history is left untouched.

    State (checkpointed): ``history`` (float tensor) and ``counts`` (dict of ints: the
    current epoch's counters, reported and reset by :meth:`epoch_diagnostics`).
    """

    identity = False
    _state_attrs = ("history", "counts")
    _count_keys = ("considered", "selected", "unseen_trained", "warmup_trained",
                   "stale_batches", "batches")
    _parameter_constraints = {
        "history": POSITIVE_INT,
        "every": Param(POSITIVE_INT, label="the refresh period, eta or staleness"),
        "warmup": Interval(int, 0, None, closed="left", integral_floats=True),
        "end_of_epoch": Options(str, END_OF_EPOCH),
    }

    def __init__(self, history: int, every: int, warmup: int = 0,
                 end_of_epoch: str = "carry") -> None:
        v = validate_params(type(self).__name__, {
            "history": history, "every": every, "warmup": warmup, "end_of_epoch": end_of_epoch},
            self._parameter_constraints)
        self.history_size, self.every, self.warmup = v["history"], v["every"], v["warmup"]
        self.packing = PackingRule(end_of_epoch=end_of_epoch)
        self.history = torch.empty(0)
        self.counts: dict[str, int] = dict.fromkeys(self._count_keys, 0)

    # ------------------------------------------------------------------ schedule
    @property
    def reads_stored_losses(self) -> bool:
        """Whether batches between selection forwards are chosen from stored losses."""
        return self.every > 1

    @property
    def plain_epochs(self) -> int:
        """How many epochs train every sample before selection starts (``warmup``)."""
        return self.warmup

    def in_warmup(self, epoch: int) -> bool:
        """Whether ``epoch`` (0-based) is a warm-up epoch."""
        return epoch < self.plain_epochs

    def is_fresh_epoch(self, epoch: int) -> bool:
        """Whether the selection forward runs in ``epoch`` (0-based): every ``every``-th
        epoch counted from the first epoch after warm-up."""
        start = self.plain_epochs
        return epoch >= start and (epoch - start) % self.every == 0

    def needs_forward(self, ctx: TrainContext) -> bool:
        return self.is_fresh_epoch(ctx.epoch)

    # ------------------------------------------------------------------ selection
    @abstractmethod
    def _choose(self, losses: np.ndarray, ctx: TrainContext) -> np.ndarray:
        """Positions (sorted, into ``losses``) chosen by the method's rule. ``losses`` are
        finite float64 values, already appended to ``self.history``."""

    def select(self, batch: SelectionInput, ctx: TrainContext) -> torch.Tensor:
        n = len(batch.losses)
        self.counts["batches"] += 1
        if self.in_warmup(ctx.epoch):
            self.counts["warmup_trained"] += n
            return torch.arange(n)
        if not batch.fresh:
            self.counts["stale_batches"] += 1
        # through float32, the history's precision: a loss compares equal to its copy in H
        losses = as_numpy(batch.losses, np.float32).astype(np.float64)
        seen = np.isfinite(losses)
        all_seen = bool(seen.all())
        finite = losses if all_seen else losses[seen]
        self.history = torch.from_numpy(_push(as_numpy(self.history, np.float32),
                                              finite.astype(np.float32), self.history_size))
        if all_seen:
            pos = self._choose(losses, ctx)
        else:
            seen_pos, unseen_pos = np.flatnonzero(seen), np.flatnonzero(~seen)
            chosen = seen_pos[self._choose(finite, ctx)] if len(finite) else seen_pos
            pos = np.sort(np.concatenate([chosen, unseen_pos]))
            self.counts["unseen_trained"] += len(unseen_pos)
        self.counts["considered"] += n
        self.counts["selected"] += len(pos)
        return torch.from_numpy(pos.astype(np.int64))

    def epoch_diagnostics(self) -> dict[str, float]:
        """The epoch's counters as ``selector_<name>`` plus ``selector_selected_share``
        (selected / considered, warm-up excluded); resets them."""
        out = {f"selector_{k}": float(v) for k, v in self.counts.items()}
        considered = self.counts["considered"]
        out["selector_selected_share"] = self.counts["selected"] / considered if considered \
            else 1.0
        self.counts = dict.fromkeys(self._count_keys, 0)
        return out
