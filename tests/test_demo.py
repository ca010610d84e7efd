"""`thrifty demo` (the README's main command), on a tiny fake Fashion-MNIST."""

from __future__ import annotations

import json

from tests.data.test_datasets import fake_fmnist
from thrifty.cli import main


def test_demo_runs_the_baseline_its_half_budget_and_the_methods(tmp_path, monkeypatch,
                                                                  capsys):
    fake_fmnist(tmp_path / "fm", n_train=400, n_test=50)
    monkeypatch.setenv("THRIFTY_DATA", str(tmp_path / "fm"))
    out = tmp_path / "demo"
    assert main(["demo", "--epochs", "2", "--train-limit", "200", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "a fixed random 200 of the 60k training samples" in text
    for label in ("baseline 50% (1 ep)", "infobatch", "stale-sb", "fast"):
        assert label in text  # the compact table
    fast = json.loads((out / "runs" / "fast-s0" / "result.json").read_text())
    assert fast["config"]["method"] == ["infobatch"]  # the recipe, expanded
    assert fast["config"]["epochs"] == 1  # half of the demo's 2
    assert "vs equal time" in text and (out / "report.html").is_file()
    base = json.loads((out / "runs" / "baseline-s0" / "result.json").read_text())
    assert base["config"]["train_limit"] == 200
    assert base["final"]["samples_trained"] == 2 * 200
    budget = json.loads((out / "runs" / "baseline_50_1_ep-s0" / "result.json").read_text())
    assert len(budget["epochs"]) == 1
    # InfoBatch cannot prune in 2 epochs: flagged, never credited with a boost
    row = next(line for line in text.splitlines() if line.startswith("infobatch "))
    assert "no saving" in row
    assert "# What to run: fmnist-cnn" in text and (out / "plan.md").is_file()
