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
epoch was started, or a method that needs training losses that were never given, raises
an error that says what to call.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from thrifty.data import Batch, IndexedDataset, dataset_labels
from thrifty.data.tensor import to_device
from thrifty.engine.assembly import infer_classes
from thrifty.engine.config import method_names
from thrifty.engine.forward import cross_entropy_losses, no_grad_forward
from thrifty.engine.interfaces import BatchSelector, EpochSampler, Pieces, Reducer, TrainContext
from thrifty.engine.packing import Packer
from thrifty.engine.record import SampleRecord
from thrifty.engine.step import SelectionStep, argmax_correct
from thrifty.integrations.batches import BatchFormat

LossFn = Callable[[Any, torch.Tensor], torch.Tensor]


def model_output(model: nn.Module, x: Any) -> Any:
    """``model(**x)`` for dict inputs (Hugging Face), else ``model(x)``; the ``logits`` of
    an output object that has them."""
    out = model(**x) if isinstance(x, Mapping) else model(x)
    return getattr(out, "logits", out)


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
    trained twice, or chosen by a second epoch's draw.
    """

    def __init__(self, thrift: Thrift, loader: Iterable[Any], model: nn.Module) -> None:
        self.thrift, self.inner, self.model = thrift, loader, model
        self._pass: Iterator[Any] | None = None
        self._pass_epoch: int | None = None

    def __iter__(self) -> Iterator[Any]:
        t = self.thrift
        epoch = t.framework_epoch() if t.framework_epoch is not None else None
        if epoch is None or self._pass is None or self._pass_epoch != epoch:
            self._pass = t.epoch(self.inner, self.model, epoch=epoch)
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
    """The epoch's dataset indices, as chosen by the run's sampler method.

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
        """The current epoch's samples; before the first epoch, the pool's (no epoch loads
        more), so that a framework sizing the loader early does not see an empty one."""
        t = self.thrift
        return t.epoch_size if t._order is not None else len(t.pieces.sampler.pool)


