"""ThriftyTrainer with the real transformers package on a tiny randomly initialised model
built from a config (no download): every epoch trains exactly the sampler's choice."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

transformers = pytest.importorskip("transformers")

from thrifty import Thrift  # noqa: E402
from thrifty.integrations.huggingface import ThriftyTrainer  # noqa: E402


class Tokens(Dataset):
    """Random token sequences; the label says whether token 7 occurs."""

    def __init__(self, n=96, length=8):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(1, 20, (n, length), generator=g)
        self.targets = (self.ids == 7).any(1).long()

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i]),
                "labels": self.targets[i]}


def _model():
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=24, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=16, num_labels=2)
    return transformers.BertForSequenceClassification(config)


def _args(tmp_path, epochs):
    return transformers.TrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=epochs, per_device_train_batch_size=16,
        learning_rate=1e-3, report_to=[], use_cpu=True, save_strategy="no",
        logging_strategy="no", disable_tqdm=True, seed=0)


def test_the_trainer_trains_exactly_the_samplers_choice(tmp_path):
    thrift = Thrift("random-adaptive", Tokens(), epochs=3,
                    method_args={"ratio": 0.5, "period": 1})
    orders, seen = [], []
    real_start, real_loss = thrift.start_epoch, thrift.loss

    def start(epoch=None):
        real_start(epoch)
        orders.append(sorted(thrift._order.tolist()))
        seen.append([])

    def loss(losses, idx, **kw):
        seen[-1] += torch.as_tensor(idx).tolist()
        return real_loss(losses, idx, **kw)

    thrift.start_epoch, thrift.loss = start, loss
    trainer = ThriftyTrainer(model=_model(), args=_args(tmp_path, 3), thrift=thrift)
    trainer.train()
    assert len(orders) == 3 and [sorted(s) for s in seen] == orders
    assert all(len(o) == 48 for o in orders) and orders[0] != orders[1]
    assert thrift.counts["trained"] == thrift.counts["loaded"] == 3 * 48
    assert trainer.state.global_step == thrift.counts["steps"] == 3 * 3


def test_infobatch_is_fed_and_prunes(tmp_path):
    thrift = Thrift("infobatch", Tokens(), epochs=3)
    trainer = ThriftyTrainer(model=_model(), args=_args(tmp_path, 3), thrift=thrift)
    trainer.train()
    assert thrift.counts["trained"] == thrift.counts["loaded"] < 3 * 96
    assert thrift.record.times_trained.sum().item() == thrift.counts["trained"]


def test_refusals(tmp_path):
    with pytest.raises(ValueError, match="in your own loop"):
        ThriftyTrainer(model=_model(), args=_args(tmp_path, 1),
                       thrift=Thrift("sb", Tokens(), epochs=1))
    thrift = Thrift("infobatch", Tokens(), epochs=2)
    with pytest.raises(ValueError, match="num_train_epochs"):
        ThriftyTrainer(model=_model(), args=_args(tmp_path, 3), thrift=thrift)
    with pytest.raises(ValueError, match="thrift.dataset"):
        ThriftyTrainer(model=_model(), args=_args(tmp_path, 2), thrift=thrift,
                       train_dataset=Tokens())


class _Kill(transformers.TrainerCallback):
    """A crash in the middle of epoch 3 (the last checkpoint is epoch 2's)."""

    def on_step_begin(self, args, state, control, **kwargs):
        if state.epoch is not None and state.epoch >= 2.3:
            raise RuntimeError("killed")


def _checkpointed(tmp_path, folder, method, callbacks=(), resume=None):
    thrift = Thrift(method, Tokens(), epochs=4, log=lambda s: None)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / folder), num_train_epochs=4, per_device_train_batch_size=16,
        learning_rate=1e-3, report_to=[], use_cpu=True, save_strategy="epoch",
        logging_strategy="no", disable_tqdm=True, seed=0, lr_scheduler_type="linear")
    model = _model()
    trainer = ThriftyTrainer(model=model, args=args, thrift=thrift, callbacks=list(callbacks))
    lrs = []

    class Rates(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            lrs.append(trainer.optimizer.param_groups[0]["lr"])

    trainer.add_callback(Rates())
    trainer.train(resume_from_checkpoint=resume)
    return thrift, model, lrs


@pytest.mark.parametrize("method", ["infobatch", "random-adaptive"])
def test_resume_from_a_checkpoint_folder_equals_the_uninterrupted_run(tmp_path, method):
    whole, whole_model, lrs = _checkpointed(tmp_path, "whole", method)
    with pytest.raises(RuntimeError, match="killed"):
        _checkpointed(tmp_path, "cut", method, callbacks=[_Kill()])
    assert (next((tmp_path / "cut").glob("checkpoint-*")) / "thrifty.pt").is_file()
    resumed, resumed_model, resumed_lrs = _checkpointed(tmp_path, "cut", method, resume=True)
    assert resumed.counts == whole.counts and resumed.current_epoch == 3
    assert all(torch.equal(a, b) for a, b in zip(whole_model.parameters(),
                                                  resumed_model.parameters()))
    # the schedule follows thrifty's epochs: fully decayed at the end although the
    # sampler loaded less than the full pool the trainer sized it from
    assert whole.counts["steps"] < 4 * 6 and lrs[-1] == 0.0 and resumed_lrs[-1] == 0.0


def test_checkpoints_without_thrifty_state_or_mid_epoch_are_refused(tmp_path):
    thrift = Thrift("infobatch", Tokens(), epochs=1)
    steps = transformers.TrainingArguments(output_dir=str(tmp_path), num_train_epochs=1,
                                           report_to=[], use_cpu=True, save_strategy="steps")
    with pytest.raises(ValueError, match="save_strategy='epoch'"):
        ThriftyTrainer(model=_model(), args=steps, thrift=thrift)
    (tmp_path / "checkpoint-5").mkdir()
    trainer = ThriftyTrainer(model=_model(), args=_args(tmp_path, 1), thrift=thrift)
    with pytest.raises(ValueError, match="holds no thrifty state"):
        trainer.train(resume_from_checkpoint=True)


def test_a_scoring_sampler_evaluation_and_refusals(tmp_path):
    # loss-adaptive scores the pool before the first batch: the model is known by then
    thrift = Thrift("loss-adaptive", Tokens(), epochs=2, log=lambda s: None)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=2, per_device_train_batch_size=16,
        report_to=[], use_cpu=True, save_strategy="no", logging_strategy="no",
        disable_tqdm=True, seed=0, eval_strategy="epoch")
    trainer = ThriftyTrainer(model=_model(), args=args, thrift=thrift, eval_dataset=Tokens(32))
    trainer.train()  # evaluation batches carry no index: a plain loss, thrifty untouched
    assert thrift.counts["trained"] == thrift.counts["loaded"] > 0
    assert thrift.counts["forwarded"] > 0
    accumulating = transformers.TrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=1, report_to=[], use_cpu=True,
        gradient_accumulation_steps=2, save_strategy="no")
    with pytest.raises(ValueError, match="gradient_accumulation_steps=1"):
        ThriftyTrainer(model=_model(), args=accumulating,
                       thrift=Thrift("infobatch", Tokens(), epochs=1))
