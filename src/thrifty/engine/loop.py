"""The engine: one training loop that composes reducer -> sampler -> selector and counts
every unit of work.

Per epoch it records samples loaded, samples forwarded without gradient (selection),
samples trained on, optimizer steps, wall time by phase, the learning rate, test accuracy
and the loss statistics of seed 004. Each run writes ``result.json`` (atomically, after
every epoch) and ``checkpoint.pt`` into ``out_dir/run_name``. SIGINT/SIGTERM save a
checkpoint mid-epoch and stop; :meth:`Trainer.resume` continues so that the final weights
equal those of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from thrifty.data import Batch, eval_view, iterate_batches
from thrifty.data.tensor import to_device
from thrifty.engine.accounting import EpochStats, PhaseTimer
from thrifty.engine.assembly import assemble
from thrifty.engine.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    write_json,
)
from thrifty.engine.config import RunConfig
from thrifty.engine.distributed import (
    Dist,
    RecordLog,
    agree,
    broadcast_object,
    from_environment,
    gather_cat,
    gather_in_order,
    shard,
    sum_counts,
)
from thrifty.engine.forward import no_grad_forward
from thrifty.engine.interfaces import (
    BatchSelector,
    EpochSampler,
    Reducer,
    SelectionError,
    TrainContext,
)
from thrifty.engine.optim import build_optimizer, build_scheduler
from thrifty.engine.packing import Packer
from thrifty.engine.record import SampleRecord
from thrifty.engine.runtime import environment, resolve_amp, resolve_device
from thrifty.engine.step import SelectionStep, argmax_correct
from thrifty.metrics import loss_ratios, loss_statistics
from thrifty.metrics.energy import make_energy_meter
from thrifty.utils.locks import FolderLock

__all__ = ["NonFiniteLossError", "Trainer", "TrainingInterrupted", "environment",
           "resolve_amp", "resolve_device"]

RESULT_FORMAT = "thrifty-run/1"


def method_record(method: Any) -> dict[str, Any]:
    """A method object as result.json records it: its name, class and the hyper-parameters
    of its constructor that it keeps as attributes (plain values only)."""
    params = {}
    for name, param in inspect.signature(type(method).__init__).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) \
                or not hasattr(method, name):
            continue  # only hyper-parameters the method keeps under their own name
        value = getattr(method, name)
        if isinstance(value, (bool, int, float, str, type(None))):
            params[name] = value
    return {"name": method.name, "class": f"{type(method).__module__}.{type(method).__name__}",
            "params": params}


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class TrainingInterrupted(Exception):
    """Training stopped on request (SIGINT/SIGTERM); a checkpoint was saved."""

    def __init__(self, signum: int | None, checkpoint: Path) -> None:
        self.signum = signum
        self.checkpoint = checkpoint
        name = signal.Signals(signum).name if signum else "a stop request"
        super().__init__(f"training interrupted by {name}; checkpoint saved to {checkpoint}. "
                         f"Continue with: thrifty train --resume {checkpoint.parent}")


Hook = Callable[["Trainer"], None]


class Trainer:
    """Train one model with optional data reduction, counting every unit of work.

    Args:
        config: the :class:`RunConfig`.
        train, test: datasets; loaded from ``config.dataset`` when ``None``.
        model: the model; built from ``config.model`` when ``None``.
        reducer, sampler, selector: method objects for the three places; built from
            ``config.method`` when all are ``None``, else pass-through defaults fill the gaps.
        on_batch_end: optional ``f(trainer)`` called after every forward batch.
        log: function that prints the one-line epoch summaries. Default ``print``.
        distributed: join the ``torchrun`` process group when there is one (``WORLD_SIZE``
            > 1; see :mod:`thrifty.engine.distributed`). Default ``True``; the snapshot
            warm-up trains in each process alone.

    After :meth:`fit`, ``history`` holds one :class:`EpochStats` dict per epoch and
    ``result`` the whole run result (also in ``run_dir/result.json``).
    """

    def __init__(self, config: RunConfig, *, train: Any = None, test: Any = None,
                 model: nn.Module | None = None, reducer: Reducer | None = None,
                 sampler: EpochSampler | None = None, selector: BatchSelector | None = None,
                 on_batch_end: Hook | None = None, log: Callable[[str], None] = print,
                 distributed: bool = True) -> None:
        self.config = config.validate()
        self.on_batch_end = on_batch_end
        cfg = self.config
        self.device = resolve_device(cfg.device)
        # under torchrun: one rank of a DDP run (rank 0 logs and writes)
        self.dist = from_environment(self.device) if distributed else Dist()
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(self.device)
        self.log = log if self.dist.is_main else (lambda line: None)
        self.amp_dtype = resolve_amp(cfg.amp, self.device)
        # the selection forward's precision may differ from training's (--selection-amp)
        self.selection_amp_dtype = self.amp_dtype if cfg.selection_amp == "same" \
            else resolve_amp(cfg.selection_amp, self.device, "--selection-amp")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)
        # what result.json says ran: the config's names, or the caller's own objects
        self._sources = {
            "dataset": "config" if train is None or test is None else "given",
            "model": "config" if model is None else "given",
            "methods": "config" if reducer is None and sampler is None and selector is None
            else "given"}
        run = assemble(cfg, train=train, test=test, model=model, reducer=reducer,
                       sampler=sampler, selector=selector)
        self.train_data, self.test_data = run.train, run.test
        self.labels, self.num_classes, self.classes = run.labels, run.num_classes, run.classes
        self.noisy = run.noisy  # indices relabelled by --label-noise
        self.model = run.model.to(self.device)
        # the training forward goes through DDP (gradient all-reduce); methods, scoring and
        # evaluation use the model itself
        self.ddp = DistributedDataParallel(
            self.model, device_ids=[self.device] if self.device.type == "cuda" else None) \
            if self.dist.enabled else None
        self.optimizer = build_optimizer(self.model, cfg.optimizer, cfg.lr, cfg.momentum,
                                         cfg.nesterov, cfg.weight_decay)
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule, cfg.epochs,
                                         cfg.step_size, cfg.milestones, cfg.gamma)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.reducer, self.sampler, self.selector = run.pieces
        self.packer = Packer(cfg.batch_size, self.selector.packing)
        self.record = RecordLog(len(self.train_data), self.dist) if self.dist.enabled \
            else SampleRecord(len(self.train_data))
        # looked up at each call, so that a test may wrap the forward (_forward_select)
        self.step = SelectionStep(self.selector, self.packer, self.record,
                                  lambda x, y, mode: self._forward_select(x, y, mode))
        self.aug_generator = torch.Generator().manual_seed(cfg.seed + 1 + 1000 * self.dist.rank)
        self.method_generator = torch.Generator().manual_seed(cfg.seed + 2)
        self.run_dir = Path(cfg.out_dir) / (cfg.run_name or cfg.default_run_name())
        self.ctx = self._context()
        self.timer = PhaseTimer(self.device)
        self.energy_meter = make_energy_meter(cfg.energy, self.device)
        self.history: list[dict[str, Any]] = []
        self.result: dict[str, Any] = {}
        self.prep_time = 0.0
        self.prep_energy_j = 0.0
        self._stats: EpochStats | None = None
        self._stop_signal: int | None = None
        self._stop_requested = False
        self._resume_state: dict[str, Any] | None = None
        self.tracker = None
        self._sync_info: dict[str, float] = {}  # under DDP: the epoch's record exchange
        self._bench: dict[str, Any] | None = None  # the benchmark label of a resumed run
        self._lock: FolderLock | None = None
        self._selected = 0
        self._environment = environment(self.device)  # once per run: it asks git

    def _context(self) -> TrainContext:
        """The contract the methods see (the trainer itself stays hidden)."""
        cfg = self.config
        return TrainContext(
            epoch=0, epochs=cfg.epochs, record=self.record, batch_size=cfg.batch_size,
            seed=cfg.seed, generator=self.method_generator, num_classes=self.num_classes,
            labels=self.labels, score=self.score, selection_pass=self.selection_pass,
            model=self.model, device=self.device, run_dir=self.run_dir,
            log=lambda line: self.log(line), classes=self.classes,
            eval_batch_size=cfg.eval_batch_size, progress=bool(cfg.progress), config=cfg,
            warmup=self._warmup)

    def _warmup(self, model: nn.Module, epochs: int) -> tuple[nn.Module, dict[str, Any]]:
        from thrifty.engine.warmup import warm_up

        return warm_up(self.config, model, self.train_data, self.test_data, epochs,
                       device=self.device, progress=bool(self.config.progress) and
                       self.dist.is_main, log=self.log)

    # ------------------------------------------------------------------ public API
    @classmethod
    def resume(cls, path: str | Path, **kwargs) -> Trainer:
        """A trainer that continues the run saved at ``path`` (run folder or checkpoint).

        The run's folder is its identity: the resumed run writes only into the folder the
        checkpoint is in (a run that got a ``-1`` suffix, or a copied folder, continues
        there, never in another run's folder). A finished run is not resumed.
        """
        folder = Path(path if Path(path).is_dir() else Path(path).parent)
        state = load_checkpoint(path)
        status, bench = None, None
        with contextlib.suppress(OSError, ValueError, AttributeError):
            previous = json.loads((folder / "result.json").read_text())
            status, bench = previous.get("status"), previous.get("bench")
        if status == "finished":
            raise ValueError(f"{folder} holds a finished run: nothing to resume (its result "
                             "stays as it is); start a new run instead")
        cfg = RunConfig(**state["config"])
        cfg.out_dir, cfg.run_name = str(folder.parent), folder.name
        trainer = cls(cfg, **kwargs)
        trainer.run_dir = folder
        trainer._resume_state = state
        trainer._bench = bench  # a benchmark's run continued by hand keeps its label
        return trainer

    def request_stop(self) -> None:
        """Ask the loop to save a checkpoint and stop after the current batch."""
        self._stop_requested = True

    def fit(self) -> dict[str, Any]:
        """Train for ``config.epochs`` epochs (or what is left of them); return the result.
        The run folder is locked meanwhile: a second process on it is refused."""
        handlers = self._install_signal_handlers()
        try:
            return self._fit()
        finally:
            if self._lock is not None:
                self._lock.release()
            for sig, old in handlers.items():
                signal.signal(sig, old)

    # ------------------------------------------------------------------ forward passes
    def _autocast_at(self, dtype: torch.dtype | None):
        return contextlib.nullcontext() if dtype is None \
            else torch.autocast(self.device.type, dtype=dtype)

    def _autocast(self):
        return self._autocast_at(self.amp_dtype)

    def _selection_autocast(self):
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
                    stats.samples_forwarded += forwards * len(b.idx)
                    stats.time["selection_forward"] += time.perf_counter() - t0
        finally:
            self.model.train(was_training)
        return out

    def score(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Selection forward over training samples ``indices`` (no augmentation, eval mode):
        returns CPU ``(losses, logits)``, stores them in the record, counts them as
        selection work."""

        def forward(b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
            lo, lg = self._forward_select(b.x, b.y)
            self.record.update(b.idx, lo, argmax_correct(lg, b.y), self.ctx.epoch,
                               trained=False, kind="score")
            return lo.cpu(), lg.float().cpu()

        mine = shard(indices, self.dist)  # under DDP each rank scores its share
        parts = self.selection_pass(mine, forward, count=True) if not self.dist.enabled \
            else self._pass_shard(mine, forward)
        losses = torch.cat([p[0] for p in parts]) if parts else torch.empty(0)
        logits = torch.cat([p[1] for p in parts]) if parts \
            else torch.empty(0, self.num_classes)
        return gather_in_order(losses, self.dist), gather_in_order(logits, self.dist)

    def _pass_shard(self, indices: torch.Tensor, fn: Callable[[Batch], Any]) -> list[Any]:
        """A counted pass over this rank's share (every rank counts its own)."""
        dist_, self.dist = self.dist, Dist()  # count locally; summed at the epoch's end
        try:
            return self.selection_pass(indices, fn)
        finally:
            self.dist = dist_

    def _train_step(self, batch: Batch, stats: EpochStats) -> None:
        with self.timer(stats, "train_step"):
            with self._autocast():
                logits = (self.ddp or self.model)(batch.x)
            targets = self.sampler.train_targets(batch.idx, batch.y) \
                if self.sampler.relabels else None
            losses = F.cross_entropy(logits.float(), batch.y if targets is None
                                     else targets.to(logits.device), reduction="none",
                                     label_smoothing=self.config.label_smoothing)
            weights = self.sampler.loss_weights(batch.idx) if self.sampler.weighted else None
            loss = (losses * weights.to(losses.device)).mean() if weights is not None \
                else losses.mean()
            value = loss.item()
            if not math.isfinite(value):
                ckpt = self.run_dir / "checkpoint.pt"
                where = f"Last good checkpoint: {ckpt}" if ckpt.is_file() else \
                    "No checkpoint was saved yet (it came before the first epoch ended)."
                raise NonFiniteLossError(
                    f"training loss is {value} at epoch {stats.epoch + 1}, step "
                    f"{stats.optimizer_steps + 1}. Lower the learning rate (--lr), check the "
                    f"inputs for NaN, or use --amp off. {where}")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.record.update(batch.idx, losses, logits.argmax(1) == batch.y, stats.epoch,
                               trained=True)
            n = len(batch.idx)
            stats.samples_trained += n
            stats.optimizer_steps += 1
            stats._loss_sum += value * n

    def _process_batch(self, batch: Batch, stats: EpochStats) -> None:
        stats.samples_loaded += len(batch.idx)
        if self.selector.identity:
            self._train_step(batch, stats)
            return
        done = self.step(batch, self.ctx, phase=lambda name: self.timer(stats, name))
        stats.samples_forwarded += done.forwarded
        self._selected += done.selected
        for tb in done.ready:
            self._train_step(tb, stats)

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def _dataset_losses(self, data: Any) -> tuple[torch.Tensor, torch.Tensor]:
        losses, correct = [], []
        data = eval_view(data)  # no random crops for an on-disk training set
        mine = shard(torch.arange(len(data)), self.dist)  # under DDP: each rank a share
        for b in iterate_batches(data, mine.tolist(), self.config.eval_batch_size,
                                 device=self.device, num_workers=self.config.num_workers):
            lo, lg = self._forward_eval(b.x, b.y)
            losses.append(lo.cpu())
            correct.append((lg.argmax(1) == b.y).cpu())
        lo = torch.cat(losses) if losses else torch.empty(0)
        co = torch.cat(correct) if correct else torch.empty(0, dtype=torch.bool)
        return gather_in_order(lo, self.dist), gather_in_order(co, self.dist)

    def loss_statistics(self, split: str = "test") -> dict[str, float]:
        """Seed 004's loss statistics of the model as it is now over one split: mean, worst,
        best, the 0.5/0.9/0.99 quantiles and accuracy (what ``train_stats_every`` records for
        the training set). Under DDP every rank computes a share and all get the whole.

        Args:
            split: ``"test"`` (default) or ``"train"`` (the training labels the run trains
                on, noisy ones included; no augmentation).
        """
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        losses, correct = self._dataset_losses(self.train_data if split == "train"
                                               else self.test_data)
        return loss_statistics(losses, correct)

    def _evaluate(self, stats: EpochStats, final: bool) -> None:
        with self.timer(stats, "evaluation"):
            losses, correct = self._dataset_losses(self.test_data)
            bad = int((~torch.isfinite(losses)).sum())
            if bad:
                raise NonFiniteLossError(
                    f"{bad} of {len(losses)} test samples give a NaN or infinite loss at epoch "
                    f"{stats.epoch + 1}: check the test inputs for NaN or infinite values "
                    "(or a diverged model: lower --lr)")
            stats.test_loss = loss_statistics(losses, correct)
            stats.test_accuracy = stats.test_loss["accuracy"]
            k = self.config.train_stats_every
            if (final and k >= 0) or (k > 0 and (stats.epoch + 1) % k == 0):
                tr_losses, tr_correct = self._dataset_losses(self.train_data)
                stats.train_loss_stats = loss_statistics(tr_losses, tr_correct)
                stats.loss_ratios = loss_ratios(stats.test_loss, stats.train_loss_stats)

    # ------------------------------------------------------------------ checkpoints
    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum, frame):
            if self._stop_signal is not None:  # second signal: stop now
                raise KeyboardInterrupt
            self._stop_signal = signum
            self.log(f"\n{signal.Signals(signum).name} received: saving a checkpoint after the "
                     "current batch (send again to abort without saving)")

        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.getsignal(sig)
            signal.signal(sig, handler)
        return old

    def _components(self) -> dict[str, tuple[Callable[[], Any], Callable[[Any], None]]]:
        """The checkpoint's parts: ``{key: (save, restore)}``, restored in this order (the
        global RNG last). One table serves :meth:`_state` and :meth:`_restore`."""

        def attr(name: str, cast: Callable[[Any], Any] = lambda v: v):
            return (lambda: getattr(self, name),
                    lambda value: setattr(self, name, cast(value)))

        parts: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {
            name: (obj.state_dict, obj.load_state_dict) for name, obj in (
                ("model", self.model), ("optimizer", self.optimizer),
                ("scheduler", self.scheduler), ("scaler", self.scaler),
                ("record", self.record), ("reducer", self.reducer),
                ("sampler", self.sampler), ("selector", self.selector))}
        parts["packer"] = (self.packer.state_dict,
                           lambda state: self.packer.load_state_dict(state, self.device))
        parts["aug_generator"] = (self.aug_generator.get_state, self.aug_generator.set_state)
        parts["method_generator"] = (self.method_generator.get_state,
                                     self.method_generator.set_state)
        parts["history"] = attr("history", list)
        parts["prep_time"] = attr("prep_time")
        parts["prep_energy_j"] = attr("prep_energy_j")
        parts["selected"] = attr("_selected")  # chosen so far this epoch (mid-epoch resume)
        parts["rng"] = (rng_state, set_rng_state)
        return parts

    # absent from checkpoints written before they existed
    _OPTIONAL_COMPONENTS = ("prep_energy_j", "selected")
    # what differs between the ranks of a DDP run (each rank's packer holds its own pending
    # samples, its selector its own loss history, its generators their own draws)
    _PER_RANK = ("packer", "selector", "aug_generator", "method_generator", "rng", "selected")

    def _state(self, epoch: int, position: int | None, order: torch.Tensor | None,
               stats: EpochStats | None) -> dict[str, Any]:
        parts = {key: save() for key, (save, _) in self._components().items()}
        state = {
            "format": 1, "config": self.config.to_dict(), "epoch": epoch,
            "position": position, "order": order, "world_size": self.dist.world_size,
            "stats": None if stats is None else {**stats.to_dict(), "_loss_sum": stats._loss_sum},
            **parts,
        }
        if self.dist.enabled:  # a collective: every rank saves at the same point
            mine = {k: parts[k] for k in self._PER_RANK}
            gathered: list[Any] = [None] * self.dist.world_size
            torch.distributed.all_gather_object(gathered, mine)
            state["per_rank"] = gathered
        return state

    def _save(self, epoch: int, position: int | None = None, order: torch.Tensor | None = None,
              stats: EpochStats | None = None) -> Path:
        path = self.run_dir / "checkpoint.pt"
        state = self._state(epoch, position, order, stats)
        if self.dist.is_main:  # rank 0 writes
            save_checkpoint(path, state)
        return path

    def _restore(self, state: dict[str, Any]) -> tuple[int, int | None, Any, EpochStats | None]:
        saved = state.get("world_size", 1)
        if saved != self.dist.world_size:
            raise ValueError(f"the checkpoint was written by a run of {saved} process(es), this "
                             f"one has {self.dist.world_size}: resume it with the same world "
                             f"size (torchrun --nproc_per_node={saved} ...)")
        if self.dist.enabled:
            state = {**state, **state["per_rank"][self.dist.rank]}
        for key, (_, restore) in self._components().items():
            if key in state or key not in self._OPTIONAL_COMPONENTS:
                restore(state[key])
        stats = None
        if state["stats"] is not None:
            s = dict(state["stats"])
            s.pop("train_time", None)
            loss_sum = s.pop("_loss_sum")
            stats = EpochStats(**s)
            stats._loss_sum = loss_sum
        return state["epoch"], state["position"], state["order"], stats

    # ------------------------------------------------------------------ the loop
    def _prepare_run_dir(self) -> None:
        if self._resume_state is not None:
            return
        if self.dist.is_main:
            base = self.run_dir
            i = 1
            while (self.run_dir / "result.json").exists():  # never overwrite a finished result
                self.run_dir = base.with_name(f"{base.name}-{i}")
                i += 1
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = Path(broadcast_object(str(self.run_dir), self.dist))  # rank 0's

    def _write_result(self, status: str, error: str | None = None) -> dict[str, Any]:
        epochs = self.history
        final: dict[str, Any] = {}
        if epochs:
            last = epochs[-1]
            final = {
                "test_accuracy": last["test_accuracy"],
                "train_time": sum(e["train_time"] for e in epochs),
                "eval_time": sum(e["time"]["evaluation"] for e in epochs),
                "prep_time": self.prep_time,
                "samples_loaded": sum(e["samples_loaded"] for e in epochs),
                "samples_forwarded": sum(e["samples_forwarded"] for e in epochs),
                "samples_trained": sum(e["samples_trained"] for e in epochs),
                "optimizer_steps": sum(e["optimizer_steps"] for e in epochs),
                "energy_j": sum(e.get("energy_j", 0.0) for e in epochs),
                "prep_energy_j": self.prep_energy_j,
                "test_loss": last["test_loss"], "train_loss_stats": last["train_loss_stats"],
                "loss_ratios": last["loss_ratios"],
            }
        self.result = {
            "format": RESULT_FORMAT, "status": status, "error": error,
            "run_dir": str(self.run_dir), "config": self.config.to_dict(),
            "environment": self._environment,
            "dataset": {"name": getattr(self.train_data, "name", type(self.train_data).__name__),
                        "class": type(self.train_data).__name__,
                        "source": self._sources["dataset"],
                        "train_size": len(self.train_data), "test_size": len(self.test_data),
                        "pool_size": len(self.sampler.pool), "num_classes": self.num_classes,
                        "label_noise": {"share": self.config.label_noise,
                                        "relabelled": len(self.noisy)}},
            "model": {"class": type(self.model).__name__, "source": self._sources["model"],
                      "parameters": sum(p.numel() for p in self.model.parameters())},
            "methods": {"reducer": self.reducer.name, "sampler": self.sampler.name,
                        "selector": self.selector.name, "source": self._sources["methods"],
                        "objects": {place: method_record(obj) for place, obj in (
                            ("reducer", self.reducer), ("sampler", self.sampler),
                            ("selector", self.selector))},
                        "reducer_info": dict(self.reducer.info_ or {})},
            "energy": None if self.energy_meter is None else {
                "source": self.energy_meter.source, "measured": self.energy_meter.measured,
                "description": self.energy_meter.describe()},
            "epochs": epochs, "final": final,
            "checkpoint": str(self.run_dir / "checkpoint.pt"),
            "world_size": self.dist.world_size,
        }
        if self._bench is not None:
            self.result["bench"] = self._bench
        if self.dist.is_main:
            write_json(self.run_dir / "result.json", self.result)
        return self.result

    def _fit(self) -> dict[str, Any]:
        cfg = self.config
        self._prepare_run_dir()
        if self.dist.is_main:
            self._lock = FolderLock(self.run_dir, what="run folder").acquire()
        self.ctx.run_dir = self.run_dir if self.dist.is_main else None
        if cfg.track != "none" and self.dist.is_main:
            from thrifty.engine.tracking import Tracker

            self.tracker = Tracker(cfg.track, self.run_dir, cfg.to_dict())
        self.ctx.epoch = 0
        start_epoch, position, order, stats = 0, None, None, None
        pool = self._prepare_pool()
        self.sampler.setup(pool, self.ctx)
        self.selector.setup(self.ctx)
        if self._resume_state is not None:
            start_epoch, position, order, stats = self._restore(self._resume_state)
            self._resume_state = None
            self.log(f"resuming {self.run_dir} at epoch {start_epoch + 1}"
                     + (f", batch {position}" if position else ""))
        elif self.reducer.name != "full":
            self.log(f"{self.reducer.name}: pool of {len(pool)} of {len(self.labels)} samples "
                     f"for the sampler ({self.prep_time:.2f}s of preparation)")
        self.model.train()
        try:
            for epoch in range(start_epoch, cfg.epochs):
                self._run_epoch(epoch, position, order, stats)
                position, order, stats = None, None, None
        except TrainingInterrupted:
            self._write_result("interrupted")
            raise
        except (KeyboardInterrupt, SystemExit):
            # stopped from outside (a second Ctrl-C, a job scheduler's preemption): the last
            # epoch's checkpoint is where a resume starts
            with contextlib.suppress(Exception):
                self._write_result("interrupted", "stopped before the epoch ended; resume "
                                   "continues from the last epoch's checkpoint")
            raise
        except BaseException as exc:
            with contextlib.suppress(Exception):
                self._write_result("failed", f"{type(exc).__name__}: {exc}"
                                   + (f" (rank {self.dist.rank} of {self.dist.world_size})"
                                      if self.dist.enabled else ""))
            raise
        finally:
            if self.tracker is not None:
                self.tracker.close()
        result = self._write_result("finished")
        self._save(cfg.epochs)
        return result

    def _prepare_pool(self) -> torch.Tensor:
        """The reducer's kept indices: fitted now (timed as preparation, saved as
        ``subset.pt``), or restored from the checkpoint being resumed."""
        if self._resume_state is not None:
            self.reducer.load_state_dict(self._resume_state["reducer"])
            return self.reducer.indices_
        t0 = time.perf_counter()
        e0 = self.energy_meter.read() if self.energy_meter else 0.0
        if self.dist.is_main:  # under DDP rank 0 prepares, every rank gets its result
            self.reducer.fit(self.labels, seed=self.config.seed, dataset=self.train_data,
                             ctx=self.ctx)
        if self.dist.enabled:
            state = broadcast_object({"reducer": self.reducer.state_dict(),
                                      "info": dict(self.reducer.info_ or {})}
                                     if self.dist.is_main else None, self.dist)
            self.reducer.load_state_dict(state["reducer"])
            self.reducer.info_ = state["info"]
        self.prep_time = time.perf_counter() - t0
        if self.energy_meter:
            self.prep_energy_j = self.energy_meter.read() - e0
        pool = self.reducer.indices_
        if self.reducer.name != "full" and self.dist.is_main:  # the kept indices travel
            save_checkpoint(self.run_dir / "subset.pt",
                            {"reducer": self.reducer.name, "seed": self.config.seed,
                             "indices": pool, "train_size": len(self.labels)})
        return pool

    def _run_epoch(self, epoch: int, position: int | None, order: torch.Tensor | None,
                   stats: EpochStats | None) -> None:
        """One epoch: the sampler's order, the batches, then the epoch's bookkeeping.
        ``position``/``order``/``stats`` continue an epoch interrupted mid-way."""
        self.ctx.epoch = epoch
        if stats is None:  # a new epoch (a resumed one keeps its stats and choices so far)
            stats, self._selected = EpochStats(epoch), 0  # samples the selector chose
        self._stats = stats
        if self.dist.enabled:
            self.record.begin()  # the state the epoch's record exchange starts from
        # one energy window for the epoch, from before the sampler (which may run a
        # selection forward pass: loss-adaptive, ASSIST epochwise) to the last step
        energy0 = self.energy_meter.read() if self.energy_meter else 0.0
        if order is None:
            order, position = self._epoch_order(epoch, stats), 0
        self._train_batches(epoch, order, position or 0, stats, energy0)
        if self.energy_meter:
            stats.energy_j += self.energy_meter.read() - energy0
        self._sync_epoch(stats)
        self._check_trained(epoch, stats)
        self._end_epoch(epoch, stats)
        if self.dist.enabled and epoch + 1 < self.config.epochs and agree(
                self._stop_signal is not None or self._stop_requested, self.dist):
            # every rank stops here together (a collective needs them all), with a checkpoint
            raise TrainingInterrupted(self._stop_signal, self._save(epoch + 1))

    def _epoch_order(self, epoch: int, stats: EpochStats) -> torch.Tensor:
        """Ask the sampler for this epoch's indices (its selection logic timed apart from
        any scoring pass it runs); refuse an empty epoch."""
        self.sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        fwd0 = stats.time["selection_forward"]
        self.sampler.begin_epoch(self.ctx)
        order = torch.as_tensor(list(iter(self.sampler)), dtype=torch.long)
        stats.time["selection_logic"] += (time.perf_counter() - t0
                                          - (stats.time["selection_forward"] - fwd0))
        if len(order) == 0:
            raise SelectionError(f"sampler {self.sampler.name!r} selected no samples for "
                                 f"epoch {epoch + 1}; check its ratio")
        return order

    def _forward_batch_size(self) -> int:
        """Loaded ("raw") batches may be larger than training batches when a selector
        packs (``--forward-batch-size``)."""
        cfg = self.config
        return cfg.batch_size if self.selector.identity else (cfg.forward_batch_size
                                                              or cfg.batch_size)

    def _loaded_batches(self, order: torch.Tensor, position: int) -> Iterator[Batch]:
        bs = self._forward_batch_size()
        mine = shard(order, self.dist)  # under DDP: this rank's share of the epoch
        return iterate_batches(self.train_data, mine[position * bs:].tolist(), bs,
                               train=True, generator=self.aug_generator, device=self.device,
                               num_workers=self.config.num_workers)

    def _train_batches(self, epoch: int, order: torch.Tensor, position: int,
                       stats: EpochStats, energy0: float) -> None:
        """Every loaded batch from ``position`` on, then the packer's end of epoch; a stop
        request saves a checkpoint after the current batch and raises
        :class:`TrainingInterrupted`."""
        cfg = self.config
        total = math.ceil(len(shard(order, self.dist)) / self._forward_batch_size())
        bar = tqdm(total=total, initial=position, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=not cfg.progress, leave=False, dynamic_ncols=True)
        batches = self._loaded_batches(order, position)
        self.model.train()
        # under DDP ranks may take different numbers of steps: join lets the ones that ran
        # out shadow the others' all-reduces (gradients averaged over the ranks stepping)
        joined = self.ddp.join(divide_by_initial_world_size=False) if self.ddp is not None \
            else contextlib.nullcontext()
        with bar, joined:
            while True:
                t0 = time.perf_counter()
                batch = next(batches, None)
                stats.time["data"] += time.perf_counter() - t0
                if batch is None:
                    break
                self._process_batch(batch, stats)
                position += 1
                bar.update(1)
                if self.on_batch_end is not None:
                    self.on_batch_end(self)
                if (self._stop_signal is not None or self._stop_requested) \
                        and not self.dist.enabled:  # under DDP: at the epoch's end
                    if self.energy_meter:
                        stats.energy_j += self.energy_meter.read() - energy0
                    path = self._save(epoch, position, order, stats)
                    raise TrainingInterrupted(self._stop_signal, path)
            for tb in self.step.end_epoch():
                self._train_step(tb, stats)

    def _sync_epoch(self, stats: EpochStats) -> None:
        """Under DDP: every rank receives the others' record updates of the epoch, and the
        work counts become global (summed; optimizer steps: the synchronised updates)."""
        if not self.dist.enabled:
            return
        t0 = time.perf_counter()
        sent = self.record.exchange()
        self._sync_info = {"record_sync_bytes": float(sent),
                           "record_sync_s": time.perf_counter() - t0}
        counts = {"samples_loaded": stats.samples_loaded,
                  "samples_forwarded": stats.samples_forwarded,
                  "samples_trained": stats.samples_trained,
                  "optimizer_steps": stats.optimizer_steps,
                  "overflow_discarded": self.packer.discarded,
                  "end_of_epoch_dropped": self.packer.end_dropped,
                  "loss_sum_micro": round(stats._loss_sum * 1e6),
                  "selected": self._selected}
        total = sum_counts(counts, self.dist, maxed=("optimizer_steps",))
        # ranks that ran out of batches took fewer optimizer steps: all take the state of
        # the rank that stepped most (DDP's join kept its weights)
        steps = gather_cat(torch.tensor([stats.optimizer_steps, -self.dist.rank]), self.dist)
        src = -int(max(steps, key=lambda t: (int(t[0]), int(t[1])))[1])
        if any(int(t[0]) != int(steps[0][0]) for t in steps):
            state = broadcast_object(to_device({"optimizer": self.optimizer.state_dict(),
                                                "scaler": self.scaler.state_dict()}, "cpu"),
                                     self.dist, src=src)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scaler.load_state_dict(state["scaler"])
        stats.samples_loaded = total["samples_loaded"]
        stats.samples_forwarded = total["samples_forwarded"]
        stats.samples_trained = total["samples_trained"]
        stats.optimizer_steps = total["optimizer_steps"]
        stats._loss_sum = total["loss_sum_micro"] / 1e6
        self.packer.discarded = total["overflow_discarded"]
        self.packer.end_dropped = total["end_of_epoch_dropped"]
        self._selected = total["selected"]

    def _check_trained(self, epoch: int, stats: EpochStats) -> None:
        if stats.samples_trained == 0 and self._selected == 0 and not self.selector.identity \
                and not self.selector.allow_empty_epoch:
            raise SelectionError(
                f"selector {self.selector.name!r} chose no sample in epoch {epoch + 1} "
                f"({stats.samples_loaded} loaded): training would silently do nothing. "
                "Loosen its threshold or ratio.")

    def _end_epoch(self, epoch: int, stats: EpochStats) -> None:
        """Step the schedule, collect the methods' diagnostics, evaluate, record, log and
        write the result (and the periodic checkpoint)."""
        cfg = self.config
        stats.lr = self.optimizer.param_groups[0]["lr"]
        with warnings.catch_warnings():
            # an epoch without optimizer steps (a starved selector) still advances the
            # per-epoch schedule; PyTorch's order warning does not apply to that
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            self.scheduler.step()
        stats.train_loss = stats._loss_sum / max(stats.samples_trained, 1)
        stats.method = {**self.sampler.epoch_diagnostics(), **self.selector.epoch_diagnostics(),
                        "overflow_discarded": self.packer.discarded,
                        "end_of_epoch_dropped": self.packer.end_dropped, **self._sync_info}
        self.packer.discarded = self.packer.end_dropped = 0
        self._evaluate(stats, final=epoch == cfg.epochs - 1)
        self.history.append(stats.to_dict())
        self._stats = None
        self.log(self._summary(stats))
        if self.tracker is not None:
            self.tracker.log_epoch(self.history[-1])
        self._write_result("running")
        if cfg.checkpoint_every and (epoch + 1) % cfg.checkpoint_every == 0:
            self._save(epoch + 1)

    def _summary(self, s: EpochStats) -> str:
        t = s.time
        return (f"epoch {s.epoch + 1:>3}/{self.config.epochs}  acc {100 * s.test_accuracy:6.2f}%"
                f"  loss {s.train_loss:.4f}  lr {s.lr:.4g}  loaded {s.samples_loaded}"
                f"  fwd {s.samples_forwarded}  trained {s.samples_trained}"
                f"  steps {s.optimizer_steps}  train {s.train_time:.1f}s"
                f" (data {t['data']:.1f} sel-fwd {t['selection_forward']:.1f}"
                f" step {t['train_step']:.1f} sel {t['selection_logic']:.2f})"
                f"  eval {t['evaluation']:.1f}s")
