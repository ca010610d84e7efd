"""Hugging Face ``transformers.Trainer`` with thrifty's reducers and samplers (optional extra
``thrifty[hf]``).

::

    thrift = Thrift("infobatch", train_set, epochs=3)   # samples: dicts with "labels"
    trainer = ThriftyTrainer(model=model, args=TrainingArguments(..., num_train_epochs=3),
                             thrift=thrift)
    trainer.train()                                      # or train(resume_from_checkpoint=True)

``ThriftyTrainer`` is a ``transformers.Trainer`` that trains on ``thrift.dataset`` (each
sample carries its ``index``) in the order of thrifty's sampler (each pass over the loader
is thrifty's next epoch), and whose loss is the per-sample loss (``thrift.loss_fn``, cross
entropy by default) given back to thrifty (``thrift.loss``: InfoBatch's scores, loss
weights). The model gets the batch without ``labels`` and ``index``. It uses the trainer's
public hooks only (``get_train_dataloader``, ``compute_loss``, ``create_scheduler``,
``train``, a ``TrainerCallback``):

- **Resume**: every checkpoint folder the trainer writes (``save_strategy="epoch"``) holds
  thrifty's state (``thrifty.pt``: record, methods, counts); ``train(resume_from_checkpoint=
  ...)`` loads it and continues with thrifty's next epoch, so a resumed run ends with the
  uninterrupted run's counts and weights. Checkpoints in the middle of an epoch
  (``save_strategy="steps"``) are refused: thrifty resumes at epoch ends.
- **Learning-rate schedule**: the trainer's schedule (its type, warm-up and length) is
  driven by thrifty's progress through the epochs rather than by the optimizer steps it
  counted from the full pool, so it ends fully decayed even when a sampler loads less.

- **Several processes** (``torchrun``): the Thrift joins the trainer's process group at its
  first epoch; every rank makes one choice and loads its own share of it (the trainer's
  loader is not sharded again), in as many batches as every other rank, and the record is
  exchanged at each epoch's end. thrifty's record travels as CPU tensors: on GPUs the group
  must carry them too (``torch.distributed.init_process_group("cpu:gloo,cuda:nccl")``
  before the trainer is made).

What it does not do: in-batch selectors (ADONIS, SB, ASSIST) pack chosen samples into full
batches, which the trainer's fixed step loop cannot take: use :class:`~thrifty.Thrift` in
your own loop (under ``torchrun`` too) for them. Batches are collated by the trainer's
``data_collator`` without dropping columns: every key but the target and the index goes
to the model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import transformers
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint
except ModuleNotFoundError as exc:  # pragma: no cover - exercised without the extra
    raise ModuleNotFoundError("thrifty.integrations.huggingface needs transformers: "
                              "pip install 'thrifty[hf]'") from exc

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from thrifty.data.tensor import index_batches
from thrifty.integrations.own_loop import Thrift, ThriftSampler

STATE_FILE = "thrifty.pt"


class _NextEpochBatches(Sampler[list[int]]):
    """Each pass is thrifty's next epoch (whatever the trainer numbers it: after a resume
    its count of epochs is derived from optimizer steps of the full pool), cut into this
    rank's batches; a short last batch joins the one before it by the rule every rank
    applies alike (:meth:`~thrifty.engine.core.RunCore.tail_merges`), so under DDP every
    rank takes as many steps."""

    def __init__(self, thrift: Thrift, batch_size: int) -> None:
        self.thrift, self.batch_size = thrift, batch_size

    def __iter__(self) -> Iterator[list[int]]:
        t = self.thrift
        if t.core.epoch_done:
            t.start_epoch()
        mine = t._take_order()
        return iter(index_batches(mine, self.batch_size,
                                  planned_batches(t, self.batch_size)[1]))

    def __len__(self) -> int:
        """Batches of the largest epoch (the pool's share): what the trainer plans for."""
        return -(-len(ThriftSampler(self.thrift)) // self.batch_size)


def planned_batches(thrift: Thrift, batch_size: int) -> tuple[int, bool]:
    """``(batches, merged)`` of the current epoch on this rank (see
    :meth:`~thrifty.engine.core.RunCore.batch_plan`)."""
    order = thrift._order
    return thrift.core.batch_plan(thrift.epoch_size, 0 if order is None else len(order),
                                  batch_size)


def progress(thrift: Thrift, batch_size: int) -> float:
    """How far ``thrift`` is through its epochs, 0 to 1: the epochs ended plus the share
    of the current epoch's batches trained."""
    core = thrift.core
    if core.epoch < 0:
        return 0.0
    done = float(core.epoch + 1) if core.epoch_done else float(core.epoch)
    if not core.epoch_done and thrift.epoch_size:
        planned = max(1, planned_batches(thrift, batch_size)[0])
        done += min(1.0, core.epoch_counts["steps"] / planned)
    return min(1.0, done / core.ctx.epochs)


class _ThriftyCallback(transformers.TrainerCallback):
    """Ends thrifty's epoch with the trainer's, stops the trainer after thrifty's last
    epoch, and writes thrifty's state into each checkpoint folder."""

    def __init__(self, thrift: Thrift) -> None:
        self.thrift = thrift

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self.thrift.end_epoch()
        if self.thrift.current_epoch >= self.thrift.ctx.epochs - 1:
            control.should_training_stop = True
        return control

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        thrifty_state = self.thrift.state_dict()  # under DDP a collective: every rank
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            if folder.is_dir():
                torch.save(thrifty_state, folder / STATE_FILE)
        return control


class ThriftyTrainer(transformers.Trainer):
    """A ``transformers.Trainer`` driven by a :class:`~thrifty.Thrift`.

    Args:
        *args: ``transformers.Trainer``'s arguments.
        thrift: the :class:`~thrifty.Thrift` of the run (its ``epochs`` must equal
            ``args.num_train_epochs``). Keyword only.
        **kwargs: ``transformers.Trainer``'s keyword arguments; ``train_dataset`` defaults to
            ``thrift.dataset`` and must be it when given.
    """

    def __init__(self, *args: Any, thrift: Thrift, **kwargs: Any) -> None:
        given = kwargs.get("train_dataset")
        if given is not None and given is not thrift.dataset:
            raise ValueError("ThriftyTrainer trains on thrift.dataset (its samples carry their "
                             "dataset index): leave train_dataset out or pass thrift.dataset")
        if not thrift.pieces.selector.identity:
            raise ValueError(
                f"in-batch selector {thrift.pieces.selector.name!r} packs the samples it "
                "chooses into full batches, which transformers.Trainer's step loop cannot "
                "take: run it with thrifty.Thrift in your own loop, or use a sampler here")
        kwargs["train_dataset"] = thrift.dataset
        super().__init__(*args, **kwargs)
        self.thrift = thrift
        if self.args.max_steps > 0:
            raise ValueError("ThriftyTrainer trains by epochs (thrifty's methods schedule by "
                             "them): set num_train_epochs and leave max_steps unset")
        epochs = self.args.num_train_epochs
        if epochs != thrift.ctx.epochs:
            raise ValueError(f"Thrift(epochs={thrift.ctx.epochs}) and num_train_epochs="
                             f"{epochs} differ: the methods schedule by the run's epochs")
        if self.args.gradient_accumulation_steps != 1:
            raise ValueError("ThriftyTrainer steps once per batch (gradient_accumulation_steps"
                             "=1): the trainer sizes its accumulation groups from the full "
                             "pool, so a shorter thrifty epoch would leave a group unstepped; "
                             "use a larger per_device_train_batch_size instead")
        if str(self.args.save_strategy).rsplit(".", 1)[-1].lower() == "steps":
            raise ValueError("thrifty resumes from states saved at an epoch's end: use "
                             "save_strategy='epoch' (or 'no')")
        # compute_loss returns a per-batch mean: the trainer must divide it by the
        # gradient-accumulation steps itself
        self.model_accepts_loss_kwargs = False
        self.add_callback(_ThriftyCallback(thrift))
        if self.model is not None:  # a sampler may score the pool before the first batch
            thrift.use_model(self.model)

    def get_train_dataloader(self) -> DataLoader:
        """thrifty's dataset in thrifty's order (each pass: its next epoch), collated by
        the trainer's ``data_collator``."""
        args = self.args
        return DataLoader(self.thrift.dataset,
                          batch_sampler=_NextEpochBatches(self.thrift,
                                                          args.per_device_train_batch_size),
                          collate_fn=self.data_collator,
                          num_workers=args.dataloader_num_workers,
                          pin_memory=args.dataloader_pin_memory)

    def create_scheduler(self, num_training_steps: int,
                         optimizer: torch.optim.Optimizer | None = None) -> Any:
        """The trainer's schedule over ``num_training_steps``, read at thrifty's progress
        through its epochs (:func:`progress`) instead of at the optimizer step: it ends
        fully decayed however many samples the sampler loaded."""
        scheduler = super().create_scheduler(num_training_steps, optimizer)
        lambdas = getattr(scheduler, "lr_lambdas", None)
        if lambdas is None:
            raise ValueError(f"lr_scheduler_type={self.args.lr_scheduler_type!r} is not a "
                             "LambdaLR schedule, which ThriftyTrainer drives by epoch progress")
        batch = self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps

        def at_progress(f: Any) -> Any:
            return lambda _step: f(round(progress(self.thrift, batch) * num_training_steps))

        scheduler.lr_lambdas = [at_progress(f) for f in lambdas]  # type: ignore[attr-defined]
        return scheduler

    def train(self, resume_from_checkpoint: str | bool | None = None, trial: Any = None,
              ignore_keys_for_eval: list[str] | None = None) -> Any:
        """``transformers.Trainer.train``; ``resume_from_checkpoint`` (a folder, or
        ``True`` for the last one in ``output_dir``) also restores thrifty's state from the
        folder's ``thrifty.pt`` and continues with thrifty's next epoch."""
        kwargs = {"trial": trial, "ignore_keys_for_eval": ignore_keys_for_eval}
        if resume_from_checkpoint is None or resume_from_checkpoint is False:
            return super().train(**kwargs)
        folder = get_last_checkpoint(self.args.output_dir) \
            if resume_from_checkpoint is True else str(resume_from_checkpoint)
        if folder is None or not os.path.isdir(folder):
            raise ValueError(f"no checkpoint to resume from in {self.args.output_dir!r}")
        state_file = Path(folder) / STATE_FILE
        if not state_file.is_file():
            raise ValueError(f"{folder} holds no thrifty state ({STATE_FILE}): it was not "
                             "written by a ThriftyTrainer, so its methods' record is unknown")
        state = torch.load(state_file, weights_only=True)
        if state.get("epoch_done") and state.get("epoch") == self.thrift.ctx.epochs - 1:
            raise ValueError(f"{folder} holds a finished run (all {self.thrift.ctx.epochs} "
                             "epochs): nothing to resume")
        self.thrift.load_state_dict(state)
        # the trainer derives its epoch and the batches to skip from optimizer steps of the
        # full pool; thrifty's sampler knows the epoch, and an epoch-end state skips nothing
        skip, self.args.ignore_data_skip = self.args.ignore_data_skip, True
        try:
            return super().train(resume_from_checkpoint=folder, **kwargs)
        finally:
            self.args.ignore_data_skip = skip

    def compute_loss(self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        """The per-sample loss given back to thrifty (``thrift.loss``) for a training batch;
        the plain mean loss for an evaluation batch (no dataset index, or eval mode)."""
        fmt = self.thrift.format
        inputs = dict(inputs)
        idx = inputs.pop(fmt.index_key, None)
        targets = inputs.pop(fmt.target_key)
        if idx is None or not model.training:  # evaluation: a plain loss, not thrifty's
            outputs = model(**inputs)
            logits = getattr(outputs, "logits", outputs)
            loss = self.thrift.loss_fn(logits, targets).mean()
            return (loss, outputs) if return_outputs else loss
        self.thrift.model = self.thrift.ctx.model = model  # for scoring samplers
        self.thrift.loaded(idx)
        outputs = model(**inputs)
        logits = getattr(outputs, "logits", outputs)
        loss = self.thrift.loss(self.thrift.loss_fn(logits, targets), idx)
        return (loss, outputs) if return_outputs else loss
