"""Robust accuracy under --attack (issue 27): an attack lowers the accuracy of a trained
model and is recorded with its parameters; bad values and the missing extra are refused in
one line."""

import json
import sys

import pytest

pytest.importorskip("art")

from thrifty.bench.table import compute_rows, to_markdown  # noqa: E402
from thrifty.cli import main  # noqa: E402
from thrifty.engine import Trainer, make_config  # noqa: E402


def test_an_attack_lowers_the_accuracy_of_a_trained_model_and_is_recorded(tmp_path):
    results = {}
    for attack in ("fgsm", "pgd"):
        cfg = make_config({"workload": "digits-mlp", "epochs": 4, "attack": attack,
                           "attack_eps": 0.5, "attack_limit": 200, "progress": False,
                           "out_dir": str(tmp_path), "run_name": attack})
        results[attack] = Trainer(cfg, log=lambda s: None).fit()
    for attack, r in results.items():
        final = r["final"]
        assert final["test_accuracy"] > 0.9
        assert final["robust_accuracy"] < final["test_accuracy"] - 0.3  # eps 0.2 pixels
        assert final["robust"]["attack"] == attack and final["robust"]["samples"] == 200
        stored = json.loads((tmp_path / attack / "result.json").read_text())
        assert stored["final"]["robust_accuracy"] == final["robust_accuracy"]
    assert results["pgd"]["final"]["robust"]["steps"] == 10
    # PGD's 10 steps find at least what FGSM's one step finds
    assert results["pgd"]["final"]["robust_accuracy"] <= \
        results["fgsm"]["final"]["robust_accuracy"] + 0.02
    # the same run without the attack trains identically: the attack leaves the RNG alone
    plain = Trainer(make_config({"workload": "digits-mlp", "epochs": 4, "progress": False,
                                 "out_dir": str(tmp_path), "run_name": "plain"}),
                    log=lambda s: None).fit()
    assert plain["final"]["test_accuracy"] == results["pgd"]["final"]["test_accuracy"]
    row = compute_rows({"baseline": {0: results["pgd"]}})[0]
    assert row["robust_acc"] == pytest.approx(100 * results["pgd"]["final"]["robust_accuracy"])
    assert "robust acc %" in to_markdown([row])


@pytest.mark.parametrize("args,message", [
    (["--attack", "cw"], "attack must be none, fgsm or pgd"),
    (["--attack", "pgd", "--attack-eps", "0"], "attack_eps must be positive"),
    (["--attack", "pgd", "--attack-steps", "0"], "attack_steps must be at least 1"),
    (["--attack", "pgd", "--attack-limit", "0"], "attack_limit must be at least 1"),
])
def test_bad_attack_values_are_refused_in_one_line(tmp_path, capsys, args, message):
    assert main(["train", "--workload", "digits-mlp", "--out-dir", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_the_missing_extra_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "art", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "art.attacks", None)
    monkeypatch.setitem(sys.modules, "art.attacks.evasion", None)
    assert main(["train", "--workload", "digits-mlp", "--attack", "fgsm", "--out-dir",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install 'thrifty[attack]'" in err and len(err.splitlines()) == 1
    assert not list(tmp_path.iterdir())  # refused before any run folder


def test_an_attack_on_token_inputs_is_refused_before_training(tmp_path, capsys):
    assert main(["train", "--workload", "seq-cnn", "--attack", "pgd", "--out-dir",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "inputs are torch.int64" in err and not list(tmp_path.iterdir())
