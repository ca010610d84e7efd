"""Issue 25: a user's workload (FILE.py:FUNCTION) benchmarked like a preset; methods crossed
with budgets; the plan; configurations that did no less work flagged."""

import json
import math
from pathlib import Path

import pytest

from thrifty.bench import compute_rows, load_bench_spec, run_bench
from thrifty.bench.recommend import make_plan
from thrifty.bench.runner import summarize
from thrifty.bench.table import NO_SAVING, to_compact_text, to_markdown
from thrifty.cli import main

FACTORY = str(Path(__file__).with_name("user_workload.py"))
QUIET = {"log": lambda s: None}


def _spec(tmp_path, **kw):
    return load_bench_spec(overrides={"workload": f"{FACTORY}:tiny"}, seeds=[0, 1],
                           methods=["random-adaptive ratio=0.5"], out_dir=str(tmp_path / "b"),
                           budgets=[0.5], **kw)


def test_a_factory_is_benchmarked_end_to_end_with_table_gains_and_plan(tmp_path, capsys):
    assert main(["bench", "--workload", f"{FACTORY}:tiny", "--seeds", "0", "1", "--method",
                 "random-adaptive ratio=0.5", "--budgets", "0.5", "--method-budgets", "0.5",
                 "--out", str(tmp_path / "b"), "--no-progress", "--compact"]) == 0
    out = capsys.readouterr().out
    assert "random-adaptive ratio=0.5 @ 50% (2 ep)" in out and "baseline 50% (2 ep)" in out
    assert "# What to run" in out and "Best accuracy at each budget" in out
    table = (tmp_path / "b" / "table.md").read_text()
    assert "gain vs equal time" in table
    result = json.loads((tmp_path / "b" / "runs" / "baseline-s0" / "result.json").read_text())
    assert result["config"]["workload"] == f"{Path(FACTORY).resolve()}:tiny"
    assert result["config"]["lr"] == 0.1 and result["config"]["batch_size"] == 32  # options
    assert result["final"]["samples_trained"] == 4 * 320  # the factory's 320 samples
    assert (tmp_path / "b" / "plan.md").read_text().startswith("# What to run")


def test_the_seed_is_set_before_the_model_is_built(tmp_path):
    from thrifty.engine import Trainer, make_config

    def first_weight(seed, name):
        cfg = make_config({"workload": f"{FACTORY}:tiny", "seed": seed, "epochs": 1,
                           "out_dir": str(tmp_path), "run_name": name})
        return Trainer(cfg, **QUIET).model[0].weight.detach().clone()

    assert first_weight(3, "a").equal(first_weight(3, "b"))
    assert not first_weight(3, "c").equal(first_weight(4, "d"))


def test_a_killed_bench_of_a_user_workload_resumes(tmp_path):
    from thrifty.engine import TrainingInterrupted

    spec = _spec(tmp_path)
    with pytest.raises(TrainingInterrupted):
        run_bench(spec, log=lambda s: None, trainer_kwargs={
            **QUIET, "on_batch_end": lambda t: t.request_stop()})
    logs: list[str] = []
    out = run_bench(_spec(tmp_path), log=logs.append, trainer_kwargs={"log": logs.append})
    assert any("resuming" in line for line in logs)
    assert all(r["status"] == "finished" for by_seed in out["results"].values()
               for r in by_seed.values())


