"""Budget baselines (train for less, schedule fully decayed) and the equal-time frontier in
the benchmark: spec, pairing, sharing, resume, table cells and the report's line."""

from __future__ import annotations

import json

import pytest

from thrifty.bench import load_bench_spec, plan, run_bench
from thrifty.bench.report import plot_keys, write_report
from thrifty.bench.runner import summarize
from thrifty.bench.spec import budget_options, check_budgets
from thrifty.bench.table import BELOW, to_compact_text
from thrifty.cli import main
from thrifty.engine import make_config
from thrifty.metrics.frontier import gain_over_frontier

QUIET = {"log": lambda s: None}


def test_budget_options_shorten_every_schedule():
    cos = make_config({"workload": "digits-mlp", "epochs": 8})
    assert budget_options(cos, 0.5) == {"epochs": 4}
    assert budget_options(cos, 0.01) == {"epochs": 1}  # at least one epoch
    assert budget_options(cos, 0.95) is None  # rounds to the full run
    step = make_config({"workload": "digits-mlp", "epochs": 8, "schedule": "step",
                        "step_size": 4})
    assert budget_options(step, 0.25) == {"epochs": 2, "step_size": 1}
    multi = make_config({"workload": "digits-mlp", "epochs": 200, "schedule": "multistep",
                         "milestones": [60, 120, 160]})
    assert budget_options(multi, 0.5) == {"epochs": 100, "milestones": [30, 60, 80]}
    exp = make_config({"workload": "digits-mlp", "epochs": 10, "schedule": "exponential",
                       "gamma": 0.9})
    opts = budget_options(exp, 0.5)
    assert opts["epochs"] == 5 and opts["gamma"] ** 5 == pytest.approx(0.9 ** 10)


def test_budgets_are_on_by_default_checked_and_can_be_turned_off(tmp_path):
    base = {"workload": "digits-mlp", "epochs": 4, "progress": False}
    spec = load_bench_spec(overrides=base, seeds=[0], methods=["rpc alpha=0.5"],
                           out_dir=str(tmp_path))
    assert [r.label for r in spec.runs] == [
        "baseline", "baseline 25% (1 ep)", "baseline 50% (2 ep)", "baseline 75% (3 ep)",
        "rpc alpha=0.5"]
    assert spec.baseline_of()["baseline 50% (2 ep)"] == "baseline"
    assert spec.frontier_of() == {"rpc alpha=0.5": [r.label for r in spec.runs[1:4]]}
    assert spec.config(spec.runs[2], 0).epochs == 2
    off = load_bench_spec(overrides=base, seeds=[0], methods=["rpc alpha=0.5"],
                          out_dir=str(tmp_path), budgets="none")
    assert [r.label for r in off.runs] == ["baseline", "rpc alpha=0.5"]
    assert check_budgets([0.5, 0.25, 0.5]) == [0.25, 0.5] and check_budgets(None) == []
    for bad in ([0], [1.0], [1.5], ["half"], [True]):
        with pytest.raises(ValueError, match=r"in \(0, 1\)"):
            check_budgets(bad)


def test_one_budget_run_is_shared_by_groups_with_the_same_recipe(tmp_path):
    f = tmp_path / "grid.yaml"
    f.write_text("workload: digits-mlp\nepochs: 4\nbudgets: [0.5]\n"
                 "grid:\n  - method: sb\n    options: {forward_batch_size: [64, 128]}\n"
                 "  - method: sb\n    options: {batch_size: [32]}\n")
    spec = load_bench_spec(f, seeds=[0], out_dir=str(tmp_path / "b"))
    budget_runs = [r for r in spec.runs if r.budget is not None]
    # forward_batch_size does not change a run without methods: one budget run for both
    # of its groups; batch_size does: the third group gets its own
    assert len(budget_runs) == 2
    front = spec.frontier_of()
    assert front["forward_batch_size=64 | sb"] == front["forward_batch_size=128 | sb"]
    assert front["batch_size=32 | sb"] != front["forward_batch_size=64 | sb"]


