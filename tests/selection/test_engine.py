"""The selectors inside the engine: work counts, packing, checkpoint/resume, configs, CLI."""

import math

import pytest
import torch

from thrifty.cli import main
from thrifty.engine import Trainer, TrainingInterrupted
from thrifty.methods import build_method
from thrifty.selection import Adonis, SelectiveBackprop, StaleSB

QUIET = {"log": lambda s: None}


def _fit(cfg, digits, selector=None):
    trainer = Trainer(cfg, train=digits[0], test=digits[1], selector=selector, **QUIET)
    return trainer, trainer.fit()


@pytest.mark.parametrize("make,fresh", [
    (lambda: Adonis(eta=2, warmup=1), [False, True, False, True, False]),
    (lambda: Adonis(eta=3), [True, False, False, True, False]),
    (StaleSB, [True, False, True, False, True]),
    (SelectiveBackprop, [True] * 5),
])
def test_selection_forwards_run_only_in_fresh_epochs(tiny_config, digits, make, fresh):
    selector = make()
    _, result = _fit(tiny_config(epochs=5), digits, selector)
    n = len(digits[0])
    assert [e["samples_forwarded"] for e in result["epochs"]] == [n if f else 0 for f in fresh]
    warm = getattr(selector, "warmup", 0)
    for i, e in enumerate(result["epochs"]):
        assert e["samples_loaded"] == n and e["samples_trained"] > 0
        stale = i >= warm and not fresh[i]
        assert (e["method"]["selector_stale_batches"] > 0) == stale
        if i >= warm:
            assert e["samples_trained"] < n
            assert e["method"]["selector_considered"] == n


def test_warmup_epochs_train_everything(tiny_config, digits):
    _, result = _fit(tiny_config(epochs=2, batch_size=64), digits, Adonis(warmup=1))
    warm, first = result["epochs"]
    n = len(digits[0])
    assert warm["samples_forwarded"] == 0 and warm["method"]["selector_warmup_trained"] == n
    assert warm["samples_trained"] == n // 64 * 64  # the partial batch is carried
    assert first["samples_trained"] < n and first["samples_forwarded"] == n


@pytest.mark.parametrize("end", ["flush", "carry"])
def test_chosen_samples_are_packed_into_full_batches(tiny_config, digits, end):
    trainer, result = _fit(tiny_config(epochs=2, batch_size=50), digits,
                           Adonis(end_of_epoch=end))
    for e in result["epochs"]:
        assert e["optimizer_steps"] == math.ceil(e["samples_trained"] / 50)
        if end == "carry":  # every step is a full batch
            assert e["samples_trained"] % 50 == 0
        assert e["samples_trained"] < e["samples_forwarded"]
    selected = sum(e["method"]["selector_selected"] for e in result["epochs"])
    trained = sum(e["samples_trained"] for e in result["epochs"])
    if end == "flush":
        assert selected == trained and trainer.packer.count == 0
    else:  # at most one partial batch is still pending after the last epoch
        assert selected - trained == trainer.packer.count < 50


def test_stale_epochs_reuse_stored_losses(tiny_config, digits):
    trainer, _ = _fit(tiny_config(epochs=2), digits, StaleSB())
    record = trainer.record
    # epoch 0 forwarded every sample; epoch 1 (stale) forwarded none
    assert record.times_forwarded.eq(1).all()
    assert torch.isfinite(record.loss).all()


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name,args,cut", [
    ("adonis", {"eta": 2, "warmup": 1}, 30),   # cut in the first ADONIS epoch (fresh)
    ("adonis", {"eta": 2}, 30),                # cut in a stale epoch
    ("stale-sb", {}, 50),                      # cut in a fresh epoch after a stale one
])
def test_resume_equals_uninterrupted(tiny_config, digits, name, args, cut):
    kw = dict(epochs=3, batch_size=64)
    ref = Trainer(tiny_config(run_name="ref", **kw), train=digits[0], test=digits[1],
                  selector=build_method(name, args), **QUIET)
    ref.fit()
    state = {"batches": 0}

    def interrupt(trainer):  # 22 forward batches per epoch
        state["batches"] += 1
        if state["batches"] == cut:
            trainer.request_stop()

    cut_run = Trainer(tiny_config(run_name="cut", **kw), train=digits[0], test=digits[1],
                      selector=build_method(name, args), on_batch_end=interrupt, **QUIET)
    with pytest.raises(TrainingInterrupted):
        cut_run.fit()
    ckpt = torch.load(cut_run.run_dir / "checkpoint.pt", weights_only=True)
    assert len(ckpt["core"]["selector"]["history"]) > 0
    resumed = Trainer.resume(cut_run.run_dir, train=digits[0], test=digits[1],
                             selector=build_method(name, args), **QUIET)
    result = resumed.fit()
    a, b = _weights(ref.model), _weights(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(ref.selector.history, resumed.selector.history)
    for key in ("samples_trained", "samples_forwarded", "method"):
        assert [e[key] for e in result["epochs"]] == [e[key] for e in ref.history]


def test_method_by_name_in_config(tiny_config, digits):
    cfg = tiny_config(epochs=1, method=["adonis"], method_args={"theta": 0.1, "alpha": 0.5})
    trainer, result = _fit(cfg, digits)
    assert result["methods"]["selector"] == "adonis"
    assert trainer.selector.theta == 0.1 and trainer.selector.alpha == 0.5
    with pytest.raises(ValueError, match="theta"):
        Trainer(tiny_config(method=["adonis"], method_args={"theta": 1.0}), train=digits[0],
                test=digits[1], **QUIET)


def test_cli_trains_adonis_and_refuses_bad_theta(tmp_path, capsys):
    base = ["train", "--workload", "digits-mlp", "--epochs", "2", "--out-dir", str(tmp_path),
            "--no-progress", "--method", "adonis"]
    assert main([*base, "--run-name", "a", "--method-arg", "theta=0.1",
                 "--method-arg", "eta=2"]) == 0
    epochs = [line for line in capsys.readouterr().out.splitlines() if "fwd" in line]
    assert len(epochs) == 2 and "fwd 0 " not in epochs[0]
    assert "fwd 0 " in epochs[1]  # epoch 2 reuses the stored losses
    assert main([*base, "--method-arg", "theta=1.5"]) == 2
    assert "theta" in capsys.readouterr().err


def test_small_epochs_with_carry_wait_for_a_full_batch(tiny_config, digits):
    cfg = tiny_config(epochs=3, batch_size=64, train_limit=100)
    trainer, result = _fit(cfg, digits, Adonis())  # ~15 chosen per epoch, carried
    selected = [e["method"]["selector_selected"] for e in result["epochs"]]
    trained = [e["samples_trained"] for e in result["epochs"]]
    assert all(s > 0 for s in selected) and trained[0] == 0
    assert sum(selected) == sum(trained) + trainer.packer.count
    # flush: an epoch's remainder of at least 32 (half of 64) is trained, a smaller one
    # waits for the next epoch; after the last epoch it is dropped, counted
    flusher, flushed = _fit(tiny_config(epochs=3, batch_size=64, train_limit=100,
                                        run_name="f"), digits, Adonis(end_of_epoch="flush"))
    selected = [e["method"]["selector_selected"] for e in flushed["epochs"]]
    trained = [e["samples_trained"] for e in flushed["epochs"]]
    assert all(t == 0 or t >= 32 for t in trained) and sum(trained) > 0
    dropped = [e["method"]["end_of_epoch_dropped"] for e in flushed["epochs"]]
    assert sum(selected) == sum(trained) + sum(dropped) and dropped[-1] < 32
    assert flusher.packer.count == 0