@pytest.mark.parametrize("function,message", [
    ("wrong_type", "the factory returned a dict, not a thrifty.Workload"),
    ("no_targets", "the factory raised TypeError: Workload train (Digits) has no `targets`"),
    ("bad_model", "the model fails on a batch of 2 training samples"),
    ("bad_option", "option 'lr' must be a number"),
    ("raises", "the factory raised OSError: the data folder is not mounted"),
    ("missing", "has no function 'missing'"),
])
def test_bad_factories_are_refused_in_one_line_naming_the_factory(tmp_path, capsys, function,
                                                                  message):
    assert main(["bench", "--workload", f"{FACTORY}:{function}", "--out",
                 str(tmp_path / "b"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert f"user_workload.py:{function}" in err
    assert not (tmp_path / "b" / "runs").exists()  # refused before any work


def test_a_workload_does_not_take_data_options_and_they_are_not_given_beside_it(tmp_path):
    with pytest.raises(ValueError, match="dataset given with the workload"):
        load_bench_spec(overrides={"workload": f"{FACTORY}:tiny", "dataset": "digits"})
    from thrifty import Workload

    class Labelled(list):
        targets = [0]

    with pytest.raises(ValueError, match="'model' is not a workload option"):
        Workload(Labelled([1]), Labelled([1]), lambda: None, options={"model": "cnn"})
    with pytest.raises(TypeError, match="map-style dataset"):
        Workload(iter([]), [1], lambda: None)


def test_method_budgets_pair_with_the_full_baseline_and_span_the_shorter_run(tmp_path):
    spec = load_bench_spec(overrides={"workload": "digits-mlp", "epochs": 8,
                                      "schedule": "multistep", "milestones": [4, 6]},
                           methods=["infobatch"], out_dir=str(tmp_path / "b"), budgets=[0.5],
                           method_budgets=[0.5, 0.75])
    runs = {r.label: r for r in spec.runs}
    short = runs["infobatch @ 50% (4 ep)"]
    assert short.method == ["infobatch"] and short.share == 0.5
    assert short.options == {"epochs": 4, "milestones": [2, 3]}  # the schedule spans 4 epochs
    assert spec.config(short, 0).epochs == 4
    assert spec.baseline_of()["infobatch @ 75% (6 ep)"] == "baseline"
    assert spec.frontier_of()["infobatch @ 50% (4 ep)"] == ["baseline 50% (4 ep)"]
    assert [r.label for r in spec.runs] == [
        "baseline", "baseline 50% (4 ep)", "infobatch", "infobatch @ 50% (4 ep)",
        "infobatch @ 75% (6 ep)"]
    # a recipe that already trains a share (fast: half) is shortened once more, not twice
    spec = load_bench_spec(overrides={"workload": "digits-mlp", "epochs": 8},
                           methods=["fast"], budgets="none", method_budgets=[0.5])
    short = next(r for r in spec.runs if r.label.startswith("fast @"))
    assert short.label == "fast @ 25% (2 ep)" and short.share == 0.25
    assert spec.config(short, 0).epochs == 2 and spec.config(short, 0).method == ["infobatch"]
    with pytest.raises(ValueError, match="method_budgets are shares of the epochs"):
        load_bench_spec(overrides={"workload": "digits-mlp"}, method_budgets=[1.5])
    with pytest.raises(ValueError, match="target_drop"):
        load_bench_spec(overrides={"workload": "digits-mlp"}, target_drop=-1)


def _run(acc, trained, time, epochs=4):
    per = [{"test_accuracy": acc, "train_time": time / epochs, "samples_trained":
            trained // epochs, "samples_forwarded": 0, "samples_loaded": trained // epochs,
            "optimizer_steps": 1, "time": {"selection_logic": 0.0}} for _ in range(epochs)]
    return {"status": "finished", "epochs": per,
            "final": {"prep_time": 0.0, "test_loss": {"q0.9": 0.5, "worst": 2.0}}}


def _constructed(tmp_path):
    """A benchmark whose results are written by hand: baseline 90 %, a 50 % budget run
    88 %, method A 89.8 % at half the work, method B 89.9 % at 0.8 of it, and C, which did
    as much work as the baseline (it could not prune)."""
    spec = load_bench_spec(overrides={"workload": "digits-mlp", "epochs": 4},
                           seeds=[0, 1], methods=["A: random-adaptive ratio=0.5",
                                                  "B: random-adaptive ratio=0.8",
                                                  "C: infobatch"],
                           out_dir=str(tmp_path), budgets=[0.5], target_drop=0.5)
    acc = {"baseline": (0.90, 4000, 40.0), "baseline 50% (2 ep)": (0.88, 2000, 20.0),
           "A": (0.898, 2000, 20.0), "B": (0.899, 3200, 32.0), "C": (0.905, 4000, 39.0)}
    results = {label: {s: _run(a + 0.001 * s, n, t, 2 if "50%" in label else 4)
                       for s in (0, 1)} for label, (a, n, t) in acc.items()}
    return spec, compute_rows(results, {"forward_cost": 1.0, "train_cost": 3.0},
                              spec.baseline_of(), spec.frontier_of())


def test_the_plan_chooses_the_cheapest_within_the_drop_and_says_who_beats_training_less(
        tmp_path):
    spec, rows = _constructed(tmp_path)
    text = make_plan(rows, spec)
    cheapest = text.split("## Cheapest within 0.5 p.p. of the baseline")[1].split("##")[0]
    assert "**A**" in cheapest and "2.00x less work" in cheapest  # B is within, but dearer
    assert "- **A** beats it by +1.80 ± 0.00 p.p." in text
    assert "| 25–50 % | A |" in text
    assert "C" in text.split("never credited with a boost")[1]
    assert "**C**" not in text  # did no less work: never chosen
    strict = make_plan(rows, spec, target_drop=0.05)  # only C is that close: not a saving
    assert "Nothing cheaper stays within 0.05 p.p." in strict


def test_training_less_is_a_legitimate_answer(tmp_path):
    spec, rows = _constructed(tmp_path)
    for r in rows:  # the methods fall to the budget run's accuracy: none beats it
        if r["label"] in ("A", "B"):
            r["gain_vs_equal_time_pp"], r["drop"] = -0.5, 2.5
            r["gain_vs_equal_cost_pp"] = -0.5
    text = make_plan(rows, spec, target_drop=2.0)
    assert "**baseline 50% (2 ep)**" in text and "no method beats simply training less" in text
    assert "No method beats training for fewer epochs beyond its spread" in text


def test_a_run_that_did_no_less_work_is_flagged_in_every_table_and_never_credited(tmp_path):
    spec, rows = _constructed(tmp_path)
    c = next(r for r in rows if r["label"] == "C")
    assert c["note"] == NO_SAVING and math.isclose(c["ideal_boost"], 1.0)
    compact = next(line for line in to_compact_text(rows).splitlines() if line.startswith("C "))
    assert NO_SAVING in compact and "1.03" not in compact  # measured 40/39 s, not credited
    md = next(line for line in to_markdown(rows).splitlines() if line.startswith("| C |"))
    assert md.count(NO_SAVING) >= 3
    a = next(r for r in rows if r["label"] == "A")
    assert "note" not in a


def test_summarize_writes_the_plan(tmp_path):
    spec = _spec(tmp_path)
    run_bench(spec, log=lambda s: None, trainer_kwargs=QUIET)
    summarize(spec)
    assert "Cheapest within 0.5 p.p." in (tmp_path / "b" / "plan.md").read_text()


def test_the_docs_example_runs_as_written(tmp_path, monkeypatch, capsys):
    import re
    import shlex

    import yaml

    page = (Path(__file__).parents[2] / "docs" / "your-workload.md").read_text()
    factory = re.search(r"```python\n(.*?)```", page, flags=re.S).group(1)
    command = re.search(r"```bash\n(thrifty bench.*?)```", page, flags=re.S).group(1)
    (tmp_path / "my_workload.py").write_text(factory)
    monkeypatch.chdir(tmp_path)
    argv = shlex.split(command.replace("\\\n", " "))
    assert argv[:2] == ["thrifty", "bench"]
    assert main([*argv[1:], "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "infobatch @ 50% (4 ep)" in out and "## Cheapest within 0.5 p.p." in out
    plan = (tmp_path / "bench" / "mine" / "plan.md").read_text()
    assert plan in out  # the terminal ends with the plan file's text
    # the bench file of the page describes the same benchmark as the command
    config = re.search(r"```yaml\n(.*?)```", page, flags=re.S).group(1)
    (tmp_path / "mine.yaml").write_text(config)
    data = yaml.safe_load(config)
    from_file = load_bench_spec(tmp_path / "mine.yaml")
    from_command = load_bench_spec(overrides={"workload": "my_workload.py:make_workload"},
                                   seeds=[0, 1],
                                   methods=["infobatch"], method_budgets=[0.5],
                                   out_dir="bench/mine")
    assert [r.label for r in from_file.runs] == [r.label for r in from_command.runs]
    assert data["method_budgets"] == from_file.method_budgets == [0.5]


def test_a_method_at_a_share_that_did_the_budget_runs_work_is_flagged():
    results = {"baseline": {s: _run(0.9, 4000, 40.0) for s in (0, 1)},
               "baseline 50% (2 ep)": {s: _run(0.88, 2000, 20.0, 2) for s in (0, 1)},
               "m @ 50% (2 ep)": {s: _run(0.88, 2000, 19.0, 2) for s in (0, 1)},  # no pruning
               "n @ 50% (2 ep)": {s: _run(0.88, 1500, 15.0, 2) for s in (0, 1)}}
    frontier = {"m @ 50% (2 ep)": ["baseline 50% (2 ep)"],
                "n @ 50% (2 ep)": ["baseline 50% (2 ep)"]}
    rows = {r["label"]: r for r in compute_rows(
        results, {"forward_cost": 1.0, "train_cost": 3.0},
        dict.fromkeys(results, "baseline"),
        frontier)}
    assert rows["m @ 50% (2 ep)"]["note"] == NO_SAVING  # 2x vs the full run, but that is
    assert "note" not in rows["n @ 50% (2 ep)"]  # all training less; n saves on top of it
