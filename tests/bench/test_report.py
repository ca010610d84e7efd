import json
import shutil
import subprocess

import pytest

from thrifty.bench import load_bench_spec, run_bench
from thrifty.bench.report import load_results_dir, pareto_front, write_report
from thrifty.cli import main


def test_pareto_front_by_hand():
    pts = [(1.0, 0.0), (2.0, 1.0), (1.5, 2.0), (3.0, 1.0), (3.0, 3.0)]
    # (2,1) dominated by (3,1); (1.5,2) by (2,1); (3,3) by (3,1)
    assert pareto_front(pts) == [0, 3]


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    spec = load_bench_spec(overrides={"workload": "digits-mlp", "epochs": 2, "progress": False},
                           seeds=[0, 1], methods=["rpc alpha=0.5"], out_dir=str(out))
    run_bench(spec, log=lambda s: None, trainer_kwargs={"log": lambda s: None})
    return out


def test_report_numbers_equal_stored_results(bench_dir):
    paths = write_report(bench_dir)
    page = paths["html"].read_text()
    md = paths["markdown"].read_text()
    accs = [json.loads((bench_dir / "runs" / f"rpc_alpha=0.5-s{s}" / "result.json").read_text())
            ["epochs"][-1]["test_accuracy"] for s in (0, 1)]
    expected = f"{100 * sum(accs) / 2:.2f}"
    assert f"<td>{expected}</td>" in page and f"| {expected} |" in md
    assert page.count("data:image/png;base64,") == 3  # self-contained
    for name in ("accuracy_vs_time.png", "speedup_vs_drop.png", "selected_share.png"):
        assert (bench_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    env = load_results_dir(bench_dir)["results"]["baseline"][0]["environment"]
    assert f"torch: {env['torch']}" in md


def test_report_cli_and_errors(bench_dir, tmp_path, capsys):
    assert main(["report", str(bench_dir), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.html").exists()
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "not a benchmark folder" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian package chromium missing")
def test_report_renders_in_headless_chromium(bench_dir, tmp_path):
    html_path = write_report(bench_dir)["html"]
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                    f"--screenshot={shot}", "--window-size=1280,2400",
                    html_path.as_uri()], check=True, capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000  # a rendered page with plots, not a blank one


def test_report_leaves_out_runs_still_running(bench_dir, tmp_path):
    copy = tmp_path / "bench"
    shutil.copytree(bench_dir, copy)
    running = copy / "runs" / "sb-s0"
    running.mkdir()
    (running / "result.json").write_text(json.dumps({"status": "running", "epochs": []}))
    md = write_report(copy, tmp_path / "r")["markdown"].read_text()
    assert "sb-s0" not in md and "rpc alpha=0.5" in md
