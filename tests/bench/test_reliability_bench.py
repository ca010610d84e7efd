"""A benchmark never shows another run's result and never deletes what thrifty did not
write: stored runs of another configuration are refused before any work; a run folder
with a valid checkpoint is resumed whatever its status; a failed attempt is kept aside;
`thrifty demo --fresh` validates first and clears only a benchmark folder's own files."""

from __future__ import annotations

import json

import pytest

from thrifty.bench import BASELINE, load_bench_spec, run_bench
from thrifty.bench.runner import clear_bench
from thrifty.cli import main
from thrifty.engine import TrainingInterrupted

QUIET = {"log": lambda s: None}


def _spec(tmp_path, epochs=1, methods=()):
    return load_bench_spec(overrides={"workload": "digits-mlp", "epochs": epochs,
                                      "progress": False, "train_limit": 300},
                           seeds=[0], methods=list(methods), out_dir=str(tmp_path / "b"),
                           budgets=None)


def test_runs_of_another_configuration_are_refused_before_any_work(tmp_path):
    run_bench(_spec(tmp_path, epochs=1), log=lambda s: None, trainer_kwargs=QUIET)
    logs: list[str] = []
    with pytest.raises(ValueError, match=r"another configuration \(epochs 1 \(now 2\)\)"):
        run_bench(_spec(tmp_path, epochs=2), log=logs.append, trainer_kwargs=QUIET)
    assert not any("seed 0" in line for line in logs)  # nothing ran


def test_runs_stored_before_an_option_existed_are_reused(tmp_path):
    import json

    from thrifty.bench.runner import same_run

    stored = {"epochs": 2, "lr": 0.05}  # written before `attack` existed
    assert same_run(stored, {"epochs": 2, "lr": 0.05, "attack": "none"}) == []
    assert same_run(stored, {"epochs": 2, "lr": 0.05, "attack": "pgd"}) == ["attack"]
    spec = _spec(tmp_path, epochs=1)
    run_bench(spec, log=lambda s: None, trainer_kwargs=QUIET)
    result = tmp_path / "b" / "runs" / "baseline-s0" / "result.json"
    data = json.loads(result.read_text())
    del data["config"]["attack"]
    result.write_text(json.dumps(data))
    logs: list[str] = []
    run_bench(_spec(tmp_path, epochs=1), log=logs.append, trainer_kwargs=QUIET)
    assert any("finished earlier, skipped" in line for line in logs)


def test_a_checkpoint_is_resumed_whatever_the_status_and_failures_are_kept(tmp_path):
    spec = _spec(tmp_path, epochs=2)
    with pytest.raises(TrainingInterrupted):
        run_bench(spec, log=lambda s: None, trainer_kwargs={
            **QUIET, "on_batch_end": lambda t: t.request_stop()
            if t.ctx.epoch == 1 else None})
    folder = tmp_path / "b" / "runs" / "baseline-s0"
    result = json.loads((folder / "result.json").read_text())
    result["status"] = "failed"  # a second Ctrl-C during the save recorded it so
    (folder / "result.json").write_text(json.dumps(result))
    logs: list[str] = []
    out = run_bench(spec, log=logs.append, trainer_kwargs={"log": logs.append})
    assert out["results"][BASELINE][0]["status"] == "finished"
    assert any("resuming" in line and "epoch 2" in line for line in logs)
    # a failed attempt without a checkpoint is set aside, not deleted
    (folder / "checkpoint.pt").unlink()
    result = json.loads((folder / "result.json").read_text())
    result["status"] = "failed"
    (folder / "result.json").write_text(json.dumps(result))
    (folder / "notes.txt").write_text("mine")
    run_bench(spec, log=logs.append, trainer_kwargs=QUIET)
    aside = folder.with_name("baseline-s0.failed-1")
    assert (aside / "notes.txt").read_text() == "mine"


def test_demo_fresh_validates_first_and_clears_only_a_benchmark(tmp_path, capsys):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    assert main(["demo", "--fresh", "--out", str(precious), "--epochs", "0"]) == 2
    assert "epochs must be at least 1" in capsys.readouterr().err
    assert (precious / "thesis.tex").is_file()
    with pytest.raises(ValueError, match="not a thrifty benchmark folder"):
        clear_bench(precious)
    run_bench(_spec(tmp_path), log=lambda s: None, trainer_kwargs=QUIET)
    bench = tmp_path / "b"
    (bench / "mine.txt").write_text("keep")
    (bench / "runs" / "stray").mkdir()
    kept = clear_bench(bench)
    assert sorted(p.name for p in kept) == ["mine.txt", "stray"]
    assert not (bench / "runs" / "baseline-s0").exists() and (bench / "mine.txt").is_file()
    assert not (bench / "spec.json").exists()


def test_the_report_skips_and_lists_an_unreadable_run(tmp_path):
    from thrifty.bench.report import write_report

    spec = _spec(tmp_path, methods=["rpc alpha=0.5"])
    run_bench(spec, log=lambda s: None, trainer_kwargs=QUIET)
    bad = tmp_path / "b" / "runs" / "rpc_alpha=0.5-s0" / "result.json"
    bad.write_text("{ not json")
    paths = write_report(tmp_path / "b")
    text = paths["markdown"].read_text()
    assert "Runs left out" in text and str(bad) in text
    assert BASELINE in text  # the readable runs are still reported
