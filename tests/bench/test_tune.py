"""thrifty tune: Optuna's multi-objective search over methods, hyper-parameters and budgets,
then the best re-run on more seeds (issue 25, item 4)."""

import csv
import json

import pytest

pytest.importorskip("optuna")

from thrifty.cli import main  # noqa: E402


def test_tune_runs_four_trials_on_digits_then_confirms_the_best(tmp_path, capsys):
    out = tmp_path / "t"
    argv = ["tune", "--workload", "digits-mlp", "--epochs", "2", "--trials", "4",
            "--methods", "random-adaptive", "infobatch", "--shares", "0.5", "1",
            "--confirm", "1", "--confirm-seeds", "0", "1", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    with open(out / "trials.csv") as f:
        trials = list(csv.DictReader(f))
    assert len(trials) == 4 and {t["method"] for t in trials} <= {"random-adaptive",
                                                                   "infobatch"}
    assert any(t["pareto"] == "True" for t in trials)
    assert all(0 < float(t["cost"]) <= 1.5 and 0 < float(t["accuracy"]) <= 100
               for t in trials)
    assert (out / "pareto.png").stat().st_size > 1000
    # every trial is a thrifty run with its own folder and the search seed
    runs = sorted((out / "trials").glob("trial-*/result.json"))
    assert len(runs) == 4
    assert all(json.loads(p.read_text())["config"]["seed"] == 0 for p in runs)
    # the best one re-run on seeds 0 and 1 with the baseline and its budget run; the plan
    plan = (out / "bench" / "plan.md").read_text()
    assert "# What to run" in plan and plan.rstrip() in text
    bench_runs = {p.name for p in (out / "bench" / "runs").iterdir()}
    assert {"baseline-s0", "baseline-s1", "baseline_50_1_ep-s1"} <= bench_runs
    # the same command again: the 4 trials are kept, nothing is searched again
    assert main(argv) == 0
    again = capsys.readouterr().out
    assert "trial 4" not in again and "search:" not in again
    assert len(list((out / "trials").glob("trial-*"))) == 4


def test_tune_refuses_bad_values_in_one_line(tmp_path, capsys):
    assert main(["tune", "--workload", "digits-mlp", "--methods", "nope", "--out",
                 str(tmp_path / "t")]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["tune", "--workload", "digits-mlp", "--shares", "1.5", "--out",
                 str(tmp_path / "t")]) == 2
    assert "shares are shares of the epochs in (0, 1]" in capsys.readouterr().err
