"""The engine: one training loop around the run-time core (:class:`~thrifty.engine.core.RunCore`)
that counts every unit of work.

Per epoch it records samples loaded, samples forwarded without gradient (selection),
samples trained on, optimizer steps, wall time by phase, the learning rate, test accuracy
and the loss statistics of seed 004. Each run writes ``result.json`` (atomically, after
every epoch; see :mod:`thrifty.engine.results`) and ``checkpoint.pt`` into
``out_dir/run_name``. SIGINT/SIGTERM save a checkpoint mid-epoch and stop;
:meth:`Trainer.resume` continues so that the final weights equal those of an uninterrupted
run. The protocol (epochs, selection, loss feedback, the record, DDP exchange, state) is
the core's; this module adds the model, optimizer, data, evaluation and files.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
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

from thrifty.data import Batch, iterate_batches
from thrifty.engine.accounting import EpochStats, PhaseTimer
from thrifty.engine.assembly import assemble
from thrifty.engine.checkpoint import (
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    write_json,
)
from thrifty.engine.config import RunConfig
from thrifty.engine.core import RunCore
from thrifty.engine.distributed import (
    Dist,
    agree,
    from_environment,
    sync_optimizer,
)
from thrifty.engine.evaluation import (
    EvaluationStopped,
    NonFiniteLossError,
    dataset_losses,
    evaluate,
    evaluate_again,
)
from thrifty.engine.interfaces import BatchSelector, EpochSampler, Reducer
from thrifty.engine.optim import PLAIN_RATE, build_optimizer, build_scheduler, scaled_lr
from thrifty.engine.passes import NoGradPasses
from thrifty.engine.results import epoch_line, run_result
from thrifty.engine.run_state import prepare_run_dir, restore_run, save_run
from thrifty.engine.runtime import environment, resolve_amp, resolve_device
from thrifty.engine.signals import StopRequests, TrainingInterrupted
from thrifty.engine.snapshot import train_copy
from thrifty.metrics import loss_statistics
from thrifty.metrics.energy import make_energy_meter
from thrifty.metrics.robustness import check_attackable
from thrifty.utils.locks import FolderLock

__all__ = ["NonFiniteLossError", "Trainer", "TrainingInterrupted", "environment",
           "resolve_amp", "resolve_device"]

# Training steps between two checks that the loss is finite (each check is one host copy).
FINITE_CHECK_EVERY = 32


Hook = Callable[["Trainer"], None]


class Trainer(NoGradPasses):
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
        if cfg.attack != "none":  # the extra, and inputs with a gradient: before training
            check_attackable(run.test)
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
        self.reducer, self.sampler, self.selector = (run.pieces.reducer, run.pieces.sampler,
                                                     run.pieces.selector)
        self.aug_generator = torch.Generator().manual_seed(cfg.seed + 1 + 1000 * self.dist.rank)
        self.run_dir = Path(cfg.out_dir) / (cfg.run_name or cfg.default_run_name())
        # the protocol; the selection forward is looked up at each call, so that a test may
        # wrap it (_forward_select)
        self.core = RunCore(
            run.pieces, size=len(self.train_data), labels=self.labels,
            num_classes=self.num_classes, classes=self.classes, epochs=cfg.epochs,
            batch_size=cfg.batch_size, seed=cfg.seed, dist=self.dist,
            forward=lambda x, y, mode: self._forward_select(x, y, mode),
            services=dict(score=self.score, selection_pass=self.selection_pass,
                          model=self.model, device=self.device, run_dir=self.run_dir,
                          log=lambda line: self.log(line), eval_batch_size=cfg.eval_batch_size,
                          progress=bool(cfg.progress), config=cfg, warmup=self._warmup),
            applies_lr_factor=True)
        self.record, self.packer, self.ctx = self.core.record, self.core.packer, self.core.ctx
        self.timer = PhaseTimer(self.device)
        self.energy_meter = make_energy_meter(cfg.energy, self.device)
        self.history: list[dict[str, Any]] = []
        self.result: dict[str, Any] = {}
        self.prep_time = 0.0
        self.prep_energy_j = 0.0
        self._stats: EpochStats | None = None
        self._stop_signal: int | None = None
        self.stops = StopRequests(self._first_stop)  # SIGINT/SIGTERM while fit() runs
        self._stop_requested = False
        self._resume_state: dict[str, Any] | None = None
        self.tracker: Any = None
        self._bench: dict[str, Any] | None = None  # the benchmark label of a resumed run
        self._lock: FolderLock | None = None
        self._environment = environment(self.device)  # once per run: it asks git

    def _warmup(self, model: nn.Module, epochs: int) -> tuple[nn.Module, dict[str, Any]]:
        """``ctx.warmup``: a warm-up copy of ``model`` trained with this run's recipe."""
        return train_copy(type(self), self.config, model, self.train_data, self.test_data,
                          epochs, device=self.device, log=self.log,
                          progress=bool(self.config.progress) and self.dist.is_main)

    # ------------------------------------------------------------------ public API
    @classmethod
    def resume(cls, path: str | Path, **kwargs: Any) -> Trainer:
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
        trainer.run_dir = trainer.ctx.run_dir = folder
        trainer._resume_state = state
        trainer._bench = bench  # a benchmark's run continued by hand keeps its label
        return trainer

    def stopping(self) -> bool:
        """Whether a stop was requested and a pass may be cut short for it (a single
        process; under DDP the ranks stop together at the end of an epoch)."""
        return (self._stop_signal is not None or self._stop_requested) and \
            not self.dist.enabled

    def request_stop(self) -> None:
        """Ask the loop to save a checkpoint and stop after the current batch."""
        self._stop_requested = True

    def fit(self) -> dict[str, Any]:
        """Train for ``config.epochs`` epochs (or what is left of them); return the result.
        The run folder is locked meanwhile: a second process on it is refused."""

        with self.stops.installed():
            try:
                return self._fit()
            finally:
                if self._lock is not None:
                    self._lock.release()

    def _first_stop(self, signum: int) -> None:
        self._stop_signal = signum
        self.log(f"\n{signal.Signals(signum).name} received: saving a checkpoint after the "
                 "current batch (send again to abort without saving; a checkpoint being "
                 "written is finished first)")

    def _train_step(self, batch: Batch, stats: EpochStats) -> None:
        with self.timer(stats, "train_step"):
            with self._autocast():
                logits = (self.ddp or self.model)(batch.x)
            targets = self.core.train_targets(batch.idx, batch.y)
            losses = F.cross_entropy(logits.float(), batch.y if targets is None
                                     else targets.to(logits.device), reduction="none",
                                     label_smoothing=self.config.label_smoothing)
            loss = self.core.train_loss(losses, batch.idx,
                                        correct=logits.detach().argmax(1) == batch.y)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            factor = self.sampler.lr_factor  # KAKURENBO's, around this step only
            with scaled_lr(self.optimizer, factor) if factor != 1.0 else PLAIN_RATE:
                self.scaler.step(self.optimizer)
            self.scaler.update()
        if self.core.epoch_counts["steps"] % FINITE_CHECK_EVERY == 0:
            self._check_finite(stats)

    def _check_finite(self, stats: EpochStats) -> None:
        """Refuse a NaN or infinite training loss (checked every
        :data:`FINITE_CHECK_EVERY` steps and at the epoch's end: one host copy each)."""
        value = self.core.loss_sum()
        if math.isfinite(value):
            return
        steps = self.core.epoch_counts["steps"]
        ckpt = self.run_dir / "checkpoint.pt"
        where = f"Last good checkpoint: {ckpt}" if ckpt.is_file() else \
            "No checkpoint was saved yet (it came before the first epoch ended)."
        raise NonFiniteLossError(
            f"training loss is {value} at epoch {stats.epoch + 1}, within its first {steps} "
            "steps. Lower the learning rate (--lr), check the inputs for NaN, or use "
            f"--amp off. {where}")

    def _process_batch(self, batch: Batch, stats: EpochStats) -> None:
        for tb in self.core.select(batch, phase=lambda name: self.timer(stats, name)):
            self._train_step(tb, stats)
        self._fill_counts(stats)

    def _fill_counts(self, stats: EpochStats) -> None:
        c = self.core.epoch_counts
        stats.samples_loaded, stats.samples_forwarded = c["loaded"], c["forwarded"]
        stats.samples_trained, stats.optimizer_steps = c["trained"], c["steps"]

    # ------------------------------------------------------------------ evaluation
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
        losses, correct = dataset_losses(self, self.train_data if split == "train"
                                         else self.test_data)
        return loss_statistics(losses, correct)

    # ------------------------------------------------------------------ checkpoints
    def _save(self, epoch: int, position: int | None = None, order: torch.Tensor | None = None,
              stats: EpochStats | None = None) -> Path:
        return save_run(self, epoch, position, order, stats)

    # ------------------------------------------------------------------ the loop
    def _write_result(self, status: str, error: str | None = None) -> dict[str, Any]:
        self.result = run_result(self, status, error)
        if self.dist.is_main:
            write_json(self.run_dir / "result.json", self.result)
        return self.result

    def _fit(self) -> dict[str, Any]:
        cfg = self.config
        prepare_run_dir(self)
        if self.dist.is_main:
            self._lock = FolderLock(self.run_dir, what="run folder").acquire()
        self.ctx.run_dir = self.run_dir if self.dist.is_main else None
        if cfg.track != "none" and self.dist.is_main:
            from thrifty.engine.tracking import Tracker

            self.tracker = Tracker(cfg.track, self.run_dir, cfg.to_dict())
        self.ctx.epoch = 0
        start_epoch: int = 0
        position: int | None = None
        order: torch.Tensor | None = None
        stats: EpochStats | None = None
        pool = self._prepare_pool()
        resumed = self._resume_state is not None
        if self._resume_state is not None:
            start_epoch, position, order, stats = restore_run(self, self._resume_state)
            self._resume_state = None
            self.log(f"resuming {self.run_dir} at epoch {start_epoch + 1}"
                     + (f", batch {position}" if position else ""))
        elif self.reducer.name != "full":
            self.log(f"{self.reducer.name}: pool of {len(pool)} of {len(self.labels)} samples "
                     f"for the sampler ({self.prep_time:.2f}s of preparation)")
        self.model.train()
        try:
            if resumed:  # an epoch whose evaluation a stop cut short is evaluated again
                evaluate_again(self)
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
        ``subset.pt``), or restored from the checkpoint being resumed; the sampler and the
        selector set up (the core's :meth:`~thrifty.engine.core.RunCore.prepare`)."""
        if self._resume_state is not None:
            core_state = self._resume_state.get("core")
            return self.core.prepare(reducer_state=core_state["reducer"] if core_state
                                     else self._resume_state["reducer"])
        t0 = time.perf_counter()
        e0 = self.energy_meter.read() if self.energy_meter else 0.0
        pool = self.core.prepare(self.train_data)
        self.prep_time = time.perf_counter() - t0
        if self.energy_meter:
            self.prep_energy_j = self.energy_meter.read() - e0
        if self.reducer.name != "full" and self.dist.is_main:  # the kept indices travel
            save_checkpoint(self.run_dir / "subset.pt",
                            {"reducer": self.reducer.name, "seed": self.config.seed,
                             "indices": pool, "train_size": len(self.labels)})
        return pool

    def _run_epoch(self, epoch: int, position: int | None, order: torch.Tensor | None,
                   stats: EpochStats | None) -> None:
        """One epoch: the sampler's order, the batches, then the epoch's bookkeeping.
        ``position``/``order``/``stats`` continue an epoch interrupted mid-way."""
        stats = stats or EpochStats(epoch)  # a resumed epoch keeps its stats so far
        self._stats = stats
        # one energy window for the epoch, from before the sampler (which may run a
        # selection forward pass: loss-adaptive, ASSIST epochwise) to the last step
        energy0 = self.energy_meter.read() if self.energy_meter else 0.0
        if order is None:
            t0, fwd0 = time.perf_counter(), stats.time["selection_forward"]
            order, position = self.core.start_epoch(epoch), 0
            stats.time["selection_logic"] += (time.perf_counter() - t0
                                              - (stats.time["selection_forward"] - fwd0))
        self._train_batches(epoch, order, position or 0, stats, energy0)
        if self.energy_meter:
            stats.energy_j += self.energy_meter.read() - energy0
        local_steps = self.core.epoch_counts["steps"]
        self.core.end_epoch()
        # ranks that ran out of batches took fewer optimizer steps: all take the state of
        # the rank that stepped most (DDP's join kept its weights)
        sync_optimizer(self.optimizer, local_steps, self.dist, self.scaler)
        self._fill_counts(stats)
        self._end_epoch(epoch, stats)
        if self.dist.enabled and epoch + 1 < self.config.epochs and agree(
                self._stop_signal is not None or self._stop_requested, self.dist):
            # every rank stops here together (a collective needs them all), with a checkpoint
            raise TrainingInterrupted(self._stop_signal, self._save(epoch + 1))

    def _forward_batch_size(self) -> int:
        """Loaded ("raw") batches may be larger than training batches when a selector
        packs (``--forward-batch-size``)."""
        cfg = self.config
        return cfg.batch_size if self.selector.identity else (cfg.forward_batch_size
                                                              or cfg.batch_size)

    def _batch_plan(self, order: torch.Tensor) -> tuple[int, int, bool]:
        """``(samples, batches, merged)`` of this rank's share of the epoch: a short last
        batch joins the one before it (:meth:`~thrifty.engine.core.RunCore.tail_merges`)."""
        n = len(self.core.share(order))
        return (n, *self.core.batch_plan(n, len(order), self._forward_batch_size()))

    def _loaded_batches(self, order: torch.Tensor, position: int) -> Iterator[Batch]:
        """This rank's share of the epoch from batch ``position`` on."""
        bs = self._forward_batch_size()
        n, count, merged = self._batch_plan(order)
        start = n if position >= count else position * bs
        return iterate_batches(self.train_data, self.core.share(order)[start:].tolist(), bs,
                               train=True, generator=self.aug_generator, device=self.device,
                               num_workers=self.config.num_workers, merge_tail=merged)

    def _train_batches(self, epoch: int, order: torch.Tensor, position: int,
                       stats: EpochStats, energy0: float) -> None:
        """Every loaded batch from ``position`` on, then the packer's end of epoch; a stop
        request saves a checkpoint after the current batch and raises
        :class:`TrainingInterrupted`."""
        cfg = self.config
        bar = tqdm(total=self._batch_plan(order)[1], initial=position,
                   desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not cfg.progress,
                   leave=False, dynamic_ncols=True)
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
                if self.stopping():  # under DDP: at the epoch's end
                    if self.energy_meter:
                        stats.energy_j += self.energy_meter.read() - energy0
                    self.timer.flush()
                    path = self._save(epoch, position, order, stats)
                    raise TrainingInterrupted(self._stop_signal, path)
            for tb in self.core.finish_batches():
                self._train_step(tb, stats)
        self._check_finite(stats)

    def _end_epoch(self, epoch: int, stats: EpochStats) -> None:
        """Step the schedule, take the methods' diagnostics, evaluate, record, log and
        write the result (and the periodic checkpoint)."""
        cfg = self.config
        stats.lr = self.optimizer.param_groups[0]["lr"]
        with warnings.catch_warnings():
            # an epoch without optimizer steps (a starved selector) still advances the
            # per-epoch schedule; PyTorch's order warning does not apply to that
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            self.scheduler.step()
        stats.train_loss = self.core.last_loss_sum / max(stats.samples_trained, 1)
        stats.method = dict(self.core.diagnostics)
        try:
            evaluate(self, stats, final=epoch == cfg.epochs - 1)
        except EvaluationStopped:  # the trained epoch is kept; resume evaluates it again
            self.timer.flush()
            self.history.append(stats.to_dict())
            self._stats = None
            raise TrainingInterrupted(self._stop_signal, self._save(epoch + 1)) from None
        self.timer.flush()
        self.history.append(stats.to_dict())
        self._stats = None
        self.log(epoch_line(stats, self.config.epochs))
        if self.tracker is not None:
            self.tracker.log_epoch(self.history[-1])
        self._write_result("running")
        if cfg.checkpoint_every and (epoch + 1) % cfg.checkpoint_every == 0:
            self._save(epoch + 1)
