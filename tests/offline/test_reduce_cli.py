"""`thrifty reduce`: refusals before any work, and the class balance in every mode."""

import json

import pytest

from thrifty.cli import main


@pytest.fixture
def no_work(monkeypatch):
    """Record any dataset load or registry build (a refusal must come before both)."""
    calls = []
    monkeypatch.setattr("thrifty.engine.assembly.run_datasets",
                        lambda *a, **k: calls.append("load"))
    monkeypatch.setattr("thrifty.offline.inspect.build_registry",
                        lambda *a, **k: calls.append("build"))
    return calls


@pytest.mark.parametrize(("args", "message"), [
    (["--alpha", "0"], r"alpha \(the kept share\) must be in \(0, 1\]"),
    (["--alpha", "1.5"], r"alpha \(the kept share\) must be in \(0, 1\]"),
    (["--embedder", "pixels", "--weights", "w.pt"], "only used by --embedder torchvision"),
    (["--embedder", "torchvision"], "needs pretrained weights and no weights file was given"),
    (["--embedder", "torchvision", "--weights", "missing.pt"], "weights file not found"),
    (["--warmup-epochs", "0"], "warmup_epochs must be a positive integer"),
])
def test_reduce_refuses_bad_options_before_any_work(args, message, no_work, capsys, tmp_path):
    import re

    rc = main(["reduce", "--workload", "digits-mlp", "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert rc == 2 and re.search(message, err) and err.startswith("thrifty: error:")
    assert no_work == [] and not (tmp_path / "o").exists()


def test_reduce_refuses_an_unknown_mode(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["reduce", "--mode", "medium"])
    assert exc.value.code == 2 and "invalid choice: 'medium'" in capsys.readouterr().err


def test_reduce_single_prototype_still_prints_the_class_balance(tmp_path, capsys):
    out = tmp_path / "one"
    rc = main(["reduce", "--workload", "digits-mlp", "--embedder", "pixels", "--alpha", "0.5",
               "--single-prototype", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["groups"] == 1 and "one prototype for the whole dataset" in text
    assert len(summary["per_class"]) == 10 and "class   9" in text
    assert sum(v["before"] for v in summary["per_class"].values()) == summary["total"] == 1347
    assert sum(v["after"] for v in summary["per_class"].values()) == summary["kept"]
    assert "plot:" in text and "(one group)" in text


def test_reduce_takes_your_own_workload(tmp_path, capsys):
    """A factory's training set and model: the snapshot warm-up trains the factory's model."""
    from pathlib import Path

    factory = Path(__file__).parents[1] / "bench" / "user_workload.py"
    out = tmp_path / "mine"
    assert main(["reduce", "--workload", f"{factory}:tiny", "--warmup-epochs", "1",
                 "--alpha", "0.5", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total"] == 320 and summary["embedder"] == "snapshot"
    assert sum(v["before"] for v in summary["per_class"].values()) == 320
    assert summary["kept"] == sum(v["after"] for v in summary["per_class"].values()) < 320
    assert f"keeps {summary['kept']}" in capsys.readouterr().out