def test_interleaved_per_seed_and_resumed_without_rerunning(tmp_path):
    spec = load_bench_spec(overrides={"workload": "digits-mlp", "epochs": 2,
                                      "progress": False},
                           seeds=[0, 1], methods=["rpc alpha=0.5"],
                           out_dir=str(tmp_path / "b"), budgets=[0.5])
    assert [(r.label, s) for r, s in plan(spec)] == [
        ("baseline", 0), ("baseline 50% (1 ep)", 0), ("rpc alpha=0.5", 0),
        ("baseline", 1), ("baseline 50% (1 ep)", 1), ("rpc alpha=0.5", 1)]
    run_bench(spec, log=lambda s: None, trainer_kwargs=QUIET)
    lines = []
    run_bench(spec, log=lines.append, trainer_kwargs=QUIET)
    assert sum("finished earlier, skipped" in line for line in lines) == 6
    runs = tmp_path / "b" / "runs"
    budget = json.loads((runs / "baseline_50_1_ep-s1" / "result.json").read_text())
    assert len(budget["epochs"]) == 1 and budget["config"]["seed"] == 1
    # the table's gain equals the frontier computed by hand from the stored runs, per seed
    rows = {r["label"]: r for r in summarize(spec)}
    gains = []
    for seed in (0, 1):
        res = {n: json.loads((runs / f"{n}-s{seed}" / "result.json").read_text())
               for n in ("baseline", "baseline_50_1_ep", "rpc_alpha=0.5")}
        gains.append(gain_over_frontier(res["rpc_alpha=0.5"],
                                        [res["baseline"], res["baseline_50_1_ep"]]))
    cell = rows["rpc alpha=0.5"]["gain_vs_equal_time_pp"]
    if None in gains:
        assert cell.startswith(BELOW)
    else:
        assert cell == pytest.approx(sum(gains) / 2)
    assert isinstance(rows["rpc alpha=0.5"]["gain_vs_equal_cost_pp"], (float, str))
    csv = (tmp_path / "b" / "table.csv").read_text().splitlines()[0]
    assert "gain_vs_equal_time_pp" in csv and "gain_vs_equal_cost_pp" in csv
    text = to_compact_text(list(rows.values()))
    assert max(len(line) for line in text.splitlines()) <= 100 and "vs equal time" in text
    # the report draws the frontier and lists the plot keys
    md = write_report(tmp_path / "b")["markdown"].read_text()
    assert "equal-time frontier" in md and "| B50 | baseline 50% (1 ep) |" in md


def test_plot_keys_are_short_and_unique():
    labels = ["baseline", "baseline 50% (4 ep)", "rpc alpha=0.8", "sb", "x" * 80]
    keys = plot_keys(labels, {"baseline 50% (4 ep)": 0.5})
    assert keys == {"baseline": "B", "baseline 50% (4 ep)": "B50", "rpc alpha=0.8": "1",
                    "sb": "2", "x" * 80: "3"}


def test_cli_budgets_option(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["bench", "--workload", "digits-mlp", "--epochs", "2", "--no-progress",
                 "--method", "rpc alpha=0.5", "--budgets", "0.5", "--compact",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "baseline 50% (1 ep)" in printed and "vs equal time" in printed
    spec = json.loads((out / "spec.json").read_text())
    assert spec["budgets"] == [0.5]
    assert main(["bench", "--workload", "digits-mlp", "--budgets", "half",
                 "--out", str(out)]) == 2
    assert "--budgets takes numbers" in capsys.readouterr().err


def test_groups_whose_options_leave_the_baseline_unchanged_share_one_baseline(tmp_path):
    f = tmp_path / "grid.yaml"
    f.write_text("workload: digits-mlp\nepochs: 2\nbudgets: none\nruns: [sb]\n"
                 "grid:\n  - method: sb\n    options: {selection_amp: [bf16],"
                 " forward_batch_size: [64, 128]}\n"
                 "  - method: sb\n    options: {batch_size: [32]}\n")
    spec = load_bench_spec(f, seeds=[0], out_dir=str(tmp_path / "b"))
    baselines = [r.label for r in spec.runs if not r.method]
    # selection_amp and forward_batch_size do not change a run without methods: both
    # groups pair with the plain baseline; batch_size does: its group trains its own
    assert baselines == ["baseline", "batch_size=32 | baseline"]
    pair = spec.baseline_of()
    assert pair["forward_batch_size=64 selection_amp=bf16 | sb"] == "baseline"
    assert pair["forward_batch_size=128 selection_amp=bf16 | sb"] == "baseline"
    assert pair["sb"] == "baseline"
    assert pair["batch_size=32 | sb"] == "batch_size=32 | baseline"
    assert [r.label for r, _ in plan(spec)][0] == "baseline"  # first in the seed's round
