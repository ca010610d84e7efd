"""Any thrifty method in your own training loop: :class:`Thrift`.

A plain PyTorch loop changes four lines::

    from thrifty import Thrift

    thrift = Thrift("infobatch", train_set, epochs=8)                              # added
    loader = DataLoader(thrift.dataset, batch_size=128, sampler=thrift.sampler)    # changed
    for epoch in range(8):
        for x, y, idx in thrift.epoch(loader, model):                              # changed
            loss = thrift.loss(F.cross_entropy(model(x), y, reduction="none"), idx)  # changed
            opt.zero_grad()
            loss.backward()
            opt.step()

:class:`Thrift` owns what the engine would own: the per-sample record, the context the
methods see, the reducer's pool, the sampler's epochs (``thrift.sampler`` is a
:class:`torch.utils.data.Sampler` for any DataLoader, workers included), the feedback of
the training losses (and the sampler's loss weights), and in-batch selection (the engine's
own :class:`~thrifty.engine.SelectionStep`: a selector's no-grad forward, its choice, the
packing into full batches). It never degrades silently: a sampler iterated before its
epoch was started, a method that needs training losses that were never given, losses for
samples no batch carried, or more epochs than it was told, raise an error that says what
to do.

All of the protocol is the engine's run-time core (:class:`~thrifty.engine.core.RunCore`);
:class:`Thrift` adds only what a user's loop needs: the sampler object, the batches in the
loader's own shape, and the checks on what the loop gives back.

Under ``torchrun`` (a process group initialised before the first epoch, with a backend
that carries CPU tensors: ``gloo``, or ``"cpu:gloo,cuda:nccl"`` on GPUs) every rank makes
the same choice, loads a disjoint share of it, and the record is exchanged once per
epoch; give the DDP-wrapped model and the optimizer to :meth:`Thrift.epoch` so that ranks
that take fewer steps shadow the others' all-reduces and take the optimizer state of the
rank that stepped most.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from thrifty.data import Batch, IndexedDataset, dataset_labels
from thrifty.data.checks import check_dataset
from thrifty.data.tensor import cat_rows, to_device
from thrifty.engine.assembly import infer_classes
from thrifty.engine.config import method_names
from thrifty.engine.core import RunCore, without_small_tail
from thrifty.engine.distributed import Dist, gather_in_order, sync_optimizer
from thrifty.engine.forward import cross_entropy_losses, no_grad_forward
from thrifty.engine.interfaces import BatchSelector, EpochSampler, Pieces, Reducer
from thrifty.engine.record import SampleRecord
from thrifty.engine.step import argmax_correct
from thrifty.integrations.batches import BatchFormat

LossFn = Callable[[Any, torch.Tensor], torch.Tensor]


def model_output(model: nn.Module, x: Any) -> Any:
    """``model(**x)`` for dict inputs (Hugging Face), else ``model(x)``; the ``logits`` of
    an output object that has them."""
    out = model(**x) if isinstance(x, Mapping) else model(x)
    return getattr(out, "logits", out)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper (no-grad passes run on it:
    no collective per selection forward)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def process_group() -> Dist:
    """This process's place in an initialised ``torch.distributed`` group (a single
    process when there is none). Refuses a group whose backend cannot carry CPU tensors
    (thrifty exchanges its record on the CPU)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return Dist()
    backend = str(dist.get_backend())
    if "gloo" not in backend:
        raise RuntimeError(f"thrifty exchanges its per-sample record as CPU tensors, which the "
                           f"{backend!r} process group cannot carry: initialise it with "
                           "torch.distributed.init_process_group('cpu:gloo,cuda:nccl') on GPUs "
                           "(or 'gloo' on CPUs)")
    return Dist(dist.get_rank(), dist.get_world_size())


