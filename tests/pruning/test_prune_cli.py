"""`thrifty prune`: run folder / checkpoint / weights in; masks, weights, report out."""

import json
import shlex

import pytest
import torch

from thrifty.cli import main
from thrifty.engine import Trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from thrifty.engine import make_config

    root = tmp_path_factory.mktemp("prune")
    cfg = make_config({"workload": "digits-mlp", "epochs": 2, "out_dir": str(root / "runs"),
                       "run_name": "base", "progress": False})
    Trainer(cfg).fit()
    return root


def test_magnitude_prune_then_retrain_keeps_zeros(trained, tmp_path, capsys):
    out = tmp_path / "mag"
    assert main(["prune", "--method", "magnitude", "--from", str(trained / "runs" / "base"),
                 "--method-arg", "sparsity=0.5", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "classifier" in text and "50.00%" in text and "--masks" in text
    report = json.loads((out / "prune.json").read_text())
    assert report["layers"]["classifier"]["pruned_share"] == 0.5
    assert 0 < report["total_pruned_share"] < 0.5 and "unpruned" in report["test_accuracy"]
    assert (out / "masks.pt").is_file() and (out / "weights.pt").is_file()
    retrain = report["retrain"].split()[2:]  # drop "thrifty train"
    assert main(["train", *retrain, "--epochs", "1", "--out-dir", str(tmp_path / "runs"),
                 "--no-progress"]) == 0
    state = torch.load(tmp_path / "runs" / "mag-retrain" / "checkpoint.pt",
                       weights_only=True)["model"]
    weight = state["classifier.weight_orig"] * state["classifier.weight_mask"]
    assert (weight == 0).float().mean() == 0.5
    # a second prune into the same folder is refused: the first one's files stay
    masks = (out / "masks.pt").read_bytes()
    assert main(["prune", "--method", "magnitude", "--from", str(trained / "runs" / "base"),
                 "--method-arg", "sparsity=0.9", "--out", str(out)]) == 2
    assert "does not overwrite" in capsys.readouterr().err
    assert (out / "masks.pt").read_bytes() == masks


def test_mint_and_snacs_from_checkpoint_and_weights(trained, tmp_path, capsys):
    ckpt = trained / "runs" / "base" / "checkpoint.pt"
    assert main(["prune", "--method", "mint", "--from", str(ckpt), "--out", str(tmp_path / "m"),
                 "--method-arg", "per_class=20", "--method-arg", "groups=8",
                 "--method-arg", "gamma=0.5", "--no-eval"]) == 0
    report = json.loads((tmp_path / "m" / "prune.json").read_text())
    assert report["layers"]["classifier"]["groups"] == [10, 8]
    assert report["settings"]["groups"] == 8 and report["time_s"] > 0
    weights = tmp_path / "m" / "weights.pt"
    assert main(["prune", "--method", "snacs", "--from", str(weights), "--workload",
                 "digits-mlp", "--out", str(tmp_path / "s"), "--method-arg", "per_class=20",
                 "--method-arg", "svm_step=20", "--method-arg", "tau=0.3"]) == 0
    report = json.loads((tmp_path / "s" / "prune.json").read_text())
    assert report["method"] == "snacs" and "theta" in report["settings"]
    capsys.readouterr()


@pytest.mark.parametrize("args,message", [
    (["--from", "{root}/nothing"], "not found"),
    (["--from", "{root}/runs"], "no checkpoint.pt"),
    (["--from", "{root}/runs/base", "--method-arg", "delta=2"], "delta"),
    (["--from", "{root}/runs/base", "--method-arg", "groups=3"], "do not divide"),
    (["--from", "{root}/runs/base", "--method-arg", "per_class=1000"], "fewer than the 1000"),
    (["--from", "{root}/runs/base", "--method-arg", "tau=0.5"], "unknown mint option"),
    (["--from", "{root}/runs/base", "--model", "cnn"], "trained model 'mlp', but --model"),
    # a digits run pruned "as" fmnist-cnn would retrain the digits model on Fashion-MNIST
    (["--from", "{root}/runs/base", "--workload", "fmnist-cnn"],
     "trained dataset 'digits', but --workload fmnist-cnn names 'fashion-mnist'"),
])
def test_clear_errors(trained, tmp_path, capsys, args, message):
    args = [a.format(root=trained) for a in args]
    assert main(["prune", "--method", "mint", "--out", str(tmp_path / "x"), *args]) == 2
    assert message in capsys.readouterr().err


def test_weights_file_needs_a_workload(trained, tmp_path, capsys):
    state = torch.load(trained / "runs" / "base" / "checkpoint.pt", weights_only=True)["model"]
    torch.save(state, tmp_path / "w.pt")
    assert main(["prune", "--method", "random", "--from", str(tmp_path / "w.pt"),
                 "--method-arg", "sparsity=0.2", "--out", str(tmp_path / "r")]) == 2
    assert "add --workload" in capsys.readouterr().err


@pytest.mark.parametrize("value,message", [
    ("fc2", "cannot skip fc2"),  # one name: not split into letters
    ("2", "cannot skip 2"),  # a number is a name too (no TypeError traceback)
    ("[classifier, fc9]", "cannot skip fc9"),
    ("{a: 1}", "is not a layer name; write skip=NAME or skip=[NAME1,NAME2]"),
])
def test_skip_takes_one_name_or_a_list(trained, tmp_path, capsys, value, message):
    assert main(["prune", "--method", "mint", "--from", str(trained / "runs" / "base"),
                 "--out", str(tmp_path / "x"), "--method-arg", f"skip={value}",
                 "--no-eval"]) == 2
    assert message in capsys.readouterr().err


def test_skip_and_per_layer_values_from_the_command_line(trained, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["prune", "--method", "random", "--from", str(trained / "runs" / "base"),
                 "--method-arg", "sparsity=0.5", "--method-arg", "skip=classifier",
                 "--out", str(out), "--no-eval"]) == 0
    report = json.loads((out / "prune.json").read_text())
    assert report["layers"] == {} and report["settings"]["skip"] == ["classifier"]
    for arg, message in (("gamma=classifier:0.5", "gamma=NUMBER or gamma={LAYER: NUMBER"),
                         ("groups=2.5", "groups must be an integer"),
                         ("per_class=many", "per_class must be an integer")):
        method = "mint" if arg.startswith(("groups", "per_class")) else "snacs"
        assert main(["prune", "--method", method, "--from", str(trained / "runs" / "base"),
                     "--out", str(tmp_path / "y"), "--method-arg", arg, "--no-eval"]) == 2
        assert message in capsys.readouterr().err
    capsys.readouterr()


def test_methods_lists_the_pruning_methods(capsys):
    assert main(["methods"]) == 0
    text = capsys.readouterr().out
    assert "thrifty prune --method NAME" in text
    for name in ("mint", "snacs", "magnitude", "random"):
        assert any(line.strip().startswith(name) for line in text.splitlines())


def test_model_args_travel_from_the_run_to_the_retrain_command(tmp_path, monkeypatch, capsys):
    from thrifty.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["train", "--workload", "digits-mlp", "--epochs", "1", "--no-progress",
                 "--model-arg", "hidden=[24,12]", "--run-name", "deep"]) == 0
    assert main(["prune", "--method", "magnitude", "--from", "runs/deep", "--out", "p",
                 "--method-arg", "sparsity=0.5", "--no-eval", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "--model-arg 'hidden=[24,12]'" in out  # quoted: brackets are a shell glob
    command = shlex.split(out.split("retrain once:")[1].strip().splitlines()[0])
    assert command[command.index("--model-arg") + 1] == "hidden=[24,12]"
    assert main(["train", *command[2:], "--epochs", "1", "--no-progress"]) == 0


def test_unknown_pruner_lists_the_pruners_of_the_registry(tmp_path, capsys):
    from thrifty.methods import available_methods

    pruners = ", ".join(available_methods(("pruner",)))
    assert pruners == "magnitude, mint, random, snacs"
    # refused before the source is read (it does not exist) or anything is written
    assert main(["prune", "--method", "nope", "--from", str(tmp_path / "missing"),
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert f"unknown pruner 'nope'; available pruners: {pruners}" in err
    assert main(["prune", "--method", "rpc", "--from", str(tmp_path / "missing"),
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "'rpc' is a reducer" in err and f"available pruners: {pruners}" in err
    assert not (tmp_path / "x").exists()


def test_options_are_checked_by_the_types_of_the_pruner_signature(tmp_path, capsys):
    from thrifty.pruning.command import coerce_option

    assert coerce_option("snacs", "gamma", {"fc1": 1}) == {"fc1": 1.0}
    assert coerce_option("mint", "groups", {2: 4}) == {"2": 4}
    assert coerce_option("magnitude", "match", tmp_path) == str(tmp_path)
    assert coerce_option("random", "sparsity", None) is None
    assert coerce_option("snacs", "cells", 3) == 3 and coerce_option("mint", "delta", 1) == 1.0
    for method, key, value, message in (
            ("mint", "gamma", {"fc1": 0.5}, "mint's gamma is one value for every layer "
             "(gamma=VALUE), not a mapping per layer; per-layer gamma is an option of snacs"),
            ("snacs", "empty_cells", "yes", "empty_cells must be true or false"),
            ("snacs", "phi", 2, "phi must be a name"),
            ("magnitude", "match", 5, "match must be a path"),
            ("snacs", "repeats", 1.5, "repeats must be an integer")):
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            coerce_option(method, key, value)
    # bad options are refused before the source is read
    assert main(["prune", "--method", "magnitude", "--from", str(tmp_path / "missing"),
                 "--out", str(tmp_path / "x"), "--method-arg", "sparsity=2"]) == 2
    assert "sparsity must be in [0.0, 1.0]" in capsys.readouterr().err


def test_a_run_of_your_own_workload_is_pruned_and_retrained(tmp_path, capsys):
    """A factory run: data and model from its file, the retrain command names the factory."""
    from pathlib import Path

    factory = f"{Path(__file__).parents[1] / 'bench' / 'user_workload.py'}:tiny"
    runs = tmp_path / "runs"
    assert main(["train", "--workload", factory, "--out-dir", str(runs),
                 "--run-name", "base"]) == 0
    trained = json.loads((runs / "base" / "result.json").read_text())["final"]
    out = tmp_path / "mint"
    assert main(["prune", "--method", "mint", "--from", str(runs / "base"), "--method-arg",
                 "per_class=10", "--method-arg", "groups=8", "--out", str(out),
                 "--no-progress"]) == 0
    report = json.loads((out / "prune.json").read_text())
    # MINT prunes the child of each pair of layers: the classifier "2" here
    assert report["workload"] == factory and list(report["layers"]) == ["2"]
    # the trained weights on the factory's test set, not fresh ones
    assert report["test_accuracy"]["unpruned"] == pytest.approx(trained["test_accuracy"])
    retrain = report["retrain"].split()[2:]
    assert retrain[:2] == ["--workload", factory] and "--model" not in retrain
    assert main(["train", *retrain, "--epochs", "1", "--out-dir", str(runs)]) == 0
    state = torch.load(runs / "mint-retrain" / "checkpoint.pt", weights_only=True)["model"]
    kept = (state["2.weight_orig"] * state["2.weight_mask"] != 0).float().mean()
    assert float(kept) == pytest.approx(1 - report["layers"]["2"]["pruned_share"])
    # a bare weights file with the factory named; a preset's options refused beside it
    assert main(["prune", "--method", "magnitude", "--from", str(out / "weights.pt"),
                 "--workload", factory, "--method-arg", "sparsity=0.5",
                 "--out", str(tmp_path / "mag")]) == 0
    capsys.readouterr()
    for extra, message in ((["--dataset", "digits"], "--dataset given for a run of your own "
                             "workload"),
                            (["--workload", "digits-mlp"], "but --workload names 'digits-mlp'")):
        assert main(["prune", "--method", "magnitude", "--from", str(runs / "base"), *extra,
                     "--method-arg", "sparsity=0.5", "--out", str(tmp_path / "x")]) == 2
        assert message in capsys.readouterr().err
    # the factory's file moved: named in the error, and --workload points to it again
    moved = tmp_path / "moved.py"
    moved.write_text(Path(factory.rpartition(":")[0]).read_text())
    config = torch.load(runs / "base" / "checkpoint.pt", weights_only=True)
    config["config"]["workload"] = str(tmp_path / "gone.py:tiny")
    torch.save(config, tmp_path / "old.pt")
    args = ["prune", "--method", "magnitude", "--from", str(tmp_path / "old.pt"),
            "--method-arg", "sparsity=0.5", "--no-eval"]
    assert main([*args, "--out", str(tmp_path / "y")]) == 2
    assert "factory file " + str(tmp_path / "gone.py") + " is gone: give --workload" \
        in capsys.readouterr().err
    assert main([*args, "--workload", f"{moved}:tiny", "--out", str(tmp_path / "y")]) == 0
    assert json.loads((tmp_path / "y" / "prune.json").read_text())["workload"] == \
        f"{moved}:tiny"
