"""The contract between methods and whatever drives them (the engine, alone or under DDP,
and :class:`thrifty.Thrift` in a user's own loop, Lightning or Hugging Face): three places
with pass-through defaults and one typed context.

1. :class:`Reducer` (offline, before training): which samples exist for the run.
2. :class:`EpochSampler` (each epoch): which samples are loaded, in which order, with which
   loss weight. A :class:`torch.utils.data.Sampler`, so it also plugs into any DataLoader.
3. :class:`BatchSelector` (inside a batch): which forwarded samples get a backward pass.

Methods implement one of them and receive a :class:`TrainContext`: everything a method may
use (the model, its device, the shared :class:`~thrifty.engine.record.SampleRecord`, counted
no-grad passes, the run folder, a logger, the labels and classes, the epoch). No method
sees the driver itself. Optional hooks (``filter_mode``, ``companions``,
``check_composition``, ``info_``) are declared here with their defaults.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import Sampler

from thrifty.engine.record import SampleRecord

if TYPE_CHECKING:
    from thrifty.engine.config import RunConfig

ScoreFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
SelectionPassFn = Callable[..., list[Any]]
WarmupFn = Callable[[nn.Module, int], tuple[nn.Module, dict[str, Any]]]


def _unavailable(what: str, way_out: str) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"ctx.{what} is not available here: {way_out}")

    return fail


@dataclass
class TrainContext:
    """What a driver tells a method: the whole contract.

    The engine (:class:`~thrifty.engine.loop.Trainer`) fills every field; a driver that
    cannot offer a service (a user's own loop has no dataset to score) leaves its default,
    which raises a clear error when used.

    Attributes:
        epoch: current epoch, 0-based.
        epochs: total epochs of the run (0 when unknown).
        record: the shared per-sample record.
        batch_size: the run's training batch size (rho).
        seed: the run's seed.
        generator: a seeded generator for the method's randomness (saved in checkpoints).
        num_classes: number of classes of the dataset.
        labels: labels of the full training set (CPU long tensor).
        score: ``score(indices) -> (losses, logits)``: a no-grad forward pass over training
            samples by dataset index (evaluation view, eval mode), counted as selection work
            and stored in the record as ``"score"`` losses. Default: unavailable.
        selection_pass: ``selection_pass(indices, fn, *, forwards=1) -> [fn(batch), ...]``:
            counted no-grad work over training samples by dataset index, ``fn`` getting a
            :class:`~thrifty.data.Batch` on ``device`` (CAPER's feature capture).
            Default: unavailable.
        model: the model being trained (read it; do not step it). Default ``None``.
        device: where the model lives. Default CPU.
        run_dir: the run's folder, for files a method saves with the run (IDS's registry);
            ``None`` when there is none. Default ``None``.
        log: prints one line for the user. Default ``print``.
        classes: class names of the training set, when known. Default ``None``.
        eval_batch_size: batch size of no-grad passes. Default 256.
        progress: whether long passes may show progress bars. Default ``True``.
        config: the run's :class:`~thrifty.engine.config.RunConfig` (its recipe: the
            snapshot embedder hashes it), ``None`` outside the engine. Default ``None``.
        warmup: ``warmup(model, epochs) -> (trained_copy, result)``: train a copy of
            ``model`` for ``epochs`` with the run's recipe and no method (the snapshot
            embedder). Default: unavailable.
    """

    epoch: int
    epochs: int
    record: SampleRecord
    batch_size: int
    seed: int
    generator: torch.Generator
    num_classes: int
    labels: torch.Tensor
    score: ScoreFn = _unavailable(
        "score", "this driver has no training set to score; run the method in "
        "thrifty.engine.Trainer, or give it the losses it needs")
    selection_pass: SelectionPassFn = _unavailable(
        "selection_pass", "this driver has no training set to pass over; run the method in "
        "thrifty.engine.Trainer")
    model: nn.Module | None = None
    device: torch.device = torch.device("cpu")
    run_dir: Path | None = None
    log: Callable[[str], None] = print
    classes: list[str] | None = None
    eval_batch_size: int = 256
    progress: bool = True
    config: RunConfig | None = None
    warmup: WarmupFn = _unavailable(
        "warmup", "this driver cannot train a warm-up copy of the model; give the embedder "
        "config=RunConfig(...) or use embedder=pixels")


@dataclass(frozen=True)
class Pieces:
    """The three places of one run, as handed to :meth:`MethodBase.check_composition`."""

    reducer: Reducer
    sampler: EpochSampler
    selector: BatchSelector

    def __iter__(self) -> Iterator[MethodBase]:
        return iter((self.reducer, self.sampler, self.selector))


class StatefulMixin:
    """``state_dict``/``load_state_dict`` over the attributes named in ``_state_attrs``."""

    _state_attrs: tuple[str, ...] = ()

    def state_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._state_attrs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in self._state_attrs:
            setattr(self, k, state[k])



class MethodBase(StatefulMixin):
    """The hooks every method of every place has, with their defaults.

    Attributes:
        name: the method's name in records and tables.
        loss_kinds: which losses of the record the method reads (``"train"``: training
            passes, ``"probe"``: in-batch selection forwards, ``"score"``: counted scoring
            passes over the evaluation view; see :class:`~thrifty.engine.record.SampleRecord`).
            Default: all of them (the latest loss, whichever pass wrote it).
        needs_labels: the method reads the class of every sample (``ctx.labels``), not
            just their number; a driver that cannot read labels refuses it. Default
            ``False`` (a property where it depends on a hyper-parameter).
    """

    name = "method"
    loss_kinds: tuple[str, ...] = ("train", "probe", "score")
    needs_labels: bool = False

    def epoch_diagnostics(self) -> dict[str, float]:
        """Per-epoch numbers to record with the run (fallback counts, shares). Resets them."""
        return {}

    def companions(self) -> dict[str, MethodBase]:
        """Pieces this method brings for other places (IDS's easy->hard sampler), by place
        (``"sampler"``, ``"selector"``). Default: none."""
        return {}

    def check_composition(self, pieces: Pieces) -> None:
        """Refuse (``ValueError``) a run whose other pieces this method cannot work with.
        Called once before any work. Default: any composition is accepted."""


class Reducer(MethodBase):
    """Offline reduction: fit once on the training set, keep ``indices_``.

    Subclasses implement :meth:`fit`, which must set ``indices_`` (a sorted CPU long tensor
    of kept dataset indices) and return ``self``. ``fit`` receives the labels of the whole
    training set, the run's seed, the training dataset and, inside a driver, the run's
    :class:`TrainContext` (``ctx``: its model, device, run folder, ``warmup``), e.g. to embed
    with a warm-up snapshot of the model being trained; ``None`` when called by hand.

    Attributes:
        indices_: the kept dataset indices (after :meth:`fit`).
        info_: numbers about the preparation (times, cache hits) recorded with the run.
    """

    name = "full"
    _state_attrs = ("indices_",)
    info_: dict[str, float] = {}

    def fit(self, labels: torch.Tensor, *, seed: int = 0, dataset: Any = None,
            ctx: TrainContext | None = None) -> Reducer:
        """Keep every sample (the pass-through default)."""
        self.indices_ = torch.arange(len(labels))
        return self


class EpochSampler(Sampler[int], MethodBase):
    """Per-epoch sampler: yields the dataset indices to load this epoch.

    The pass-through default shuffles the whole pool every epoch, with a generator seeded
    by ``(seed, epoch)`` so that any epoch's order can be regenerated. Subclasses usually
    override :meth:`begin_epoch` (choose the epoch's subset) and may override
    :meth:`loss_weights`.
    """

    name = "shuffle"
    set_up_ = False  # True after setup

    def __init__(self) -> None:
        self.pool = torch.empty(0, dtype=torch.long)
        self.epoch = 0
        self.seed = 0
        self.active = self.pool

    def setup(self, pool: torch.Tensor, ctx: TrainContext) -> None:
        """Receive the reducer's indices before the first epoch."""
        if len(pool) == 0:
            raise ValueError("the sampler got an empty pool of samples: the offline reducer "
                             "kept nothing; raise its ratio")
        self.pool = pool
        self.active = pool
        self.seed = ctx.seed
        self.set_up_ = True

    def _check_set_up(self) -> None:
        """Refuse to be iterated before :meth:`setup` (it would yield nothing)."""
        if not self.set_up_:
            raise RuntimeError(
                f"sampler {self.name!r} was iterated before it was set up, so it has no "
                "samples to give: in your own loop use thrifty.Thrift(method, dataset, "
                "epochs=...) and DataLoader(thrift.dataset, sampler=thrift.sampler); in "
                "thrifty's engine pass it as Trainer(..., sampler=...)")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def begin_epoch(self, ctx: TrainContext) -> None:
        """Choose ``self.active`` (the indices loaded this epoch). Default: the whole pool."""
        self.active = self.pool

    def __iter__(self) -> Iterator[int]:
        self._check_set_up()
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(len(self.active), generator=g)
        return iter(self.active[perm].tolist())

    def __len__(self) -> int:
        return len(self.active)

    weighted = False  # True when loss_weights may return weights
    # True when the epoch's choice reads the training losses of earlier epochs (InfoBatch):
    # a driver must feed them back, and refuses to go on when it was not given any
    needs_train_losses = False

    def loss_weights(self, idx: torch.Tensor) -> torch.Tensor | None:
        """Per-sample loss weights for a training batch, or ``None`` for uniform."""
        return None

    relabels = False  # True when train_targets may return targets
    # True when the epoch's learning rate is multiplied by ``lr_factor`` (KAKURENBO): only
    # a driver that applies it around its optimizer steps may run such a sampler
    scales_lr = False
    lr_factor = 1.0

    def train_targets(self, idx: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """Training targets for a batch instead of its labels ``y``, or ``None`` to keep them.

        Either class indices (a long tensor like ``y``: LILAC's pseudo-label) or class
        probabilities of shape ``(len(idx), num_classes)`` (LILAC's adaptive compensation).
        The record still scores correctness against the true labels.
        """
        return None


#: No driver trains a batch smaller than this share of the batch size: a loader's short
#: last batch joins the one before it, and a packer's end-of-epoch remainder waits for the
#: next epoch. One sample under BatchNorm can wreck a trained model (90 % -> 10 % in one
#: step, measured on fmnist-cnn).
MIN_BATCH_SHARE = 0.5


def min_batch(batch_size: int) -> int:
    """The smallest batch trained alone for a run of ``batch_size`` (see
    :data:`MIN_BATCH_SHARE`)."""
    return max(1, math.ceil(batch_size * MIN_BATCH_SHARE))


@dataclass(frozen=True)
class PackingRule:
    """How chosen samples are packed into training batches of size rho.

    Attributes:
        strict: step only when the pending buffer holds *more* than rho (ASSIST's ``>``);
            default ``False`` (step at rho).
        overflow: ``"carry"`` keeps samples beyond rho for the next batch; ``"discard"`` drops
            them. Default ``"carry"``.
        repeat: take as many steps as the buffer allows ("while"); ``False`` takes at most
            one step per forward batch ("if"). Default ``True``.
        end_of_epoch: ``"flush"`` trains on a partial batch at the end of the epoch (a
            remainder under :func:`min_batch` waits for the next epoch instead, and is
            dropped, counted, after the last one), ``"carry"`` keeps it for the next epoch,
            ``"drop"`` discards it. Default ``"flush"``.
        immediate: train at once on whatever one forward batch contributed, at any size
            (no packing; ASSIST's "unstable batch size"). Default ``False``.
    """

    strict: bool = False
    overflow: str = "carry"
    repeat: bool = True
    end_of_epoch: str = "flush"
    immediate: bool = False

    def __post_init__(self) -> None:
        if self.overflow not in ("carry", "discard"):
            raise ValueError(f"overflow must be 'carry' or 'discard', got {self.overflow!r}")
        if self.end_of_epoch not in ("flush", "carry", "drop"):
            raise ValueError("end_of_epoch must be 'flush', 'carry' or 'drop', got "
                             f"{self.end_of_epoch!r}")


@dataclass
class SelectionInput:
    """What a selector sees for one forward batch.

    Attributes:
        losses: per-sample losses (fresh from a no-grad forward, or stale from the record;
            NaN for samples never seen).
        logits: logits of the fresh forward pass, ``None`` when losses are stale.
        targets: labels.
        idx: dataset indices.
        fresh: whether ``losses`` come from a forward pass of this batch.
    """

    losses: torch.Tensor
    logits: torch.Tensor | None
    targets: torch.Tensor
    idx: torch.Tensor
    fresh: bool


class BatchSelector(MethodBase):
    """Inside-a-batch selection: which forwarded samples get a backward pass.

    The pass-through default (``identity = True``) trains on every sample and lets the
    engine skip the selection machinery entirely.

    Attributes:
        identity: ``True`` when every forwarded sample is trained (no selection at all).
        packing: how chosen samples are packed into training batches.
        filter_mode: the mode of the no-grad selection forward: ``"eval"`` (default;
            BatchNorm running statistics, no dropout) or ``"train"`` (batch statistics,
            running statistics left as they were).
        allow_empty_epoch: see below.
    """

    name = "all"
    identity = True
    packing = PackingRule()
    filter_mode = "eval"
    # True when some batches are selected from losses stored in earlier epochs (ADONIS
    # eta > 1, Stale-SB): a driver must keep a record keyed by dataset index
    reads_stored_losses = False
    # True only for methods that may legitimately choose nothing in an epoch and report it
    # themselves (e.g. ASSIST starvation with fallback "skip"); otherwise the engine raises
    # when an epoch chose no sample (an epoch whose few chosen samples wait in the packer
    # for the next one is fine)
    allow_empty_epoch = False

    def setup(self, ctx: TrainContext) -> None:
        """Called once before training."""

    def needs_forward(self, ctx: TrainContext) -> bool:
        """Whether a no-grad selection forward must run for batches of this epoch."""
        return False

    def select(self, batch: SelectionInput, ctx: TrainContext) -> torch.Tensor:
        """Return positions (into the batch) of the samples to train on."""
        return torch.arange(len(batch.idx))


class SelectionError(RuntimeError):
    """A method selected nothing where training needs something."""