class Thrift:
    """Run thrifty methods of any place around your own model, data and loss.

    Args:
        method: method name(s) from ``thrifty methods`` (``"infobatch"``,
            ``["rpc", "stale-sb"]``), or ``None`` when the method objects are given.
            Default ``None``.
        dataset: the training set (map-style; ``(x, y)`` pairs or dicts). Its labels are
            read from a ``targets`` attribute when it has one (class-wise methods need it).
        epochs: the number of epochs you will train (schedules and annealing use it).
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
        record: the shared per-sample record.
        pieces: the reducer, sampler and selector.
        counts: ``{"loaded", "forwarded", "trained"}`` samples so far, and ``steps``
            (training batches yielded); ``epoch_counts`` the same for the current epoch.
        diagnostics: the methods' numbers of the last finished epoch.
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
        if len(dataset) == 0:
            raise ValueError("the training set is empty")
        self.raw_dataset = dataset
        self.format = BatchFormat(input_key, target_key, index_key)
        self.dataset = IndexedDataset(dataset, index_key)
        self.pieces = self._pieces(method, method_args, reducer, sampler, selector)
        if self.pieces.sampler.relabels:
            raise ValueError(f"{self.pieces.sampler.name!r} changes the training targets "
                             "(LILAC); in your own loop that needs your loss to use them, "
                             "which Thrift cannot do for you: run it in thrifty.engine.Trainer")
        n = len(dataset)
        labels = self._labels(dataset)
        if labels is None:
            readers = [p.name for p in self.pieces if getattr(p, "needs_labels", False)]
            if readers:
                raise ValueError(
                    f"{', '.join(readers)} reads the class of every sample, and "
                    f"{type(dataset).__name__} exposes no 1-D `targets`: give the dataset a "
                    "`targets` attribute (a tensor or list of class indices, one per "
                    "sample), or use a method that needs no labels (see `thrifty methods`)")
        classes = infer_classes(dataset, labels) if labels is not None else (0, None)
        self.record = SampleRecord(n)
        self.loss_fn = loss_fn or cross_entropy_losses
        self.device = None if device is None else torch.device(device)
        self.eval_batch_size = eval_batch_size
        self.model: nn.Module | None = None
        self.ctx = TrainContext(
            epoch=0, epochs=epochs, record=self.record, batch_size=batch_size, seed=seed,
            generator=torch.Generator().manual_seed(seed + 2), num_classes=classes[0],
            labels=labels if labels is not None else torch.full((n,), -1, dtype=torch.long),
            score=self._score, selection_pass=self._selection_pass, classes=classes[1],
            eval_batch_size=eval_batch_size, log=log)
        for piece in self.pieces:
            piece.check_composition(self.pieces)
        reducer_, sampler_, selector_ = self.pieces
        reducer_.fit(self.ctx.labels, seed=seed, dataset=dataset, ctx=self.ctx)
        sampler_.setup(reducer_.indices_, self.ctx)
        selector_.setup(self.ctx)
        self.packer = Packer(batch_size, selector_.packing)
        self._step = SelectionStep(selector_, self.packer, self.record, self._forward,
                                   correct=argmax_correct if loss_fn is None else None)
        self.sampler = ThriftSampler(self)
        self.current_epoch = -1
        self._order: torch.Tensor | None = None
        self._fed = 0  # training losses given in the current epoch
        self.counts = {"loaded": 0, "forwarded": 0, "trained": 0, "steps": 0}
        self.epoch_counts = dict(self.counts)
        # a framework that numbers epochs itself (Lightning's callback sets it)
        self.framework_epoch: Callable[[], int] | None = None
        self._given = self._trained_batches = 0  # batches of this epoch given / trained
        self._recent: deque[Any] = deque(maxlen=8)
        self.diagnostics: dict[str, float] = {}

    # ------------------------------------------------------------------ assembly
    @staticmethod
    def _pieces(method, method_args, reducer, sampler, selector) -> Pieces:
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
        try:
            labels = dataset_labels(dataset)
        except ValueError:
            return None  # no `targets`: fine for methods that need no labels
        return labels if labels.dim() == 1 else None

    # ------------------------------------------------------------------ epochs
    @property
    def epoch_size(self) -> int:
        """Samples the current epoch loads (0 before the first epoch started)."""
        return 0 if self._order is None else len(self._order)

    def start_epoch(self, epoch: int | None = None) -> None:
        """Start ``epoch`` (default: the next one): the sampler chooses its samples.
        :meth:`epoch` calls it for you."""
        epoch = self.current_epoch + 1 if epoch is None else epoch
        sampler = self.pieces.sampler
        if self.current_epoch >= 0 and sampler.needs_train_losses and self._fed == 0:
            raise RuntimeError(
                f"{sampler.name!r} chooses each epoch's samples from their training losses, "
                f"but epoch {self.current_epoch + 1} gave none: call "
                "thrift.loss(per_sample_losses, idx) on every training batch")
        if self.current_epoch >= 0:
            self.diagnostics = {**sampler.epoch_diagnostics(),
                                **self.pieces.selector.epoch_diagnostics()}
        self.current_epoch = self.ctx.epoch = epoch
        self._fed = 0
        self._given = self._trained_batches = 0
        self._recent.clear()
        self.epoch_counts = dict.fromkeys(self.counts, 0)
        sampler.set_epoch(epoch)
        sampler.begin_epoch(self.ctx)
        self._order = torch.as_tensor(list(iter(sampler)), dtype=torch.long)
        if len(self._order) == 0:
            raise RuntimeError(f"sampler {sampler.name!r} chose no samples for epoch "
                               f"{epoch + 1}; check its ratio")
        self._taken = False

    def _take_order(self) -> list[int]:
        if self._order is None:
            raise RuntimeError("thrift.sampler was iterated before an epoch was started: "
                               "loop over thrift.epoch(loader, model), or call "
                               "thrift.start_epoch(epoch) before iterating the loader")
        if self._taken:
            raise RuntimeError(f"epoch {self.current_epoch + 1}'s samples were already "
                               "loaded once: call thrift.start_epoch() (or loop over "
                               "thrift.epoch(loader, model)) for the next epoch")
        self._taken = True
        return self._order.tolist()

    def epoch(self, loader: Iterable[Any], model: nn.Module, epoch: int | None = None
              ) -> Iterator[Any]:
        """One epoch: starts it, then yields the training batches in the loader's own
        shape (``(x, y, idx)`` or a dict). With an in-batch selector, each loaded batch
        goes through the selection forward and the chosen samples are packed into full
        batches; at the end the packing rule's last batch follows.

        Args:
            loader: a DataLoader over :attr:`dataset` with ``sampler=thrift.sampler``.
            model: your model (the selection forward runs it without gradient, in the
                selector's ``filter_mode``, and puts it back in its mode). With a selector,
                the loaded batches go to the model's device for that forward, and the
                batches yielded are on it.
            epoch: the epoch to start. Default ``None``: the next one.
        """
        self.model = self.ctx.model = model
        self.start_epoch(epoch)
        if self.device is None:
            self.ctx.device = next((p.device for p in model.parameters()),
                                   torch.device("cpu"))
        selector = self.pieces.selector
        like: Any = None
        for batch in loader:
            x, y, idx = self.format.split(batch)
            self._count("loaded", len(idx))
            if selector.identity:
                yield self._give(batch)
                continue
            like = batch
            # the selection forward runs on the model's device; packed batches stay there
            device = self.ctx.device
            done = self._step(Batch(to_device(x, device), to_device(y, device), idx), self.ctx)
            self._count("forwarded", done.forwarded)
            for ready in done.ready:
                yield self._give(self.format.join(*ready, like=like))
        for ready in self._step.end_epoch():
            yield self._give(self.format.join(*ready, like=like))
        if not self._taken and self._order is not None:
            raise RuntimeError("the loader did not draw from thrift.sampler: build it as "
                               "DataLoader(thrift.dataset, batch_size=..., "
                               "sampler=thrift.sampler)")

    def _count(self, key: str, n: int) -> None:
        self.counts[key] += n
        self.epoch_counts[key] += n

    def _give(self, batch: Any) -> Any:
        self._count("steps", 1)
        self._given += 1
        self._recent.append(batch)
        return batch

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
            idx: the batch's dataset indices (the last element of a tuple batch).
            output: the logits, to record correctness (ASSIST, LILAC). Default ``None``.
            targets: the labels for that. Default ``None``.
        """
        idx = torch.as_tensor(idx).long().cpu()
        if losses.dim() != 1 or len(losses) != len(idx):
            raise ValueError(f"thrift.loss takes one loss per sample ({len(idx)} here), got "
                             f"shape {tuple(losses.shape)}: compute the loss with "
                             "reduction='none' (average per-token losses per sample first)")
        correct = None if output is None or targets is None else argmax_correct(
            output.detach(), targets)
        self.record.update(idx, losses, correct, max(self.current_epoch, 0), trained=True)
        self._fed += len(idx)
        self._trained_batches += 1
        self._count("trained", len(idx))
        sampler = self.pieces.sampler
        weights = sampler.loss_weights(idx) if sampler.weighted else None
        if weights is None:
            return losses.mean()
        return (losses * weights.to(losses.device)).mean()

    # ------------------------------------------------------------------ services
    def _forward(self, x: Any, y: torch.Tensor, mode: str) -> tuple[torch.Tensor, Any]:
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
                self._count("forwarded", forwards * len(idx))
        finally:
            self.model.train(was_training)
        return out

    def _score(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        def forward(b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
            lo, lg = no_grad_forward(_Forward(self.model), b.x, b.y, loss_fn=self.loss_fn)
            correct = argmax_correct(lg, b.y) if self.loss_fn is cross_entropy_losses \
                else None
            self.record.update(b.idx, lo, correct, self.ctx.epoch, trained=False,
                               kind="score")
            return lo.float().cpu(), lg.float().cpu()

        parts = self._selection_pass(indices, forward)
        if not parts:
            return torch.empty(0), torch.empty(0, max(self.ctx.num_classes, 1))
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def state_dict(self) -> dict[str, Any]:
        """Checkpointable state (``torch.load(weights_only=True)`` reads it back)."""
        reducer, sampler, selector = self.pieces
        return {"record": self.record.state_dict(), "reducer": reducer.state_dict(),
                "sampler": sampler.state_dict(), "selector": selector.state_dict(),
                "packer": self.packer.state_dict(), "generator": self.ctx.generator.get_state(),
                "epoch": self.current_epoch, "counts": dict(self.counts)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the next :meth:`epoch` continues after the saved one."""
        reducer, sampler, selector = self.pieces
        self.record.load_state_dict(state["record"])
        reducer.load_state_dict(state["reducer"])
        sampler.load_state_dict(state["sampler"])
        selector.load_state_dict(state["selector"])
        self.packer.load_state_dict(state["packer"])
        self.ctx.generator.set_state(state["generator"])
        self.current_epoch = self.ctx.epoch = state["epoch"]
        self.counts = dict(state["counts"])
        self._fed = math.inf  # the saved epoch was fed (it finished)
