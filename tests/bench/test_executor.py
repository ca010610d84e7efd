"""thrifty bench --executor submitit: a 2-method x 2-seed digits grid through submitit's
local executor (one job per seed), and a killed grid that resumes."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("submitit")

from thrifty.bench import load_bench_spec  # noqa: E402
from thrifty.bench.executor import run_bench_submitit  # noqa: E402
from thrifty.cli import main  # noqa: E402


def _spec(out):
    return load_bench_spec(overrides={"workload": "digits-mlp", "epochs": 2,
                                      "progress": False, "train_stats_every": -1},
                           seeds=[0, 1], methods=["rpc alpha=0.5", "rpd alpha=0.5"],
                           out_dir=str(out), budgets=[0.5])


def test_grid_through_local_jobs_then_a_killed_run_resumes(tmp_path):
    spec = _spec(tmp_path / "b")
    out = run_bench_submitit(spec, max_parallel=2, cluster="local", poll_s=0.5,
                             log=lambda s: None)
    results = out["results"]
    assert set(results) == {"baseline", "baseline 50% (1 ep)", "rpc alpha=0.5",
                            "rpd alpha=0.5"}
    assert all(r and r["status"] == "finished" for by in results.values() for r in by.values())
    logs = sorted((tmp_path / "b" / "submitit").glob("*_log.out"))
    assert len(logs) == 2  # one job per seed
    # a grid killed mid-way: one run left interrupted; submitting again runs only it
    victim = tmp_path / "b" / "runs" / "rpd_alpha=0.5-s1" / "result.json"
    data = json.loads(victim.read_text())
    victim.write_text(json.dumps({**data, "status": "interrupted"}))
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "b" / "runs").glob("*/result.json")}
    run_bench_submitit(spec, max_parallel=1, cluster="local", poll_s=0.5, log=lambda s: None)
    changed = [p.parent.name for p in before if p.stat().st_mtime_ns != before[p]]
    assert changed == ["rpd_alpha=0.5-s1"]
    assert json.loads(victim.read_text())["status"] == "finished"


def test_cli_and_bad_parallelism(tmp_path, capsys):
    with pytest.raises(ValueError, match="--max-parallel"):
        run_bench_submitit(_spec(tmp_path / "c"), max_parallel=0, cluster="local")
    assert main(["bench", "--workload", "digits-mlp", "--epochs", "1", "--no-progress",
                 "--budgets", "none", "--method", "rpc alpha=0.5", "--executor", "submitit",
                 "--max-parallel", "2", "--out", str(tmp_path / "d"), "--compact"]) == 0
    assert "rpc alpha=0.5" in capsys.readouterr().out


def test_a_user_workload_runs_in_submitit_jobs(tmp_path):
    from pathlib import Path

    factory = Path(__file__).with_name("user_workload.py")
    spec = load_bench_spec(overrides={"workload": f"{factory}:tiny", "epochs": 2},
                           seeds=[0], methods=["rpc alpha=0.5"], out_dir=str(tmp_path / "b"),
                           budgets="none")
    out = run_bench_submitit(spec, max_parallel=1, cluster="local", poll_s=0.5,
                             log=lambda s: None)
    runs = out["results"]
    assert all(r and r["status"] == "finished" for by in runs.values() for r in by.values())
    assert runs["rpc alpha=0.5"][0]["config"]["workload"] == f"{factory.resolve()}:tiny"