class _Forward(nn.Module):
    """The user's model behind the one-argument call the selection step makes."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Any) -> Any:
        return model_output(self.model, x)


class ThriftLoader:
    """Each iteration is one epoch of :meth:`Thrift.epoch` (see :meth:`Thrift.loader`).

    Under a framework that numbers the epochs itself (``thrift.framework_epoch``, set by
    Lightning's :class:`~thrifty.integrations.lightning.ThriftyCallback`), a second pass
    over the loader within the same epoch continues the epoch instead of starting another:
    Lightning iterates a reloaded loader once when it sets the data up (and fetches one
    batch ahead) and again when the epoch runs. The batches given out but not yet trained
    (no :meth:`Thrift.loss` call for them) are given again first, so no sample is lost,
    trained twice, or chosen by a second epoch's draw. A pass asked for an epoch that has
    already ended (a framework restoring a checkpoint taken at that epoch's end sets its
    data up before it moves to the next epoch) runs the next epoch instead: an ended
    epoch is never drawn again.
    """

    def __init__(self, thrift: Thrift, loader: Iterable[Any], model: nn.Module) -> None:
        self.thrift, self.inner, self.model = thrift, loader, model
        self._pass: Iterator[Any] | None = None
        self._pass_epoch: int | None = None

    def __iter__(self) -> Iterator[Any]:
        t = self.thrift
        epoch = t.framework_epoch() if t.framework_epoch is not None else None
        if epoch is not None and epoch <= t.current_epoch and t.core.epoch_done:
            epoch = t.current_epoch + 1  # that epoch ended: the framework moves on
        if epoch is None or self._pass is None or self._pass_epoch != epoch:
            # the framework ends the epoch from its hook (it fetches batches ahead)
            self._pass = t.epoch(self.inner, self.model, epoch=epoch,
                                 end=t.framework_epoch is None)
            self._pass_epoch = epoch
            return self._pass
        return self._continue(self._pass)

    def _continue(self, running: Iterator[Any]) -> Iterator[Any]:
        t = self.thrift
        untrained = t._given - t._trained_batches
        if untrained > len(t._recent):
            raise RuntimeError(f"{untrained} batches were given out and not trained; thrifty "
                               "can hand back at most the last "
                               f"{len(t._recent)}: call thrift.loss on every batch")
        if untrained > 0:
            yield from list(t._recent)[-untrained:]
        # not `yield from`: when the framework drops this pass, closing it must not close
        # the epoch it continues
        while True:
            try:
                item = next(running)
            except StopIteration:
                return
            yield item


class ThriftSampler(Sampler[int]):
    """This rank's share of the epoch's dataset indices, as chosen by the run's sampler.

    Iterating it yields the indices of the epoch :meth:`Thrift.start_epoch` started (once
    per epoch; a second pass over the same epoch is refused, since it would train the
    epoch twice). ``set_epoch(e)`` (called by Lightning, like ``DistributedSampler``'s)
    starts epoch ``e``.
    """

    def __init__(self, thrift: Thrift) -> None:
        self.thrift = thrift

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.thrift.current_epoch:
            self.thrift.start_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        return iter(self.thrift._take_order())

    def __len__(self) -> int:
        """The current epoch's samples on this rank; before the first epoch, the pool's
        share (no epoch loads more), so that a framework sizing the loader early does not
        see an empty one."""
        t = self.thrift
        if t._share is not None:
            return len(t._share)
        return -(-len(t.pieces.sampler.pool) // t.core.dist.world_size)


class Thrift:
    """Run thrifty methods of any place around your own model, data and loss.

    Args:
        method: method name(s) from ``thrifty methods`` (``"infobatch"``,
            ``["rpc", "stale-sb"]``), or ``None`` when the method objects are given.
            Default ``None``.
        dataset: the training set (map-style; ``(x, y)`` pairs or dicts). Its labels are
            read from a ``targets`` attribute when it has one (class-wise methods need it).
        epochs: the number of epochs you will train (schedules and annealing use it; a
            loop that starts more is refused).
        batch_size: your training batch size rho (selectors pack to it). Default 128.
        method_args: hyper-parameters, ``{KEY: VALUE}`` or ``{"METHOD.KEY": VALUE}``.
            Default ``None``.
        reducer, sampler, selector: method objects instead of names. Default ``None``.
        seed: seed of the methods' random draws. Default 0.
        loss_fn: per-sample loss ``f(output, target)`` of the selection and scoring
            forwards (no reduction). Default cross entropy; give your own for regression or
            sequence models (e.g. per-token losses averaged per sample).
        input_key, target_key, index_key: the keys of dict batches (see
            :class:`~thrifty.integrations.batches.BatchFormat`). Defaults ``None``,
            ``"labels"``, ``"index"``.
        device: where scoring passes put their batches. Default: the model's device.
        eval_batch_size: batch size of scoring passes. Default 256.
        log: prints method messages. Default ``print``.

    Attributes:
        dataset: the training set with the dataset index added to each sample: build your
            DataLoader from it.
        sampler: the epoch sampler to give your DataLoader (``sampler=thrift.sampler``).
        core: the run-time core (:class:`~thrifty.engine.core.RunCore`) it drives.
        record: the shared per-sample record.
        pieces: the reducer, sampler and selector.
        counts: ``{"loaded", "forwarded", "selected", "trained", "steps"}`` so far
            (``steps``: training batches whose losses came back); ``epoch_counts`` the same
            for the current epoch. Under DDP global (summed over ranks) once an epoch ended.
        diagnostics: the methods' numbers of the epoch that ended last (current as soon
            as :meth:`epoch` has yielded its last batch).
    """

    def __init__(self, method: str | list[str] | None = None, dataset: Any = None, *,
                 epochs: int, batch_size: int = 128, method_args: dict[str, Any] | None = None,
                 reducer: Reducer | None = None, sampler: EpochSampler | None = None,
                 selector: BatchSelector | None = None, seed: int = 0,
                 loss_fn: LossFn | None = None, input_key: str | None = None,
                 target_key: str = "labels", index_key: str = "index",
                 device: torch.device | str | None = None, eval_batch_size: int = 256,
                 log: Callable[[str], None] = print) -> None:
        if dataset is None:
            raise ValueError("Thrift needs the training set: Thrift(method, train_set, "
                             "epochs=...)")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer (the epochs you will "
                             f"train), got {epochs!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if len(dataset) == 0:
            raise ValueError("the training set is empty")
        self.raw_dataset = dataset
        self.format = BatchFormat(input_key, target_key, index_key)
        self.dataset = IndexedDataset(dataset, index_key)
        pieces = self._pieces(method, method_args, reducer, sampler, selector)
        if pieces.sampler.relabels:
            raise ValueError(f"{pieces.sampler.name!r} changes the training targets "
                             "(LILAC); in your own loop that needs your loss to use them, "
                             "which Thrift cannot do for you: run it in thrifty.engine.Trainer")
        n = len(dataset)
        labels = self._labels(dataset)
        if labels is None:
            readers = [p.name for p in pieces if getattr(p, "needs_labels", False)]
            if readers:
                raise ValueError(
                    f"{', '.join(readers)} reads the class of every sample, and "
                    f"{type(dataset).__name__} exposes no 1-D `targets`: give the dataset a "
                    "`targets` attribute (a tensor or list of class indices, one per "
                    "sample), or use a method that needs no labels (see `thrifty methods`)")
        classes = infer_classes(dataset, labels) if labels is not None else (0, None)
        if labels is not None:
            check_dataset(dataset, classes[0], "the training set", seed=seed)
        self.loss_fn = loss_fn or cross_entropy_losses
        self.device = None if device is None else torch.device(device)
        self.eval_batch_size = eval_batch_size
        self.model: nn.Module | None = None
        self.core = RunCore(
            pieces, size=n, num_classes=classes[0], classes=classes[1], epochs=epochs,
            labels=labels if labels is not None else torch.full((n,), -1, dtype=torch.long),
            batch_size=batch_size, seed=seed, forward=self._forward,
            correct=argmax_correct if loss_fn is None else None, dist=process_group(),
            services=dict(score=self._score, selection_pass=self._selection_pass,
                          eval_batch_size=eval_batch_size, log=log))
        self.core.prepare(dataset)
        self.sampler = ThriftSampler(self)
        self._order: torch.Tensor | None = None
        self._share: torch.Tensor | None = None
        self._taken = False
        # a framework that numbers epochs itself (Lightning's callback sets it)
        self.framework_epoch: Callable[[], int] | None = None
        self._given = self._trained_batches = 0  # batches of this epoch given / trained
        self._recent: deque[Any] = deque(maxlen=8)
        self._carrier = 0  # the id of the batch whose losses came back last
        self._draining = False  # the epoch's batches were all given; losses still to come
        self._optimizer: torch.optim.Optimizer | None = None
        # the index tensors of batches given out whose losses have not come back, by id
        # (the loop gives the same tensor back: O(1); any equal tensor is accepted too)
        self._outstanding: dict[int, torch.Tensor] = {}

    # ------------------------------------------------------------------ views of the core
    @property
    def pieces(self) -> Pieces:
        return self.core.pieces

    @property
    def record(self) -> SampleRecord:
        return self.core.record

    @property
    def ctx(self) -> Any:
        return self.core.ctx

    @property
    def packer(self) -> Any:
        return self.core.packer

    @property
    def counts(self) -> dict[str, int]:
        return self.core.counts

    @property
    def epoch_counts(self) -> dict[str, int]:
        return self.core.epoch_counts

    @property
    def diagnostics(self) -> dict[str, float]:
        return self.core.diagnostics

    @property
    def current_epoch(self) -> int:
        """The epoch started last (-1 before the first)."""
        return self.core.epoch

    # ------------------------------------------------------------------ assembly
    @staticmethod
    def _pieces(method: Any, method_args: Any, reducer: Any, sampler: Any, selector: Any
                ) -> Pieces:
        if method is not None:
            if any(p is not None for p in (reducer, sampler, selector)):
                raise ValueError("give the methods by name or as objects, not both")
            from thrifty.methods import build_pieces

            names = method_names(method)  # "infobatch+stale-sb" too
            built = build_pieces(names, dict(method_args or {}))
            reducer, sampler, selector = (built.get(p) for p in ("reducer", "sampler",
                                                                 "selector"))
        elif method_args:
            raise ValueError("method_args go with method names; objects take their "
                             "hyper-parameters in their constructor")
        return Pieces(Reducer() if reducer is None else reducer,
                      EpochSampler() if sampler is None else sampler,
                      BatchSelector() if selector is None else selector)

    @staticmethod
    def _labels(dataset: Any) -> torch.Tensor | None:
        if getattr(dataset, "targets", None) is None:
            return None  # no `targets`: fine for methods that need no labels
        labels = dataset_labels(dataset)  # float targets and the like are refused
        return labels if labels.dim() == 1 else None

    # ------------------------------------------------------------------ epochs
    @property
    def epoch_size(self) -> int:
        """Samples the current epoch loads on this rank (0 before the first epoch)."""
        return 0 if self._share is None else len(self._share)

    def start_epoch(self, epoch: int | None = None) -> None:
        """Start ``epoch`` (default: the next one): the sampler chooses its samples (the
        previous epoch ends first if it has not). :meth:`epoch` calls it for you."""
        if self.current_epoch < 0:  # a group started after the Thrift was made joins now
            self.core.distribute(process_group())
        if self._draining:
            self._finish_epoch()
        self._order = self.core.start_epoch(epoch)
        self._share = self.core.share(self._order)
        self._given = self._trained_batches = 0
        self._recent.clear()
        self._outstanding.clear()
        self._taken = False

    def use_model(self, model: nn.Module) -> None:
        """The model the selection and scoring passes run (the module inside a DDP
        wrapper), and its device. :meth:`epoch` calls it."""
        inner = unwrap(model)
        self.model = self.ctx.model = inner
        if self.device is None:
            self.ctx.device = next((p.device for p in inner.parameters()),
                                   torch.device("cpu"))

    def end_epoch(self) -> dict[str, float]:
        """End the current epoch (under DDP a collective: the record exchange and the
        global counts); return the methods' diagnostics of it. :meth:`epoch` calls it
        after its last batch."""
        return self.core.end_epoch()

    def _take_order(self) -> list[int]:
        if self._share is None:
            raise RuntimeError("thrift.sampler was iterated before an epoch was started: "
                               "loop over thrift.epoch(loader, model), or call "
                               "thrift.start_epoch(epoch) before iterating the loader")
        if self._taken:
            raise RuntimeError(f"epoch {self.current_epoch + 1}'s samples were already "
                               "loaded once: call thrift.start_epoch() (or loop over "
                               "thrift.epoch(loader, model)) for the next epoch")
        self._taken = True
        return self._share.tolist()

    def epoch(self, loader: Iterable[Any], model: nn.Module, epoch: int | None = None, *,
              optimizer: torch.optim.Optimizer | None = None, end: bool = True
              ) -> Iterator[Any]:
        """One epoch: starts it, then yields the training batches in the loader's own
        shape (``(x, y, idx)`` or a dict). With an in-batch selector, each loaded batch
        goes through the selection forward and the chosen samples are packed into full
        batches; at the end the packing rule's last batch follows. A loader's short last
        batch joins the one before it when it is under half the batch size (one sample
        under BatchNorm can wreck a model). After the last batch the epoch ends
        (:meth:`end_epoch`).

        Args:
            loader: a DataLoader over :attr:`dataset` with ``sampler=thrift.sampler``.
            model: your model (the selection forward runs it without gradient, in the
                selector's ``filter_mode``, and puts it back in its mode). With a selector,
                the loaded batches go to the model's device for that forward, and the
                batches yielded are on it. Under DDP give the DDP-wrapped model: the epoch
                then runs inside its ``join`` (ranks that run out of batches shadow the
                others' all-reduces).
            epoch: the epoch to start. Default ``None``: the next one.
            optimizer: under DDP, your optimizer: after an epoch in which ranks took
                different numbers of steps, every rank takes the state of the rank that
                stepped most. Default ``None``.
            end: end the epoch after its last batch. Default ``True``; a framework that
                fetches batches ahead of training them (Lightning) ends it from its
                epoch-end hook instead.
        """
        self.use_model(model)  # before the epoch starts: a sampler may score with it
        self.start_epoch(epoch)
        joined: Any = None
        if isinstance(model, nn.parallel.DistributedDataParallel):
            joined = model.join(divide_by_initial_world_size=False)
            joined.__enter__()
        try:
            yield from self._batches(loader)
        finally:
            if joined is not None:
                joined.__exit__(None, None, None)
        if not self._taken and self._share is not None:
            raise RuntimeError("the loader did not draw from thrift.sampler: build it as "
                               "DataLoader(thrift.dataset, batch_size=..., "
                               "sampler=thrift.sampler)")
        if not end:
            return
        self._optimizer = optimizer
        if self._outstanding:  # a loop that fetches ahead: the last losses are still to come
            self._draining = True
            return
        self._finish_epoch()

    def _finish_epoch(self) -> None:
        self._draining = False
        steps = self.epoch_counts["steps"]
        self.end_epoch()
        if self._optimizer is not None:
            sync_optimizer(self._optimizer, steps, self.core.dist)

    def _batches(self, loader: Iterable[Any]) -> Iterator[Any]:
        core, fmt = self.core, self.format
        like: Any = None
        for batch in self._whole_batches(loader):
            x, y, idx = fmt.split(batch)
            if self.pieces.selector.identity:
                core.hand_out(len(idx))
                yield self._give(batch, idx)
                continue
            like = batch
            # the selection forward runs on the model's device; packed batches stay there
            device = self.ctx.device
            for ready in core.select(Batch(to_device(x, device), to_device(y, device), idx)):
                yield self._give(fmt.join(*ready, like=like), ready.idx)
        for ready in core.finish_batches():
            yield self._give(fmt.join(*ready, like=like), ready.idx)

    def _whole_batches(self, loader: Iterable[Any]) -> Iterator[Any]:
        """The loader's batches; a short last one (:meth:`RunCore.tail_merges`) joined to
        the one before it. The loader's batch size is read from its first batch."""
        fmt = self.format
        it = iter(loader)
        head = next(it, None)
        if head is None:
            return
        width = len(fmt.split(head)[2])
        order = self._order
        merges = order is not None and self.core.batch_plan(self.epoch_size, len(order),
                                                            width)[1]
        if not merges:
            yield head
            yield from it
            return

        def merge(a: Any, b: Any) -> Any:
            (xa, ya, ia), (xb, yb, ib) = fmt.split(a), fmt.split(b)
            return fmt.join(cat_rows([xa, xb]), cat_rows([ya, yb]), torch.cat([ia, ib]),
                            like=a)

        yield from without_small_tail(itertools.chain([head], it),
                                      lambda b: len(fmt.split(b)[2]), merge, width, True)

    def _give(self, batch: Any, idx: torch.Tensor) -> Any:
        self._given += 1
        self._outstanding[id(idx)] = idx
        self._recent.append(batch)
        return batch

    def loaded(self, idx: Any) -> None:
        """Count a batch your framework loaded from :attr:`sampler` without
        :meth:`epoch` (the Hugging Face trainer's own loop): its samples may then come
        back through :meth:`loss`."""
        idx = torch.as_tensor(idx).long().cpu()
        self.core.hand_out(len(idx))
        self._given += 1
        self._outstanding[id(idx)] = idx

    def loader(self, loader: Iterable[Any], model: nn.Module) -> ThriftLoader:
        """An iterable whose every pass is one :meth:`epoch` over ``loader``: what a
        framework that iterates the train loader itself takes (PyTorch Lightning's
        ``train_dataloader``). It has no length: the epoch's size is the sampler's choice
        at the epoch's start, so a framework never cuts an epoch short by an old count."""
        return ThriftLoader(self, loader, model)

    # ------------------------------------------------------------------ the loss
    def loss(self, losses: torch.Tensor, idx: Any, *, output: torch.Tensor | None = None,
             targets: torch.Tensor | None = None) -> torch.Tensor:
        """The batch's training loss from its per-sample losses: records them (the
        training losses InfoBatch reads), applies the sampler's loss weights, returns the
        mean to call ``backward()`` on.

        Args:
            losses: per-sample losses of the training batch (``reduction="none"``), with
                gradient.
            idx: the batch's dataset indices (the last element of a tuple batch; keep them
                on the CPU).
            output: the logits, to record correctness (ASSIST, LILAC). Default ``None``.
            targets: the labels for that. Default ``None``.
        """
        if not isinstance(idx, torch.Tensor):
            idx = torch.as_tensor(idx)
        if idx.is_floating_point() or idx.dim() != 1:
            raise ValueError(f"thrift.loss takes the batch's dataset indices (a 1-D integer "
                             f"tensor, the last element of the batch), got {idx.dtype} of "
                             f"shape {tuple(idx.shape)}")
        idx = idx.long().cpu()
        if not self._carried(idx):
            raise ValueError(
                "thrift.loss got indices that no batch of this epoch carried, or whose "
                "losses already came back: pass each batch's own index tensor (the last "
                "element of (x, y, idx); not the labels), once per batch")
        correct = None if output is None or targets is None else argmax_correct(
            output.detach(), targets)
        loss = self.core.train_loss(losses, idx, correct=correct)
        self._outstanding.pop(self._carrier, None)
        if self._draining and not self._outstanding:
            self._finish_epoch()  # the last batch's loss of an epoch already iterated
        self._trained_batches += 1
        return loss

    def _carried(self, idx: torch.Tensor) -> bool:
        """Whether a batch given out and not yet trained carried exactly ``idx`` (the same
        tensor, or an equal one); remembers which, in ``_carrier``."""
        key = id(idx)
        if key in self._outstanding:
            self._carrier = key
            return True
        for key, given in self._outstanding.items():
            if given.shape == idx.shape and torch.equal(given, idx):
                self._carrier = key
                return True
        return False

    # ------------------------------------------------------------------ services
    def _forward(self, x: Any, y: torch.Tensor, mode: str) -> tuple[torch.Tensor, Any]:
        if self.model is None:
            raise RuntimeError("the selection forward needs the model: loop over "
                               "thrift.epoch(loader, model)")
        losses, logits = no_grad_forward(_Forward(self.model), x, y, mode=mode,
                                         loss_fn=self.loss_fn)
        return losses.float().cpu(), logits

    def _selection_pass(self, indices: torch.Tensor, fn: Callable[[Batch], Any], *,
                        forwards: int = 1) -> list[Any]:
        """Counted no-grad work over training samples by index (``ctx.selection_pass``)."""
        if self.model is None:
            raise RuntimeError("a scoring pass needs the model: loop over "
                               "thrift.epoch(loader, model)")
        device = self.device or self.ctx.device
        loader = DataLoader(torch.utils.data.Subset(self.dataset, indices.tolist()),
                            batch_size=self.eval_batch_size, shuffle=False)
        out = []
        was_training = self.model.training
        self.model.eval()
        try:
            for batch in loader:
                x, y, idx = self.format.split(batch)
                x = to_device(x, device)
                with torch.no_grad():
                    out.append(fn(Batch(x, to_device(y, device), idx)))
                self.core.count("forwarded", forwards * len(idx))
        finally:
            self.model.train(was_training)
        return out

    def _score(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        def forward(b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
            assert self.model is not None  # _selection_pass refused it otherwise
            lo, lg = no_grad_forward(_Forward(self.model), b.x, b.y, loss_fn=self.loss_fn)
            correct = argmax_correct(lg, b.y) if self.loss_fn is cross_entropy_losses \
                else None
            self.record.update(b.idx, lo, correct, self.ctx.epoch, trained=False,
                               kind="score")
            return lo.float().cpu(), lg.float().cpu()

        # under DDP each rank scores its share and every rank gets the whole, in order
        parts = self._selection_pass(self.core.share(indices), forward)
        width = max(self.ctx.num_classes, 1)
        losses = torch.cat([p[0] for p in parts]) if parts else torch.empty(0)
        logits = torch.cat([p[1] for p in parts]) if parts else torch.empty(0, width)
        return (gather_in_order(losses, self.core.dist),
                gather_in_order(logits, self.core.dist))

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The run-time state (:meth:`~thrifty.engine.core.RunCore.state_dict`: record,
        methods, packer, generator, epoch, counts; ``torch.load(weights_only=True)`` reads
        it back). Under DDP a collective: every rank calls it."""
        return self.core.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the next :meth:`epoch` continues after the saved
        one. Refuses a state of other methods, another dataset size, other epochs, and one
        saved in the middle of an epoch (save at an epoch's end)."""
        if isinstance(state, dict) and state.get("epoch_done") is False:
            raise ValueError("this thrifty state was saved in the middle of epoch "
                             f"{state.get('epoch', 0) + 1}; thrifty resumes from a state "
                             "saved at an epoch's end (after thrift.epoch's last batch; "
                             "Lightning's ModelCheckpoint does so by default)")
        self.core.distribute(process_group())  # a group started after the Thrift was made
        self.core.load_state_dict(state, device=self.device or "cpu")
        self._order = self._share = None
