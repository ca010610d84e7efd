"""The three places where training data is reduced, as small interfaces with pass-through
defaults.

1. :class:`Reducer` (offline, before training): which samples exist for the run.
2. :class:`EpochSampler` (each epoch): which samples are loaded, in which order, with which
   loss weight. A :class:`torch.utils.data.Sampler`, so it also plugs into any DataLoader.
3. :class:`BatchSelector` (inside a batch): which forwarded samples get a backward pass.

Methods implement one of them and receive a :class:`TrainContext` with the shared
:class:`~thrifty.engine.record.SampleRecord` and a counted no-grad ``score`` function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Sampler

from thrifty.engine.record import SampleRecord

ScoreFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class TrainContext:
    """What the engine tells a method.

    Attributes:
        epoch: current epoch, 0-based.
        epochs: total epochs of the run.
        record: the shared per-sample record.
        batch_size: the run's training batch size (rho).
        seed: the run's seed.
        generator: a seeded generator for the method's randomness (saved in checkpoints).
        score: ``score(indices) -> (losses, logits)``: a no-grad forward pass over dataset
            indices, counted as selection work and stored in the record.
        num_classes: number of classes of the dataset.
        labels: labels of the full training set (CPU long tensor).
        trainer: the :class:`~thrifty.engine.loop.Trainer` running the method (its
            ``model``, ``device``, ``train_data``, ``config``), for methods that need more
            than ``score`` (CAPER's feature capture); ``None`` outside the engine.
    """

    epoch: int
    epochs: int
    record: SampleRecord
    batch_size: int
    seed: int
    generator: torch.Generator
    score: ScoreFn
    num_classes: int
    labels: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)
    trainer: Any = None


class StatefulMixin:
    """``state_dict``/``load_state_dict`` over the attributes named in ``_state_attrs``."""

    _state_attrs: tuple[str, ...] = ()

    def state_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._state_attrs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in self._state_attrs:
            setattr(self, k, state[k])

    def epoch_diagnostics(self) -> dict[str, float]:
        """Per-epoch numbers to record with the run (fallback counts, shares). Resets them."""
        return {}


class Reducer(StatefulMixin):
    """Offline reduction: fit once on the training set, keep ``indices_``.

    Subclasses implement :meth:`fit`, which must set ``indices_`` (a sorted CPU long tensor
    of kept dataset indices) and return ``self``. ``fit`` receives the labels of the whole
    training set, the run's seed, the training dataset and, inside the engine, the
    :class:`~thrifty.engine.loop.Trainer` itself (``trainer``: its ``config``, ``model``,
    ``device``, ``train_data``, ``test_data``), e.g. to embed with a warm-up snapshot of the
    model being trained. Outside the engine ``trainer`` is ``None``.
    """

    name = "full"
    _state_attrs = ("indices_",)

    def fit(self, labels: torch.Tensor, *, seed: int = 0, dataset: Any = None,
            trainer: Any = None) -> Reducer:
        """Keep every sample (the pass-through default)."""
        self.indices_ = torch.arange(len(labels))
        return self


class EpochSampler(Sampler[int], StatefulMixin):
    """Per-epoch sampler: yields the dataset indices to load this epoch.

    The pass-through default shuffles the whole pool every epoch, with a generator seeded
    by ``(seed, epoch)`` so that any epoch's order can be regenerated. Subclasses usually
    override :meth:`begin_epoch` (choose the epoch's subset) and may override
    :meth:`loss_weights`.
    """

    name = "shuffle"

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

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def begin_epoch(self, ctx: TrainContext) -> None:
        """Choose ``self.active`` (the indices loaded this epoch). Default: the whole pool."""
        self.active = self.pool

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(len(self.active), generator=g)
        return iter(self.active[perm].tolist())

    def __len__(self) -> int:
        return len(self.active)

    weighted = False  # True when loss_weights may return weights

    def loss_weights(self, idx: torch.Tensor) -> torch.Tensor | None:
        """Per-sample loss weights for a training batch, or ``None`` for uniform."""
        return None

    relabels = False  # True when train_targets may return targets

    def train_targets(self, idx: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """Training targets for a batch instead of its labels ``y``, or ``None`` to keep them.

        Either class indices (a long tensor like ``y``: LILAC's pseudo-label) or class
        probabilities of shape ``(len(idx), num_classes)`` (LILAC's adaptive compensation).
        The record still scores correctness against the true labels.
        """
        return None


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
        end_of_epoch: ``"flush"`` trains on a partial batch at the end of the epoch,
            ``"carry"`` keeps it for the next epoch, ``"drop"`` discards it. Default
            ``"flush"``.
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


class BatchSelector(StatefulMixin):
    """Inside-a-batch selection: which forwarded samples get a backward pass.

    The pass-through default (``identity = True``) trains on every sample and lets the
    engine skip the selection machinery entirely.
    """

    name = "all"
    identity = True
    packing = PackingRule()
    # True only for methods that may legitimately train nothing in an epoch and report it
    # themselves (e.g. ASSIST starvation with fallback "skip"); otherwise the engine raises.
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
