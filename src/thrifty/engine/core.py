"""The run-time core: the one object every driver composes.

A run's protocol is the same whoever drives it — thrifty's engine
(:class:`~thrifty.engine.loop.Trainer`), a user's own loop (:class:`thrifty.Thrift`), the
Lightning callback or the Hugging Face trainer, each alone or under ``torchrun``:

1. **prepare**: the reducer fits (rank 0 under DDP; every rank gets its result) or is
   restored, the sampler receives the pool, the selector is set up;
2. **start an epoch**: the sampler chooses the epoch's order (the same on every rank);
   :meth:`RunCore.share` is this rank's disjoint part of it;
3. **select inside a batch**: a loaded batch goes through the selector's no-grad forward,
   its choice and the packing into full training batches (:meth:`RunCore.select`,
   :meth:`RunCore.finish_batches`);
4. **the training loss** from per-sample losses: the record update (deferred: no host copy
   on the step path) and the sampler's loss weights (:meth:`RunCore.train_loss`);
5. **end the epoch**: the record exchanged across ranks once, the work counts summed, the
   methods' diagnostics of the epoch just finished (:meth:`RunCore.end_epoch`);
6. **state**: one :meth:`RunCore.state_dict` format (record, methods, packer, generator,
   epoch, counts), per rank where ranks differ, refused for another configuration.

A driver adds only what its framework needs (its loader, its optimizer step, its
checkpoint files); nothing of the protocol is written twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch

from thrifty.data.tensor import Batch
from thrifty.engine.distributed import (
    Dist,
    RecordLog,
    broadcast_object,
    shard,
    sum_counts,
)
from thrifty.engine.interfaces import (
    MIN_BATCH_SHARE,
    Pieces,
    SelectionError,
    TrainContext,
    min_batch,
)
from thrifty.engine.packing import Packer
from thrifty.engine.record import SampleRecord
from thrifty.engine.step import (
    CorrectFn,
    ForwardFn,
    PhaseFn,
    SelectionStep,
    _no_phase,
    argmax_correct,
)

__all__ = ["COUNT_KEYS", "CORE_FORMAT", "MIN_BATCH_SHARE", "RunCore", "min_batch",
           "without_small_tail"]

CORE_FORMAT = "thrifty-core/1"

#: The work counts of an epoch: samples loaded, samples in no-grad forwards (selection and
#: scoring), samples an in-batch selector chose, samples trained on, training steps.
COUNT_KEYS = ("loaded", "forwarded", "selected", "trained", "steps")

T = TypeVar("T")


def without_small_tail(batches: Iterator[T], size: Callable[[T], int],
                       merge: Callable[[T, T], T], batch_size: int, merges: bool
                       ) -> Iterator[T]:
    """``batches`` with a short last batch (fewer than ``batch_size`` samples) joined to
    the one before it when ``merges`` (:meth:`RunCore.tail_merges`: decided from the whole
    epoch, so that every rank takes the same number of batches). One batch is held back to
    see whether it is the last."""
    prev: T | None = None
    for cur in batches:
        if prev is not None and merges and size(cur) < batch_size:
            prev = merge(prev, cur)  # only a loader's last batch is short
            continue
        if prev is not None:
            yield prev
        prev = cur
    if prev is not None:
        yield prev


class RunCore:
    """The protocol of one run (see the module's docstring), driven by any loop.

    Args:
        pieces: the reducer, sampler and selector.
        size: the number of training samples (the record's length).
        labels: their labels (CPU long tensor; ``-1`` where unknown).
        num_classes: the number of classes (0 when unknown).
        epochs: the epochs the run will train (schedules and annealing use them; a run
            that starts more is refused).
        batch_size: the training batch size rho (selectors pack to it).
        seed: the run's seed (the methods' generator is seeded ``seed + 2``).
        forward: the selection forward ``forward(x, y, mode) -> (losses, logits)``.
        correct: what the record stores as correctness, ``correct(logits, y)``, or
            ``None``. Default: top-1 correctness.
        dist: this process's place in a DDP run. Default: a single process.
        classes: class names when known. Default ``None``.
        services: the other :class:`~thrifty.engine.TrainContext` fields the driver offers
            (``score``, ``selection_pass``, ``model``, ``device``, ``run_dir``, ``log``,
            ``eval_batch_size``, ``progress``, ``config``, ``warmup``). Default none.
        feedback: the driver gives the training losses back (:meth:`train_loss`), and an
            epoch whose losses never came back is refused. Default ``True``; ``False`` for
            a selector-only helper whose caller keeps its losses.
        keyed: batches carry dataset indices (the record is kept). Default ``True``.
        applies_lr_factor: the driver multiplies its learning rate by the sampler's
            ``lr_factor`` around each optimizer step; a sampler that scales the rate
            (``scales_lr``, KAKURENBO) is refused by a driver that does not. Default
            ``False``; thrifty's engine does.

    Attributes:
        record: the per-sample record (exchanged across ranks once per epoch).
        ctx: the :class:`~thrifty.engine.TrainContext` the methods see.
        packer, step: the packer and the selection step of the in-batch selector.
        epoch: the current epoch (-1 before the first); ``epoch_done`` whether it ended.
        counts, epoch_counts: work of the run so far and of the current epoch
            (:data:`COUNT_KEYS`, global under DDP once the epoch ended).
        diagnostics: the methods' numbers of the epoch that ended last.
    """

    def __init__(self, pieces: Pieces, *, size: int, labels: torch.Tensor, num_classes: int,
                 epochs: int, batch_size: int, seed: int, forward: ForwardFn,
                 correct: CorrectFn | None = argmax_correct, dist: Dist | None = None,
                 classes: list[str] | None = None,
                 services: dict[str, Any] | None = None, feedback: bool = True,
                 keyed: bool = True, applies_lr_factor: bool = False) -> None:
        self.pieces = pieces
        self.applies_lr_factor = applies_lr_factor
        self.feedback = feedback
        self.dist = dist or Dist()
        self.batch_size = batch_size
        self.record: SampleRecord = RecordLog(size, self.dist) if self.dist.enabled \
            else SampleRecord(size)
        self.generator = torch.Generator().manual_seed(seed + 2)
        self.ctx = TrainContext(epoch=0, epochs=epochs, record=self.record,
                                batch_size=batch_size, seed=seed, generator=self.generator,
                                num_classes=num_classes, labels=labels, classes=classes,
                                **(services or {}))
        self.packer = Packer(batch_size, pieces.selector.packing)
        # keyed=False: batches carry positions, not dataset indices, so no record is kept
        self.step = SelectionStep(pieces.selector, self.packer,
                                  self.record if keyed else None, forward, correct=correct)
        self.epoch = -1
        self.epoch_done = True
        self.counts = dict.fromkeys(COUNT_KEYS, 0)
        self.epoch_counts = dict.fromkeys(COUNT_KEYS, 0)
        self.diagnostics: dict[str, float] = {}
        self.sync_info: dict[str, float] = {}
        # the epoch's (mean loss, samples) per step, on the device until loss_sum() reads them
        self._losses: list[tuple[torch.Tensor, int]] = []
        self._loss_base = 0.0
        self.last_loss_sum = 0.0  # the summed training loss of the epoch that ended last
        self._given = 0
        for piece in pieces:
            piece.check_composition(pieces)

    # ------------------------------------------------------------------ set-up
    @property
    def needs_feedback(self) -> bool:
        """Whether the training losses must come back (:meth:`train_loss`): a sampler that
        reads them, or an in-batch selector (its counts and stale losses)."""
        return self.feedback and (self.pieces.sampler.needs_train_losses
                                  or not self.pieces.selector.identity)

    def prepare(self, dataset: Any = None, *, reducer_state: dict[str, Any] | None = None
                ) -> torch.Tensor:
        """Fit the reducer (rank 0 under DDP; every rank gets its result) or restore it from
        ``reducer_state``; set up the sampler and the selector. Returns the pool."""
        reducer, sampler, selector = self.pieces.reducer, self.pieces.sampler, \
            self.pieces.selector
        if reducer_state is not None:
            reducer.load_state_dict(reducer_state)
        else:
            if self.dist.is_main:
                reducer.fit(self.ctx.labels, seed=self.ctx.seed, dataset=dataset, ctx=self.ctx)
            if self.dist.enabled:
                state = broadcast_object({"reducer": reducer.state_dict(),
                                          "info": dict(reducer.info_ or {})}
                                         if self.dist.is_main else None, self.dist)
                reducer.load_state_dict(state["reducer"])
                reducer.info_ = state["info"]
        if sampler.scales_lr and not self.applies_lr_factor:
            raise ValueError(f"{sampler.name} scales the learning rate of each epoch, which "
                             "only thrifty's engine applies (thrifty train/bench, "
                             "thrifty.engine.Trainer); this driver would train at the wrong "
                             "rate")
        sampler.setup(reducer.indices_, self.ctx)
        selector.setup(self.ctx)
        return reducer.indices_

    def distribute(self, dist: Dist) -> None:
        """Join a process group that started after the core was made (a framework that
        launches its processes itself: Lightning's DDP): the record becomes one that is
        exchanged once per epoch, and every rank takes rank 0's reducer result (its pool).
        Before the first epoch only; a collective."""
        if not dist.enabled or self.dist.enabled:
            return
        if self.epoch >= 0:
            raise RuntimeError("a run can join a process group only before its first epoch")
        self.dist = dist
        record = RecordLog(self.record.size, dist)
        record.load_state_dict(self.record.state_dict())
        self.record = self.ctx.record = self.step.record = record
        reducer, sampler = self.pieces.reducer, self.pieces.sampler
        before = reducer.indices_
        reducer.load_state_dict(broadcast_object(reducer.state_dict(), dist))
        if not torch.equal(reducer.indices_, before):
            sampler.setup(reducer.indices_, self.ctx)

    # ------------------------------------------------------------------ epochs
    def start_epoch(self, epoch: int | None = None) -> torch.Tensor:
        """Start ``epoch`` (default: the next one); return its whole order (the same on
        every rank; :meth:`share` is this rank's part). Ends the previous epoch first if
        its driver did not."""
        if not self.epoch_done:
            self.end_epoch()
        epoch = self.epoch + 1 if epoch is None else epoch
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        if epoch <= self.epoch:
            raise RuntimeError(f"epoch {epoch + 1} has already run (the last one started was "
                               f"{self.epoch + 1}): an ended epoch is never drawn again")
        if epoch >= self.ctx.epochs:
            raise RuntimeError(
                f"epoch {epoch + 1} was started, but the run was set up for "
                f"{self.ctx.epochs} epochs (its schedules end there): train at most "
                f"{self.ctx.epochs} epochs, or set the methods up with epochs={epoch + 1} or "
                "more (Lightning: max_epochs; Hugging Face: num_train_epochs)")
        sampler = self.pieces.sampler
        self.begin_epoch(epoch)
        sampler.set_epoch(epoch)
        sampler.begin_epoch(self.ctx)
        order = torch.as_tensor(list(iter(sampler)), dtype=torch.long)
        if len(order) == 0:
            raise SelectionError(f"sampler {sampler.name!r} selected no samples for epoch "
                                 f"{epoch + 1}; check its ratio")
        return order

    def begin_epoch(self, epoch: int) -> None:
        """The epoch's bookkeeping without a sampler's order (:meth:`start_epoch` calls it;
        a selector-only driver calls it alone)."""
        self.epoch = self.ctx.epoch = epoch
        self.epoch_done = False
        self.epoch_counts = dict.fromkeys(COUNT_KEYS, 0)
        self._losses, self._loss_base = [], 0.0
        self._given = 0  # training batches handed out this epoch
        if isinstance(self.record, RecordLog):
            self.record.begin()  # the state the epoch's record exchange starts from

    def share(self, order: torch.Tensor) -> torch.Tensor:
        """This rank's part of an epoch's ``order``: every ``world_size``-th index from
        ``rank`` (no padding, nothing dropped; shares differ by at most one sample)."""
        return shard(order, self.dist)

    def tail_merges(self, epoch_size: int, batch_size: int) -> bool:
        """Whether this epoch's short last batches join the batch before them: when the
        smallest rank share's remainder is under :func:`min_batch`. Decided from the
        epoch's size alone, so every rank decides the same and takes as many batches as
        the others (shares differ by at most one sample)."""
        smallest = epoch_size // self.dist.world_size
        return smallest % batch_size < min_batch(batch_size)

    def batch_plan(self, share: int, epoch_size: int, batch_size: int) -> tuple[int, bool]:
        """``(batches, merged)`` for a rank's ``share`` of an epoch of ``epoch_size``
        samples in batches of ``batch_size``: ``merged`` when the short last batch joins
        the one before it (:meth:`tail_merges`)."""
        merged = share > batch_size and share % batch_size > 0 \
            and self.tail_merges(epoch_size, batch_size)
        return (share // batch_size if merged else -(-share // batch_size)), merged

    def count(self, key: str, n: int) -> None:
        """Add ``n`` to the work count ``key`` (:data:`COUNT_KEYS`) of the epoch."""
        self.counts[key] += n
        self.epoch_counts[key] += n

    # ------------------------------------------------------------------ batches
    def select(self, batch: Batch, phase: PhaseFn = _no_phase) -> list[Batch]:
        """A loaded batch in, the training batches now full out (the batch itself without
        an in-batch selector). ``phase(name)`` times the selection's parts."""
        if self.pieces.selector.identity:
            self.hand_out(len(batch.idx))
            return [batch]
        self.count("loaded", len(batch.idx))
        done = self.step(batch, self.ctx, phase=phase)
        self.count("forwarded", done.forwarded)
        self.count("selected", done.selected)
        self._given += len(done.ready)
        return done.ready

    def hand_out(self, n: int) -> None:
        """Count a loaded batch of ``n`` samples handed out whole for training (no in-batch
        selector): its losses are then due back through :meth:`train_loss`."""
        self.count("loaded", n)
        self._given += 1

    def finish_batches(self) -> list[Batch]:
        """The packer's end of the epoch: the last training batches (the packing rule's
        ``flush``) or none."""
        epochs = self.ctx.epochs
        out = self.packer.end_epoch(last=bool(epochs) and self.ctx.epoch >= epochs - 1)
        self._given += len(out)
        return out

    def train_targets(self, idx: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """The sampler's training targets for a batch (LILAC), or ``None`` for ``y``."""
        sampler = self.pieces.sampler
        return sampler.train_targets(idx, y) if sampler.relabels else None

    def train_loss(self, losses: torch.Tensor, idx: torch.Tensor, *,
                   correct: torch.Tensor | None = None) -> torch.Tensor:
        """The training loss of one batch from its per-sample ``losses``: stored in the
        record as training losses (with ``correct`` when given), weighted by the sampler's
        loss weights, averaged. Counts one training step. Copies nothing to the host.

        Args:
            losses: per-sample losses with gradient (one per index).
            idx: the batch's dataset indices (CPU long tensor).
            correct: per-sample correctness to record. Default ``None``.
        """
        if losses.dim() != 1 or len(losses) != len(idx):
            raise ValueError(f"one loss per sample is needed ({len(idx)} here), got shape "
                             f"{tuple(losses.shape)}: compute the loss with reduction='none' "
                             "(average per-token losses per sample first)")
        if self.epoch_done:
            raise RuntimeError("a training loss came outside an epoch: start the epoch first "
                               "(loop over thrift.epoch(loader, model))")
        self.record.update(idx, losses, correct, self.epoch, trained=True)
        sampler = self.pieces.sampler
        weights = sampler.loss_weights(idx) if sampler.weighted else None
        loss = losses.mean() if weights is None else \
            (losses * weights.to(losses.device, non_blocking=True)).mean()
        n = len(idx)
        self.count("trained", n)
        self.count("steps", 1)
        self._losses.append((loss.detach(), n))
        return loss

    def loss_sum(self) -> float:
        """The summed training loss of the epoch so far (each step's mean loss times its
        samples; one host copy: call it rarely)."""
        if self._losses:
            means = torch.stack([m.float() for m, _ in self._losses])
            counts = torch.tensor([n for _, n in self._losses], dtype=torch.float32,
                                  device=means.device)
            self._loss_base += float((means * counts).sum().item())
            self._losses = []
        return self._loss_base

    def end_epoch(self) -> dict[str, float]:
        """End the current epoch: the record's pending updates applied and exchanged across
        ranks, the work counts summed over ranks, the methods' diagnostics collected (and
        returned). Refuses an epoch whose losses never came back or that trained nothing."""
        if self.epoch_done:
            return self.diagnostics
        self.record.flush()
        self.last_loss_sum = self.loss_sum()
        if not math.isfinite(self.last_loss_sum):
            raise FloatingPointError(
                f"the training losses of epoch {self.epoch + 1} are NaN or infinite (their "
                f"sum is {self.last_loss_sum}): lower the learning rate, check the inputs "
                "for NaN, or use full precision")
        if self.needs_feedback and self._given > 0 and self.epoch_counts["trained"] == 0:
            reader = self.pieces.sampler if self.pieces.sampler.needs_train_losses \
                else self.pieces.selector
            raise RuntimeError(
                f"{reader.name!r} needs the training losses, but epoch {self.epoch + 1} gave "
                f"none back for its {self._given} training batches: call "
                "thrift.loss(per_sample_losses, idx) on every training batch")
        self._sync()
        self.check_trained()
        self.diagnostics = {**self.pieces.sampler.epoch_diagnostics(),
                            **self.pieces.selector.epoch_diagnostics(),
                            "overflow_discarded": self.packer.discarded,
                            "end_of_epoch_dropped": self.packer.end_dropped, **self.sync_info}
        self.packer.discarded = self.packer.end_dropped = 0
        self.epoch_done = True
        return self.diagnostics

    def _sync(self) -> None:
        """Under DDP: every rank receives the others' record updates of the epoch, and the
        epoch's work counts become global (summed; steps: the most any rank took)."""
        if not self.dist.enabled or not isinstance(self.record, RecordLog):
            return
        import time

        t0 = time.perf_counter()
        sent = self.record.exchange()
        self.sync_info = {"record_sync_bytes": float(sent),
                          "record_sync_s": time.perf_counter() - t0}
        local = {**{f"n_{k}": v for k, v in self.epoch_counts.items()},
                 "discarded": self.packer.discarded, "end_dropped": self.packer.end_dropped,
                 "loss_sum_micro": round(self.last_loss_sum * 1e6)}
        total = sum_counts(local, self.dist, maxed=("n_steps",))
        for k in COUNT_KEYS:
            self.counts[k] += total[f"n_{k}"] - self.epoch_counts[k]
            self.epoch_counts[k] = total[f"n_{k}"]
        self.packer.discarded = total["discarded"]
        self.packer.end_dropped = total["end_dropped"]
        self.last_loss_sum = total["loss_sum_micro"] / 1e6

    def check_trained(self) -> None:
        """Refuse an epoch in which the in-batch selector chose nothing (training would
        silently do nothing), unless the selector may (``allow_empty_epoch``)."""
        selector = self.pieces.selector
        c = self.epoch_counts
        if c["trained"] == 0 and c["selected"] == 0 and not selector.identity \
                and not selector.allow_empty_epoch:
            raise SelectionError(
                f"selector {selector.name!r} chose no sample in epoch {self.epoch + 1} "
                f"({c['loaded']} loaded): training would silently do nothing. "
                "Loosen its threshold or ratio.")

    # ------------------------------------------------------------------ state
    def methods(self) -> list[str]:
        """The names of the reducer, sampler and selector (a state's identity)."""
        return [p.name for p in self.pieces]

    _PER_RANK = ("packer", "selector", "generator", "epoch_counts")

    def state_dict(self) -> dict[str, Any]:
        """The run-time state: record, methods, packer, generator, epoch and counts
        (``torch.load(weights_only=True)`` reads it back). Under DDP a collective: every
        rank must call it, and the state holds each rank's own parts."""
        reducer, sampler, selector = self.pieces.reducer, self.pieces.sampler, \
            self.pieces.selector
        self.record.flush()
        state: dict[str, Any] = {
            "format": CORE_FORMAT, "methods": self.methods(), "size": self.record.size,
            "epochs": self.ctx.epochs, "world_size": self.dist.world_size,
            "record": self.record.state_dict(), "reducer": reducer.state_dict(),
            "sampler": sampler.state_dict(), "selector": selector.state_dict(),
            "packer": self.packer.state_dict(), "generator": self.generator.get_state(),
            "epoch": self.epoch, "epoch_done": self.epoch_done, "counts": dict(self.counts),
            "epoch_counts": dict(self.epoch_counts), "loss_sum": self.loss_sum()}
        if self.dist.enabled:
            mine = {k: state[k] for k in self._PER_RANK}
            gathered: list[Any] = [None] * self.dist.world_size
            torch.distributed.all_gather_object(gathered, mine)
            state["per_rank"] = gathered
        return state

    def load_state_dict(self, state: dict[str, Any], *, device: torch.device | str = "cpu",
                        reducer: bool = True) -> None:
        """Restore :meth:`state_dict`. Refuses a state of other methods, another dataset
        size, another number of epochs or another world size. ``device``: where the
        packer's pending samples go; ``reducer=False`` when :meth:`prepare` restored it."""
        if not isinstance(state, dict) or state.get("format") != CORE_FORMAT:
            raise ValueError("not a thrifty run-time state (no 'format': "
                             f"{CORE_FORMAT!r}): give what RunCore/Thrift.state_dict() returned")
        checks = (("methods", self.methods(), "methods"),
                  ("size", self.record.size, "training samples"),
                  ("epochs", self.ctx.epochs, "epochs"),
                  ("world_size", self.dist.world_size, "processes"))
        for key, mine, what in checks:
            if state[key] != mine:
                raise ValueError(f"the state belongs to another run: {what} {state[key]!r}, "
                                 f"this run has {mine!r}; load it into a run set up the same way")
        if self.dist.enabled:
            state = {**state, **state["per_rank"][self.dist.rank]}
        r, s, sel = self.pieces.reducer, self.pieces.sampler, self.pieces.selector
        self.record.load_state_dict(state["record"])
        if reducer:
            r.load_state_dict(state["reducer"])
        s.load_state_dict(state["sampler"])
        sel.load_state_dict(state["selector"])
        self.packer.load_state_dict(state["packer"], device)
        self.generator.set_state(state["generator"])
        self.epoch = self.ctx.epoch = state["epoch"]
        self.epoch_done = state["epoch_done"]
        self.counts = dict(state["counts"])
        self.epoch_counts = dict(state["epoch_counts"])
        self._losses, self._loss_base = [], float(state.get("loss_sum", 0.0))
