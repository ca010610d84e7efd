"""Hugging Face ``transformers.Trainer`` with thrifty's reducers and samplers (optional extra
``thrifty[hf]``).

::

    thrift = Thrift("infobatch", train_set, epochs=3)   # samples: dicts with "labels"
    trainer = ThriftyTrainer(model=model, args=TrainingArguments(..., num_train_epochs=3),
                             thrift=thrift)
    trainer.train()

``ThriftyTrainer`` is a ``transformers.Trainer`` whose training sampler is
``thrift.sampler`` (each epoch's samples, started by the trainer's ``set_epoch``), whose
training set is ``thrift.dataset`` (each sample carries its ``index``), and whose loss is
the per-sample loss (``thrift.loss_fn``, cross entropy by default) given back to thrifty
(``thrift.loss``: InfoBatch's scores, loss weights). The model gets the batch without
``labels`` and ``index``.

What it does not do: in-batch selectors (ADONIS, SB, ASSIST) pack chosen samples into full
batches, which the trainer's fixed step loop cannot take; use :class:`~thrifty.Thrift` in
your own loop for them. The trainer sizes its learning-rate schedule once, from the full
pool (``len(thrift.sampler)`` before the first epoch): when a sampler loads fewer samples,
the run takes fewer steps than the schedule spans and ends before the schedule's end,
unlike thrifty's engine, whose per-epoch schedules end fully decayed.
"""

from __future__ import annotations

from typing import Any

try:
    import transformers
except ModuleNotFoundError as exc:  # pragma: no cover - exercised without the extra
    raise ModuleNotFoundError("thrifty.integrations.huggingface needs transformers: "
                              "pip install 'thrifty[hf]'") from exc

from torch import nn

from thrifty.integrations.own_loop import Thrift


class _EpochEnd(transformers.TrainerCallback):
    """Ends the thrifty epoch when the trainer's epoch ends (its public callback hook)."""

    def __init__(self, thrift: Thrift) -> None:
        self.thrift = thrift

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.thrift.end_epoch()


class ThriftyTrainer(transformers.Trainer):
    """A ``transformers.Trainer`` driven by a :class:`~thrifty.Thrift`.

    Args:
        *args: ``transformers.Trainer``'s arguments.
        thrift: the :class:`~thrifty.Thrift` of the run (its ``epochs`` should equal
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
        if self.args.world_size > 1:
            raise RuntimeError("ThriftyTrainer runs in one process for now: under several "
                               "processes each would choose its own samples. Train on one "
                               "device, or use thrifty's engine under torchrun")
        self.add_callback(_EpochEnd(thrift))
        # compute_loss returns a per-batch mean: the trainer must divide it by the
        # gradient-accumulation steps itself
        self.model_accepts_loss_kwargs = False
        epochs = self.args.num_train_epochs
        if self.args.max_steps <= 0 and epochs != thrift.ctx.epochs:
            raise ValueError(f"Thrift(epochs={thrift.ctx.epochs}) and num_train_epochs="
                             f"{epochs} differ: the methods schedule by the run's epochs")

    def _set_signature_columns_if_needed(self) -> None:
        # the trainer drops the batch keys its model does not take: keep the dataset index
        super()._set_signature_columns_if_needed()
        key = self.thrift.format.index_key
        if self._signature_columns is not None and key not in self._signature_columns:
            self._signature_columns.append(key)

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        return self.thrift.sampler

    def compute_loss(self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        fmt = self.thrift.format
        inputs = dict(inputs)
        idx = inputs.pop(fmt.index_key)
        targets = inputs.pop(fmt.target_key)
        self.thrift.model = self.thrift.ctx.model = model  # for scoring samplers
        self.thrift.loaded(idx)
        outputs = model(**inputs)
        logits = getattr(outputs, "logits", outputs)
        loss = self.thrift.loss(self.thrift.loss_fn(logits, targets), idx)
        return (loss, outputs) if return_outputs else loss
