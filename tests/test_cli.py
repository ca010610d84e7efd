import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from thrifty.cli import build_parser, main
from thrifty.engine import RunConfig


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = capsys.readouterr().out
    import dataclasses

    for f in dataclasses.fields(RunConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name in ("method_args", "model_args"):
            flag = flag[:-1]  # --method-arg, --model-arg (repeatable)
        assert flag in text, flag


def test_train_with_overrides_writes_result(tmp_path, capsys):
    rc = main(["train", "--workload", "digits-mlp", "--epochs", "1", "--out-dir",
               str(tmp_path), "--run-name", "r", "--no-progress", "--method", "rpc",
               "--method-arg", "alpha=0.5"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "epoch   1/1" in out and "acc" in out and "trained" in out
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert result["config"]["method_args"] == {"alpha": 0.5}
    assert result["status"] == "finished"


def test_errors_exit_2_with_message(tmp_path, capsys):
    rc = main(["train", "--workload", "digits-mlp", "--method", "rpc", "--method-arg",
               "alpha=0", "--out-dir", str(tmp_path)])
    assert rc == 2 and "alpha" in capsys.readouterr().err
    rc = main(["train", "--resume", str(tmp_path / "missing")])
    assert rc == 2 and "no checkpoint" in capsys.readouterr().err


def test_methods_lists_places(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "rpc" in out and "reducer" in out


def test_sigint_saves_and_resume_finishes(tmp_path):
    """A real process: Ctrl-C after the first epoch, exit cleanly, then --resume."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "thrifty.cli", "train", "--workload", "digits-mlp",
           "--epochs", "400", "--out-dir", str(tmp_path), "--run-name", "r", "--no-progress",
           "--checkpoint-every", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    result = tmp_path / "r" / "result.json"
    deadline = time.time() + 60
    while not result.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert result.exists(), "first epoch never finished"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "checkpoint saved" in err and "--resume" in err
    saved = json.loads(result.read_text())
    assert saved["status"] == "interrupted"
    done = len(saved["epochs"])
    assert 1 <= done < 400
    from thrifty.engine import Trainer, TrainingInterrupted

    # the checkpoint continues where the result stopped; run one more batch, stop again
    trainer = Trainer.resume(tmp_path / "r", on_batch_end=Trainer.request_stop,
                             log=lambda s: None)
    assert len(trainer._resume_state["history"]) == done
    assert Path(trainer.run_dir) == tmp_path / "r"
    with pytest.raises(TrainingInterrupted):
        trainer.fit()
    again = json.loads(result.read_text())
    assert again["status"] == "interrupted" and len(again["epochs"]) >= done


def test_reduce_builds_registry_prints_balance_and_plots(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("THRIFTY_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "red"
    rc = main(["reduce", "--workload", "digits-mlp", "--embedder", "pixels", "--alpha", "0.5",
               "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert f"keeps {summary['kept']}" in text and "class   9" in text
    assert summary["total"] == 1347 and summary["per_class"]["0"]["after"] >= 67
    assert (out / "distances.png").read_bytes()[:4] == b"\x89PNG"
    # the saved registry trains by path, without embedding again
    rc = main(["train", "--workload", "digits-mlp", "--epochs", "1", "--no-progress",
               "--out-dir", str(tmp_path / "runs"), "--run-name", "r", "--method", "ids",
               "--method-arg", f"registry={out / 'registry.pt'}", "--method-arg", "alpha=0.5"])
    assert rc == 0
    result = json.loads((tmp_path / "runs" / "r" / "result.json").read_text())
    assert result["dataset"]["pool_size"] == summary["kept"]


def test_methods_groups_every_method_under_its_place(capsys):
    from thrifty.methods import PLACES, available_methods

    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    headers = {line.split(":")[0]: i for i, line in enumerate(lines)
               if line and not line.startswith(" ")}
    assert list(headers) == [*PLACES, "recipe"]  # the named recipes come last
    assert "thrifty prune --method NAME" in lines[headers["pruner"]]
    assert "thrifty train --method NAME" in lines[headers["reducer"]]
    bounds = [*headers.values(), len(lines)]
    for place, start, end in zip(PLACES, bounds, bounds[1:]):  # the recipes block unchecked
        names = [line.split()[0] for line in lines[start + 1:end] if line.strip()]
        assert names == [n for n, s in available_methods().items() if s.place == place]
    for name in ("mint", "snacs", "magnitude", "random"):
        assert any(line.split()[:2] == [name, "pruner"] for line in lines)


def test_train_refuses_a_pruner_before_any_work(tmp_path, capsys):
    rc = main(["train", "--workload", "digits-mlp", "--method", "mint", "--out-dir",
               str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "'mint' is a pruner" in err
    assert "thrifty prune --method mint --from RUN --out DIR" in err
    assert not any(tmp_path.iterdir())  # refused before the run folder or any data
