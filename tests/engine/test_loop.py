import json
import math
import os
import signal

import pytest
import torch

from thrifty.data import TensorData
from thrifty.engine import (
    BatchSelector,
    EpochSampler,
    NonFiniteLossError,
    PackingRule,
    SelectionError,
    Trainer,
    TrainingInterrupted,
)


class AboveMedian(BatchSelector):
    """Test selector: train on samples whose fresh loss is above the batch median."""

    name = "above-median"
    identity = False
    _state_attrs = ("calls",)

    def __init__(self):
        self.calls = 0

    def needs_forward(self, ctx):
        return True

    def select(self, batch, ctx):
        self.calls += 1
        return torch.nonzero(batch.losses > batch.losses.median()).flatten()


class Nothing(AboveMedian):
    name = "nothing"

    def select(self, batch, ctx):
        return torch.empty(0, dtype=torch.long)


class HalfSampler(EpochSampler):
    name = "half"

    def begin_epoch(self, ctx):
        g = torch.Generator().manual_seed(ctx.epoch)
        self.active = self.pool[torch.randperm(len(self.pool), generator=g)[: len(self.pool) // 2]]


def test_baseline_counts_and_result_file(tiny_config, digits):
    cfg = tiny_config(epochs=2, batch_size=100)
    result = Trainer(cfg, train=digits[0], test=digits[1], log=lambda s: None).fit()
    n = len(digits[0])
    assert n % 100 < 50  # the short last batch (47) joins the one before it
    steps = n // 100
    assert result["status"] == "finished"
    for e in result["epochs"]:
        assert e["samples_loaded"] == n and e["samples_trained"] == n
        assert e["samples_forwarded"] == 0 and e["optimizer_steps"] == steps
        assert e["train_time"] > 0 and e["time"]["evaluation"] > 0
        assert 0 <= e["test_accuracy"] <= 1
        assert set(e["test_loss"]) >= {"mean", "worst", "best", "q0.5", "q0.9", "q0.99"}
    last = result["epochs"][-1]
    assert last["train_loss_stats"] and last["loss_ratios"]["accuracy"] > 0  # final epoch
    assert result["epochs"][0]["train_loss_stats"] == {}  # train_stats_every=0 -> final only
    assert result["epochs"][-1]["test_accuracy"] > 0.5  # it learns digits
    saved = json.loads((cfg_dir := result["run_dir"] and
                        __import__("pathlib").Path(result["run_dir"])).joinpath(
                            "result.json").read_text())
    assert saved["final"]["samples_trained"] == 2 * n
    assert saved["environment"]["torch"] == torch.__version__
    assert (cfg_dir / "checkpoint.pt").exists()


def test_finished_result_is_never_overwritten(tiny_config, digits):
    cfg = tiny_config(epochs=1, run_name="same")
    a = Trainer(cfg, train=digits[0], test=digits[1], log=lambda s: None).fit()
    b = Trainer(cfg, train=digits[0], test=digits[1], log=lambda s: None).fit()
    assert a["run_dir"] != b["run_dir"] and b["run_dir"].endswith("same-1")


def test_selector_path_counts_and_packs(tiny_config, digits):
    cfg = tiny_config(epochs=1, batch_size=50)
    sel = AboveMedian()
    result = Trainer(cfg, train=digits[0], test=digits[1], selector=sel, log=lambda s: None).fit()
    e = result["epochs"][0]
    n = len(digits[0])
    assert e["samples_loaded"] == n and e["samples_forwarded"] == n
    assert n * 0.4 < e["samples_trained"] < n * 0.55
    # every step but the last (flushed partial) is a full batch of 50
    assert e["optimizer_steps"] == math.ceil(e["samples_trained"] / 50)
    assert e["time"]["selection_forward"] > 0 and e["time"]["selection_logic"] > 0


def test_sampler_path_loads_only_active(tiny_config, digits):
    cfg = tiny_config(epochs=2)
    result = Trainer(cfg, train=digits[0], test=digits[1], sampler=HalfSampler(),
                     log=lambda s: None).fit()
    for e in result["epochs"]:
        assert e["samples_loaded"] == len(digits[0]) // 2 == e["samples_trained"]


def test_reducer_by_name_in_config(tiny_config, digits):
    cfg = tiny_config(epochs=1, method=["rpd"], method_args={"alpha": 0.5})
    result = Trainer(cfg, train=digits[0], test=digits[1], log=lambda s: None).fit()
    assert result["dataset"]["pool_size"] == math.ceil(0.5 * len(digits[0]))
    assert result["epochs"][0]["samples_trained"] == result["dataset"]["pool_size"]
    assert result["methods"]["reducer"] == "rpd"
    saved = torch.load(f"{result['run_dir']}/subset.pt", weights_only=True)
    assert saved["seed"] == cfg.seed and len(saved["indices"]) == result["dataset"]["pool_size"]


def test_selector_that_selects_nothing_is_an_error(tiny_config, digits):
    cfg = tiny_config(epochs=1)
    with pytest.raises(SelectionError, match="chose no sample"):
        Trainer(cfg, train=digits[0], test=digits[1], selector=Nothing(), log=lambda s: None).fit()


def test_nan_loss_is_a_clear_error_and_result_marked_failed(tiny_config, digits):
    x = digits[0].x.clone()
    x[5] = float("nan")
    train = TensorData(x, digits[0].y, 10, "digits")
    cfg = tiny_config(epochs=1)
    trainer = Trainer(cfg, train=train, test=digits[1], log=lambda s: None)
    with pytest.raises(NonFiniteLossError, match="Lower the learning rate"):
        trainer.fit()
    saved = json.loads((trainer.run_dir / "result.json").read_text())
    assert saved["status"] == "failed" and "NonFiniteLossError" in saved["error"]


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("how", ["request", "sigterm", "sigint"])
def test_resume_equals_uninterrupted(tiny_config, digits_aug, how):
    train, test = digits_aug
    kw = dict(model="cnn", epochs=3, batch_size=64, method=["rpc"],
              method_args={"alpha": 0.7})
    ref = Trainer(tiny_config(run_name="ref", **kw), train=train, test=test,
                  selector=AboveMedian(), log=lambda s: None)
    ref.fit()
    state = {"batches": 0}

    def interrupt(trainer):
        state["batches"] += 1
        if state["batches"] == 20:  # epoch 2, mid-epoch (15 forward batches per epoch)
            if how == "request":
                trainer.request_stop()
            else:
                os.kill(os.getpid(), signal.SIGTERM if how == "sigterm" else signal.SIGINT)

    cut = Trainer(tiny_config(run_name="cut", **kw), train=train, test=test,
                  selector=AboveMedian(), on_batch_end=interrupt, log=lambda s: None)
    with pytest.raises(TrainingInterrupted) as err:
        cut.fit()
    assert err.value.checkpoint.exists()
    assert json.loads((cut.run_dir / "result.json").read_text())["status"] == "interrupted"
    resumed = Trainer.resume(cut.run_dir, train=train, test=test, selector=AboveMedian(),
                             log=lambda s: None)
    result = resumed.fit()
    a, b = _weights(ref.model), _weights(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [e["samples_trained"] for e in result["epochs"]] == [
        e["samples_trained"] for e in ref.history]
    assert resumed.selector.calls == ref.selector.calls


@pytest.mark.parametrize("epoch,at", [(1, 2), (2, 2), (2, "train")])  # the last epoch's
def test_sigterm_during_evaluation_stops_it_and_resume_evaluates_again(tiny_config, digits,
                                                                       epoch, at):
    # test pass, then (at="train") the last epoch's pass over the training set
    kw = dict(epochs=3, eval_batch_size=32)
    ref = Trainer(tiny_config(run_name="ref", **kw), train=digits[0], test=digits[1],
                  log=lambda s: None)
    ref.fit()
    cut = Trainer(tiny_config(run_name="cut", **kw), train=digits[0], test=digits[1],
                  log=lambda s: None)
    forward, calls = cut._forward_eval, []

    test_batches = -(-len(digits[1]) // 32)
    when = test_batches + 2 if at == "train" else at

    def signalled(x, y):  # SIGTERM in the chosen batch of the chosen epoch's evaluation
        calls.append(cut.core.epoch)
        if calls.count(epoch) == when and len(cut.history) == epoch:
            os.kill(os.getpid(), signal.SIGTERM)
        return forward(x, y)

    cut._forward_eval = signalled
    with pytest.raises(TrainingInterrupted):
        cut.fit()
    assert calls.count(epoch) == when  # the evaluation was cut short
    assert json.loads((cut.run_dir / "result.json").read_text())["status"] == "interrupted"
    assert torch.load(cut.run_dir / "checkpoint.pt", weights_only=True)["epoch"] == epoch + 1
    resumed = Trainer.resume(cut.run_dir, train=digits[0], test=digits[1], log=lambda s: None)
    result = resumed.fit()
    assert result["status"] == "finished"
    assert [e["test_accuracy"] for e in result["epochs"]] == [
        e["test_accuracy"] for e in ref.history]
    assert result["final"]["train_loss_stats"] == ref.result["final"]["train_loss_stats"]
    assert all(e["evaluated"] for e in result["epochs"])
    a, b = _weights(ref.model), _weights(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_from_epoch_boundary(tiny_config, digits):
    kw = dict(epochs=3)
    ref = Trainer(tiny_config(run_name="ref", **kw), train=digits[0], test=digits[1],
                  log=lambda s: None)
    ref.fit()

    def stop_at_epoch_end(trainer):
        if trainer._stats is not None and trainer._stats.epoch == 1 and \
                trainer._stats.samples_loaded == len(digits[0]):
            trainer.request_stop()

    cut = Trainer(tiny_config(run_name="cut", **kw), train=digits[0], test=digits[1],
                  on_batch_end=stop_at_epoch_end, log=lambda s: None)
    with pytest.raises(TrainingInterrupted):
        cut.fit()
    resumed = Trainer.resume(cut.run_dir / "checkpoint.pt", train=digits[0], test=digits[1],
                             log=lambda s: None)
    resumed.fit()
    a, b = _weights(ref.model), _weights(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_loads_weights_only(tiny_config, digits):
    trainer = Trainer(tiny_config(epochs=1), train=digits[0], test=digits[1], log=lambda s: None)
    trainer.fit()
    state = torch.load(trainer.run_dir / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1 and state["position"] is None


def test_bad_device_and_amp(tiny_config, digits):
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            Trainer(tiny_config(device="cuda"), train=digits[0], test=digits[1])
        with pytest.raises(ValueError, match="fp16 mixed precision needs a CUDA"):
            Trainer(tiny_config(amp="fp16"), train=digits[0], test=digits[1])


def test_bf16_autocast_on_cpu_trains(tiny_config, digits):
    cfg = tiny_config(epochs=1, amp="bf16", model="cnn")
    result = Trainer(cfg, train=digits[0], test=digits[1], log=lambda s: None).fit()
    assert result["epochs"][0]["samples_trained"] == len(digits[0])
    assert math.isfinite(result["epochs"][0]["train_loss"])


def test_loss_weights_from_sampler_scale_the_loss(tiny_config, digits):
    class Weighted(EpochSampler):
        weighted = True

        def loss_weights(self, idx):
            return torch.zeros(len(idx))  # zero weight: no learning signal at all

    cfg = tiny_config(epochs=1, weight_decay=0.0)
    trainer = Trainer(cfg, train=digits[0], test=digits[1], sampler=Weighted(),
                      log=lambda s: None)
    before = _weights(trainer.model)
    trainer.fit()
    after = _weights(trainer.model)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_forward_batches_larger_than_training_batches(tiny_config, digits):
    cfg = tiny_config(epochs=1, batch_size=32, forward_batch_size=128)
    sel = AboveMedian()
    result = Trainer(cfg, train=digits[0], test=digits[1], selector=sel, log=lambda s: None).fit()
    n = len(digits[0])
    assert sel.calls == math.ceil(n / 128)  # one selection per forward batch of 128
    e = result["epochs"][0]
    assert e["optimizer_steps"] == math.ceil(e["samples_trained"] / 32)


def test_selector_may_allow_empty_epochs(tiny_config, digits):
    class Starved(Nothing):
        allow_empty_epoch = True

    result = Trainer(tiny_config(epochs=1), train=digits[0], test=digits[1], selector=Starved(),
                     log=lambda s: None).fit()
    assert result["epochs"][0]["samples_trained"] == 0


def test_forward_batch_size_does_not_change_plain_training(tiny_config, digits):
    cfg = tiny_config(epochs=1, batch_size=32, forward_batch_size=128)
    result = Trainer(cfg, train=digits[0], test=digits[1], log=lambda s: None).fit()
    # 1347 = 42 x 32 + 3: the short last batch joins the one before it
    assert result["epochs"][0]["optimizer_steps"] == len(digits[0]) // 32


def test_train_stats_never_with_minus_one(tiny_config, digits):
    # the snapshot embedder's warm-up copy needs no pass over the training set at its end
    result = Trainer(tiny_config(epochs=1, train_stats_every=-1), train=digits[0],
                     test=digits[1], log=lambda s: None).fit()
    assert result["epochs"][-1]["train_loss_stats"] == {}
    with pytest.raises(ValueError, match="train_stats_every"):
        tiny_config(train_stats_every=-2)


def test_sampler_targets_replace_the_labels_in_the_loss(tiny_config, digits):
    class Relabel(EpochSampler):
        relabels = True

        def __init__(self, soft):
            super().__init__()
            self.soft = soft

        def train_targets(self, idx, y):
            if self.soft:  # probabilities: all mass on class 0
                return torch.nn.functional.one_hot(torch.zeros_like(y), 10).float()
            return torch.zeros_like(y)  # every sample labelled 0

    for soft in (False, True):
        cfg = tiny_config(epochs=2, run_name=f"relabel-{soft}")
        trainer = Trainer(cfg, train=digits[0], test=digits[1], sampler=Relabel(soft),
                          log=lambda s: None)
        trainer.fit()
        preds = trainer.model(digits[1].x).argmax(1)
        assert (preds == 0).float().mean() > 0.95  # it learnt the replaced targets
        assert trainer.record.correct.float().mean() < 0.3  # correctness vs the true labels


def test_label_smoothing_changes_the_loss_and_is_validated(tiny_config, digits):
    losses = {}
    for ls in (0.0, 0.3):
        cfg = tiny_config(epochs=1, label_smoothing=ls, run_name=f"ls{ls}")
        result = Trainer(cfg, train=digits[0], test=digits[1], log=lambda s: None).fit()
        losses[ls] = result["epochs"][0]["train_loss"]
    assert losses[0.3] > losses[0.0] + 0.1  # smoothed targets cannot reach a small loss
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        tiny_config(label_smoothing=1.0).validate()


def test_masks_in_config_keep_pruned_weights_zero_through_resume(tiny_config, digits, tmp_path):
    from thrifty.pruning import save_masks

    probe = Trainer(tiny_config(epochs=1, run_name="probe"), train=digits[0], test=digits[1],
                    log=lambda s: None)
    name, layer = next((n, m) for n, m in probe.model.named_modules()
                       if isinstance(m, torch.nn.Linear))
    mask = torch.rand(layer.weight.shape, generator=torch.Generator().manual_seed(0)) > 0.5
    path = save_masks(tmp_path / "masks.pt", {name: mask})
    kw = dict(epochs=2, masks=str(path))

    def stop_mid_epoch(trainer):
        if trainer._stats is not None and trainer._stats.epoch == 1 and \
                trainer._stats.optimizer_steps == 3:
            trainer.request_stop()

    cut = Trainer(tiny_config(run_name="cut", **kw), train=digits[0], test=digits[1],
                  on_batch_end=stop_mid_epoch, log=lambda s: None)
    with pytest.raises(TrainingInterrupted):
        cut.fit()
    resumed = Trainer.resume(cut.run_dir, train=digits[0], test=digits[1], log=lambda s: None)
    resumed.fit()
    ref = Trainer(tiny_config(run_name="ref", **kw), train=digits[0], test=digits[1],
                  log=lambda s: None)
    ref.fit()
    for t in (resumed, ref):
        w = dict(t.model.named_modules())[name].weight
        assert torch.all(w[~mask] == 0) and torch.all(w[mask] != 0)
    assert torch.equal(dict(resumed.model.named_modules())[name].weight,
                       dict(ref.model.named_modules())[name].weight)
    with pytest.raises(FileNotFoundError, match="mask file not found"):
        Trainer(tiny_config(masks=str(tmp_path / "none.pt")), train=digits[0], test=digits[1])


def test_loss_statistics_of_the_model_as_it_is(tiny_config, digits):
    # the public read of seed 004's statistics equals what the run recorded at its end
    trainer = Trainer(tiny_config(epochs=1), train=digits[0], test=digits[1],
                      log=lambda s: None)
    last = trainer.fit()["epochs"][-1]
    for split, recorded in (("train", last["train_loss_stats"]), ("test", last["test_loss"])):
        now = trainer.loss_statistics(split)
        assert now == pytest.approx(recorded)
        assert now["worst"] >= now["q0.9"] >= now["q0.5"] >= now["best"] >= 0
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        trainer.loss_statistics("val")


@pytest.mark.parametrize("amp, selection_amp, expected", [
    ("off", "same", torch.float32), ("off", "bf16", torch.bfloat16),
    ("bf16", "same", torch.bfloat16), ("bf16", "off", torch.float32)])
def test_selection_amp_sets_the_precision_of_selection_forwards_only(
        tiny_config, digits, amp, selection_amp, expected):
    trainer = Trainer(tiny_config(epochs=1, batch_size=50, amp=amp,
                                  selection_amp=selection_amp),
                      train=digits[0], test=digits[1], selector=AboveMedian(),
                      log=lambda s: None)
    train_dtype = torch.bfloat16 if amp == "bf16" else torch.float32
    seen = {}  # with or without gradient -> output dtypes of the model's forward calls
    trainer.model.register_forward_hook(
        lambda m, i, out: seen.setdefault("train" if torch.is_grad_enabled() else "no_grad",
                                          set()).add(out.dtype))
    trainer.fit()
    assert seen["train"] == {train_dtype}  # training at --amp
    # without gradient: the selector's forwards (at selection_amp) and the evaluation (--amp)
    assert seen["no_grad"] == {train_dtype, expected}
    with pytest.raises(ValueError, match="selection_amp must be same, off, bf16 or fp16"):
        tiny_config(selection_amp="int8")
    with pytest.raises(ValueError, match="on CPU use --selection-amp bf16"):
        Trainer(tiny_config(selection_amp="fp16"), train=digits[0], test=digits[1],
                log=lambda s: None)


class OnceThenNothing(AboveMedian):
    """Chooses one sample in the first batch of the run, nothing after: in epoch 1 that
    sample waits in the packer (no step), which is a selection, not "chose nothing"."""

    name = "once"
    packing = PackingRule(end_of_epoch="carry")  # the chosen sample waits for a full batch

    def select(self, batch, ctx):
        self.calls += 1
        return torch.tensor([0]) if self.calls == 1 else torch.empty(0, dtype=torch.long)


def test_mid_epoch_resume_remembers_what_the_epoch_chose(tiny_config, digits):
    kw = dict(epochs=1, batch_size=64, run_name="once")

    def stop_after_two(trainer):
        if trainer.selector.calls == 2:
            trainer.request_stop()

    cut = Trainer(tiny_config(**kw), train=digits[0], test=digits[1],
                  selector=OnceThenNothing(), on_batch_end=stop_after_two, log=lambda s: None)
    with pytest.raises(TrainingInterrupted):
        cut.fit()
    resumed = Trainer.resume(cut.run_dir, train=digits[0], test=digits[1],
                             selector=OnceThenNothing(), log=lambda s: None)
    # without the epoch's count of chosen samples in the checkpoint this epoch would be
    # refused as "chose no sample", although one was chosen before the interruption
    result = resumed.fit()
    assert result["status"] == "finished" and result["epochs"][0]["samples_trained"] == 0
    # and an epoch that really chose nothing is still refused
    with pytest.raises(SelectionError, match="chose no sample"):
        Trainer(tiny_config(**{**kw, "run_name": "none"}), train=digits[0], test=digits[1],
                selector=Nothing(), log=lambda s: None).fit()
