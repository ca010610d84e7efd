import json

import pytest

from thrifty.bench import (
    BASELINE,
    compute_rows,
    load_bench_spec,
    parse_method_string,
    plan,
    run_bench,
    to_markdown,
)
from thrifty.bench.runner import summarize
from thrifty.cli import main


def spec_for(tmp_path, methods, seeds=(0, 1), budgets=None, **base):
    """A digits benchmark; without budget baselines unless ``budgets`` is given."""
    return load_bench_spec(overrides={"workload": "digits-mlp", "epochs": 2,
                                      "progress": False, **base},
                           seeds=list(seeds), methods=methods, out_dir=str(tmp_path / "b"),
                           budgets=budgets)


def test_method_strings():
    r = parse_method_string("rpc+adonis rpc.alpha=0.8 theta=0.1")
    assert r.method == ["rpc", "adonis"] and r.method_args == {"rpc.alpha": 0.8, "theta": 0.1}
    assert parse_method_string("easy:rpc alpha=0.5").label == "easy"
    spaced = parse_method_string("fixed 0.3: random-adaptive ratio=0.3")
    assert spaced.label == "fixed 0.3" and spaced.method == ["random-adaptive"]
    # a label holding "=" (a run's old name, kept while its arguments change)
    kept = parse_method_string("adonis eta=3: adonis eta=3 clip=remove")
    assert kept.label == "adonis eta=3" and kept.method_args == {"eta": 3, "clip": "remove"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_method_string("rpc alpha")


def test_plan_interleaves_seeds_with_baseline_first(tmp_path):
    spec = spec_for(tmp_path, ["rpc alpha=0.5", "rpd alpha=0.5"])
    order = [(r.label, s) for r, s in plan(spec)]
    assert order == [(BASELINE, 0), ("rpc alpha=0.5", 0), ("rpd alpha=0.5", 0),
                     (BASELINE, 1), ("rpc alpha=0.5", 1), ("rpd alpha=0.5", 1)]
    with pytest.raises(ValueError, match="duplicate"):
        spec_for(tmp_path, ["rpc", "rpc"])


def test_failing_run_is_isolated_and_finished_runs_are_skipped(tmp_path):
    # fails at run time (CAPER's tau is an epoch of the run, checked when the run starts);
    # a bad value a constructor refuses is caught before any run instead (see below)
    spec = spec_for(tmp_path, ["rpc alpha=0.5", "bad:caper tau=5"], seeds=[0])
    logs: list[str] = []
    out = run_bench(spec, log=logs.append, trainer_kwargs={"log": lambda s: None})
    res = out["results"]
    assert res[BASELINE][0]["status"] == "finished"
    assert res["rpc alpha=0.5"][0]["status"] == "finished"
    assert res["bad"][0]["status"] == "failed" and "tau" in res["bad"][0]["error"]
    stamp = (tmp_path / "b" / "runs" / "baseline-s0" / "result.json").stat().st_mtime_ns
    logs.clear()
    run_bench(spec, log=logs.append, trainer_kwargs={"log": lambda s: None})
    assert sum("skipped" in line for line in logs) == 2  # baseline and rpc
    assert any("bad seed 0" in line for line in logs)  # the failed one is retried
    assert (tmp_path / "b" / "runs" / "baseline-s0" / "result.json").stat().st_mtime_ns == stamp
    rows = summarize(spec)
    assert [r["label"] for r in rows] == [BASELINE, "rpc alpha=0.5", "bad"]
    assert rows[2]["seeds"] == 0
    assert (tmp_path / "b" / "table.md").read_text().startswith("| method")


def test_interrupted_run_is_resumed(tmp_path):
    spec = spec_for(tmp_path, [], seeds=[0])
    from thrifty.engine import TrainingInterrupted

    with pytest.raises(TrainingInterrupted):
        run_bench(spec, log=lambda s: None, trainer_kwargs={
            "log": lambda s: None, "on_batch_end": lambda t: t.request_stop()})
    folder = tmp_path / "b" / "runs" / "baseline-s0"
    assert json.loads((folder / "result.json").read_text())["status"] == "interrupted"
    logs: list[str] = []
    out = run_bench(spec, log=logs.append, trainer_kwargs={"log": logs.append})
    assert out["results"][BASELINE][0]["status"] == "finished"
    assert any("resuming" in line for line in logs)


def fake(accs, times, trained, forwarded=0):
    epochs = [{"test_accuracy": a, "train_time": t, "samples_trained": trained,
               "samples_forwarded": forwarded, "samples_loaded": trained, "optimizer_steps": 2,
               "time": {"selection_logic": 0.0}} for a, t in zip(accs, times)]
    return {"status": "finished", "epochs": epochs,
            "final": {"prep_time": 1.0, "test_loss": {"q0.9": 0.5, "worst": 3.0}}}


def test_table_arithmetic_by_hand():
    results = {
        BASELINE: {0: fake([0.80, 0.90], [10, 10], 100), 1: fake([0.82, 0.92], [10, 10], 100)},
        "m": {0: fake([0.86, 0.88], [5, 5], 50, 100), 1: fake([0.80, 0.86], [4, 6], 50, 100)},
    }
    rows = compute_rows(results, {"forward_cost": 1.0, "train_cost": 2.0})
    base, meth = rows
    assert base["train_boost"] == pytest.approx(1.0) and base["drop"] == pytest.approx(0.0)
    assert meth["acc"] == pytest.approx(87.0) and meth["drop"] == pytest.approx(4.0)
    assert meth["drop_std"] == pytest.approx(2.8284271, rel=1e-6)  # drops 2 and 6 p.p.
    assert meth["train_boost"] == pytest.approx(2.0)
    assert meth["e2e_boost"] == pytest.approx(20 / 11)
    # 1 p.p. targets 0.89 / 0.91: never reached by either seed
    assert meth["boost_1pp"] == "never (2/2)"
    # 5 p.p. targets 0.85 / 0.87: seed 0 at 5 s vs 20 s -> 4; seed 1 never
    assert meth["boost_5pp"] == "never (1/2)"
    ideal = (200 * 2) / (200 * 1 + 100 * 2)
    assert meth["ideal_boost"] == pytest.approx(ideal)
    assert meth["efficiency"] == pytest.approx(2.0 / ideal)
    # half the samples trained, but as many forwards: as much reference work as the
    # baseline, so no boost is credited
    assert ideal == 1.0 and meth["note"] == "no saving"
    assert "never (2/2)" not in to_markdown(rows) and "no saving" in to_markdown(rows)
    rows = compute_rows(results, {"forward_cost": 1.0, "train_cost": 3.0})  # a saving
    assert "note" not in rows[1] and "never (2/2)" in to_markdown(rows)


def test_bench_cli_prints_table(tmp_path, capsys):
    rc = main(["bench", "--workload", "digits-mlp", "--epochs", "1", "--seeds", "0",
               "--method", "rpc alpha=0.5", "--out", str(tmp_path / "b"), "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "train boost" in out and "rpc alpha=0.5" in out
    assert (tmp_path / "b" / "table.csv").read_text().count("\n") == 3


def test_grid_expansion_and_baseline_twins(tmp_path):
    f = tmp_path / "grid.yaml"
    f.write_text(
        "workload: digits-mlp\nepochs: 1\nseeds: [0, 1]\n"
        "grid:\n"
        "  - method: rpc\n    args: {alpha: [0.5, 0.8]}\n    options: {batch_size: [32, 64]}\n")
    spec = load_bench_spec(f)
    labels = [r.label for r in spec.runs]
    assert labels == [
        "batch_size=32 | baseline", "batch_size=32 | rpc alpha=0.5",
        "batch_size=32 | rpc alpha=0.8",
        "batch_size=64 | baseline", "batch_size=64 | rpc alpha=0.5",
        "batch_size=64 | rpc alpha=0.8"]
    pairs = spec.baseline_of()
    assert pairs["batch_size=64 | rpc alpha=0.8"] == "batch_size=64 | baseline"
    cfg = spec.config(spec.runs[2], seed=1)
    assert cfg.batch_size == 32 and cfg.method_args == {"alpha": 0.8} and cfg.seed == 1
    twin = spec.config(spec.runs[3], 0)
    assert twin.batch_size == 64 and twin.method == []
    assert len(plan(spec)) == 12
    with pytest.raises(ValueError, match="grid entries take"):
        from thrifty.bench.spec import expand_grid

        expand_grid({"method": "rpc", "alpha": [1]})


def test_grid_pairs_with_own_baseline():
    results = {
        "g=1 | baseline": {0: fake([0.9], [10], 100)},
        "g=1 | m": {0: fake([0.9], [5], 50)},
        "g=2 | baseline": {0: fake([0.8], [20], 100)},
        "g=2 | m": {0: fake([0.7], [5], 50)},
    }
    base = {"g=1 | m": "g=1 | baseline", "g=2 | m": "g=2 | baseline",
            "g=1 | baseline": "g=1 | baseline", "g=2 | baseline": "g=2 | baseline"}
    rows = {r["label"]: r for r in compute_rows(results, None, base)}
    assert rows["g=1 | m"]["train_boost"] == pytest.approx(2.0)
    assert rows["g=2 | m"]["train_boost"] == pytest.approx(4.0)
    assert rows["g=2 | m"]["drop"] == pytest.approx(10.0)


def test_every_configuration_is_checked_before_the_first_run(tmp_path):
    spec = spec_for(tmp_path, ["rpc alpha=0.5", "bad:rpc alpha=7", "nope"], seeds=[0])
    with pytest.raises(ValueError, match=r"(?s)'bad': .*alpha.*'nope': unknown method"):
        run_bench(spec, log=lambda s: None)
    assert not (tmp_path / "b" / "runs").exists()  # nothing trained


def test_bench_exits_non_zero_listing_the_failed_runs(tmp_path, capsys):
    assert main(["bench", "--workload", "digits-mlp", "--epochs", "2", "--no-progress",
                 "--budgets", "none", "--method", "bad:caper tau=5",
                 "--out", str(tmp_path / "f")]) == 1
    assert "1 run(s) failed" in capsys.readouterr().err


def test_calibration_on_a_training_set_smaller_than_its_batches(tiny_config):
    from thrifty.bench.calibrate import calibrate

    # 100 samples at batch 64: one full batch, visited again for 3 warm-up + 12 measured
    cal = calibrate(tiny_config(train_limit=100))
    assert cal["batches"] == 12 and cal["forward_cost"] > 0 and cal["train_cost"] > 0
