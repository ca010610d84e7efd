"""Reliability (docs/reliability.md): no run overwritten, no second process on a folder,
nonsense refused with one clear line, a light command line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from thrifty.bench import load_bench_spec, run_bench
from thrifty.bench.report import load_results_dir
from thrifty.cli import main
from thrifty.data import TensorData
from thrifty.engine import Trainer, TrainingInterrupted, make_config
from thrifty.utils.locks import FolderBusyError, FolderLock

QUIET = {"log": lambda s: None}


def _cfg(tmp_path, **kw):
    return make_config({"workload": "digits-mlp", "epochs": 2, "out_dir": str(tmp_path / "runs"),
                        "progress": False, "run_name": "r", **kw})


def _interrupted(cfg):
    trainer = Trainer(cfg, on_batch_end=lambda t: t.request_stop(), **QUIET)
    with pytest.raises(TrainingInterrupted):
        trainer.fit()
    return trainer.run_dir


def test_resume_writes_only_into_its_own_folder(tmp_path):
    first = Trainer(_cfg(tmp_path), **QUIET)
    first.fit()
    finished = (first.run_dir / "result.json").read_text()
    second = _interrupted(_cfg(tmp_path))
    assert second.name == "r-1"  # the name existed: a suffix
    resumed = Trainer.resume(second, **QUIET)
    resumed.fit()
    assert resumed.run_dir == second
    assert (first.run_dir / "result.json").read_text() == finished  # untouched
    assert json.loads((second / "result.json").read_text())["status"] == "finished"


def test_resume_of_a_copied_folder_writes_into_the_copy(tmp_path):
    original = _interrupted(_cfg(tmp_path))
    before = (original / "result.json").read_text()
    copy = tmp_path / "elsewhere" / "copied"
    shutil.copytree(original, copy)
    Trainer.resume(copy, **QUIET).fit()
    assert (original / "result.json").read_text() == before
    assert json.loads((copy / "result.json").read_text())["run_dir"] == str(copy)


def test_a_finished_run_is_not_resumed(tmp_path):
    trainer = Trainer(_cfg(tmp_path), **QUIET)
    trainer.fit()
    with pytest.raises(ValueError, match="finished run: nothing to resume"):
        Trainer.resume(trainer.run_dir, **QUIET)


def test_a_second_process_on_a_run_folder_is_refused(tmp_path):
    folder = _interrupted(_cfg(tmp_path))
    code = ("import sys, time; from thrifty.utils.locks import FolderLock; "
            f"lock = FolderLock({str(folder)!r}).acquire(); print('held', flush=True); "
            "time.sleep(30)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderBusyError, match=rf"in use by pid {holder.pid}"):
            Trainer.resume(folder, **QUIET).fit()
    finally:
        holder.kill()
        holder.wait()
    Trainer.resume(folder, **QUIET).fit()  # released when the holder died


def test_two_benches_on_one_folder_the_second_is_refused(tmp_path):
    spec = load_bench_spec(overrides={"workload": "digits-mlp", "epochs": 1, "progress": False},
                           seeds=[0], methods=["rpc alpha=0.5"], out_dir=str(tmp_path / "b"),
                           budgets=None)
    with FolderLock(tmp_path / "b", ".lock.s0"), \
            pytest.raises(FolderBusyError, match="benchmark folder"):
        run_bench(spec, log=lambda s: None, trainer_kwargs=QUIET)
    assert not (tmp_path / "b" / "runs").exists()  # nothing trained twice


def test_a_bench_run_continued_by_hand_keeps_its_row(tmp_path):
    spec = load_bench_spec(overrides={"workload": "digits-mlp", "epochs": 2, "progress": False},
                           seeds=[0], methods=["rpc alpha=0.5"], out_dir=str(tmp_path / "b"),
                           budgets=None)
    with pytest.raises(TrainingInterrupted):
        run_bench(spec, log=lambda s: None,
                  trainer_kwargs={**QUIET, "on_batch_end": lambda t: t.request_stop()})
    folder = tmp_path / "b" / "runs" / "baseline-s0"
    assert main(["train", "--resume", str(folder)]) == 0  # what the bench tells the user
    labels = list(load_results_dir(tmp_path / "b")["results"])
    assert labels == ["baseline"]  # no phantom row named after the folder


@pytest.mark.parametrize("args, message", [
    (["--run-name", "../x"], "run_name must be a folder name"),
    (["--schedule", "step", "--gamma", "-0.1"], "gamma (the LR decay factor"),
    (["--method-arg", "rpc.alpha=0.5"], "without a method"),
    (["--train-limit", "99999"], "more than the 1347 samples"),
    (["--method", "adonis", "--method-arg", "theta=0.999", "--method-arg", "fallback=skip"],
     "chose no sample"),
])
def test_nonsense_is_refused_in_one_line(tmp_path, capsys, args, message):
    code = main(["train", "--workload", "digits-mlp", "--epochs", "1", "--no-progress",
                 "--out-dir", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_bad_files_give_one_line_naming_the_file(tmp_path, capsys):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("epochs: [1,\n")
    assert main(["train", "--config", str(bad_yaml)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "bad.yaml, line 2: not valid YAML" in err
    run = tmp_path / "broken"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "checkpoint.pt" in err


def test_data_that_cannot_be_trained_on_is_refused(tmp_path, digits):
    train, test = digits
    one_class = TensorData(train.x, torch.zeros_like(train.y), 1, "one")
    with pytest.raises(ValueError, match="single class"):
        Trainer(_cfg(tmp_path), train=one_class, test=test, **QUIET)
    out_of_range = TensorData(train.x, train.y.clone(), 5, "five")
    with pytest.raises(ValueError, match="labels must be 0..4"):
        Trainer(_cfg(tmp_path), train=out_of_range, test=test, **QUIET)
    nan_test = TensorData(test.x.clone(), test.y, 10, "nan")
    nan_test.x[0] = float("nan")
    with pytest.raises(FloatingPointError, match="test samples give a NaN"):
        Trainer(_cfg(tmp_path, epochs=1), train=train, test=nan_test, **QUIET).fit()


def test_weights_of_another_architecture_are_refused(tmp_path):
    from thrifty.models import create_model

    path = tmp_path / "w.pt"  # a narrower MLP: only the classifier's bias would fit
    torch.save(create_model("mlp", 10, (1, 8, 8), hidden=[32]).state_dict(), path)
    with pytest.raises(ValueError, match=r"fit only 1 of the model's 4 tensors"):
        Trainer(_cfg(tmp_path, weights=str(path)), **QUIET)
    head = tmp_path / "head.pt"  # the same body with another head: loaded, head replaced
    torch.save(create_model("mlp", 7, (1, 8, 8)).state_dict(), head)
    Trainer(_cfg(tmp_path, weights=str(head)), **QUIET)
    wide = tmp_path / "wide.pt"  # another input size: only the first layer differs
    torch.save(create_model("mlp", 10, (1, 9, 9)).state_dict(), wide)
    with pytest.raises(ValueError, match=r"not loaded: body\.1.*input size"):
        Trainer(_cfg(tmp_path, weights=str(wide)), **QUIET)


def test_an_empty_data_root_is_not_replaced_by_another_copy(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=str(empty)):
        Trainer(make_config({"workload": "fmnist-cnn", "data_root": str(empty),
                             "out_dir": str(tmp_path)}), **QUIET)


def test_help_listing_and_argument_errors_do_not_import_torch():
    code = ("import sys, contextlib, io, thrifty.cli as c; p = c.build_parser(); "
            "out = io.StringIO(); ctx = contextlib.redirect_stdout(out); ctx.__enter__(); "
            "c.main(['methods']); ctx.__exit__(None, None, None); "
            "assert 'infobatch' in out.getvalue(); "
            "assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_a_preempted_run_is_recorded_interrupted_and_resumed_not_restarted(tmp_path):
    """A job scheduler's preemption ends the process with SystemExit (submitit's requeue):
    the run reads "interrupted" and the bench resumes it from its epoch checkpoint."""
    spec = load_bench_spec(overrides={"workload": "digits-mlp", "epochs": 3, "progress": False},
                           seeds=[0], methods=[], out_dir=str(tmp_path / "b"), budgets=None)

    def preempt(trainer):
        if trainer.ctx.epoch == 2:
            raise SystemExit(-1)

    with pytest.raises(SystemExit):
        run_bench(spec, log=lambda s: None, trainer_kwargs={**QUIET, "on_batch_end": preempt})
    folder = tmp_path / "b" / "runs" / "baseline-s0"
    assert json.loads((folder / "result.json").read_text())["status"] == "interrupted"
    logs = []
    run_bench(spec, log=logs.append, trainer_kwargs={"log": logs.append})
    assert any("resuming" in line and "epoch 3" in line for line in logs)
    assert json.loads((folder / "result.json").read_text())["status"] == "finished"


def test_more_bad_inputs_give_one_line(tmp_path, capsys):
    truncated = tmp_path / "w.pt"
    truncated.write_bytes(b"PK\x03\x04 truncated")
    base = ["train", "--workload", "digits-mlp", "--epochs", "1", "--no-progress",
            "--out-dir", str(tmp_path / "runs")]
    assert main([*base, "--weights", str(truncated)]) == 2
    err = capsys.readouterr().err
    assert "w.pt is not a readable weights file" in err and len(err.strip().splitlines()) == 1
    assert main([*base, "--model-arg", "nope=3"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and len(err.strip().splitlines()) == 1
    garbage = tmp_path / "fmnist"
    garbage.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (garbage / name).write_bytes(b"not an idx file")
    assert main(["train", "--workload", "fmnist-cnn", "--data-root", str(garbage),
                 "--epochs", "1", "--out-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "thrifty: error:" in err


def test_a_full_disk_and_a_read_only_folder_are_named():
    import errno

    from thrifty.cli import error_line

    full = OSError(errno.ENOSPC, "No space left on device", "runs/x/checkpoint.pt")
    assert error_line(full).startswith("the disk is full writing runs/x/checkpoint.pt")
    ro = OSError(errno.EROFS, "Read-only file system", "/ro/result.json")
    assert "read-only" in error_line(ro) and "--out-dir" in error_line(ro)


def test_torch_failing_to_write_a_checkpoint_is_named_a_full_disk(tmp_path, monkeypatch,
                                                                  capsys):
    def full(*args, **kwargs):  # what torch.save says when the disk fills mid-write
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter "
                           "failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", full)
    assert main(["train", "--workload", "digits-mlp", "--epochs", "1", "--no-progress",
                 "--out-dir", str(tmp_path / "runs"), "--run-name", "r"]) == 2
    err = capsys.readouterr().err
    assert "the disk is full writing" in err and "checkpoint.pt" in err
    assert "inline_container" not in err
    assert not list((tmp_path / "runs" / "r").glob("*.tmp"))  # no half-written file left


def test_a_nan_loss_in_the_first_epoch_says_no_checkpoint_exists(tmp_path, digits):
    train, test = digits
    bad = TensorData(train.x.clone(), train.y, 10, "nan")
    bad.x[:64] = float("nan")
    with pytest.raises(FloatingPointError, match="No checkpoint was saved yet"):
        Trainer(_cfg(tmp_path, epochs=1), train=bad, test=test, **QUIET).fit()


def test_a_second_ctrl_c_during_the_save_waits_for_it(tmp_path, digits, monkeypatch):
    import os
    import signal

    import thrifty.engine.run_state as run_state
    from thrifty.engine import Trainer

    real = run_state.save_checkpoint
    calls = []

    def slow_save(path, state):
        calls.append(path)
        os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C lands in the write
        real(path, state)

    monkeypatch.setattr(run_state, "save_checkpoint", slow_save)
    cfg = _cfg(tmp_path)
    cfg.epochs = 2
    trainer = Trainer(cfg, train=digits[0], test=digits[1], log=lambda s: None,
                      on_batch_end=lambda t: os.kill(os.getpid(), signal.SIGINT)
                      if t.core.epoch_counts["steps"] == 3 and t.ctx.epoch == 0 else None)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert len(calls) == 1
    result = json.loads((trainer.run_dir / "result.json").read_text())
    assert result["status"] == "interrupted"
    monkeypatch.setattr(run_state, "save_checkpoint", real)
    resumed = Trainer.resume(trainer.run_dir, train=digits[0], test=digits[1],
                             log=lambda s: None).fit()  # the checkpoint is whole
    assert resumed["status"] == "finished"


def test_more_command_line_nonsense_is_refused(tmp_path, capsys):
    for argv, match in ((["train", "--resume", ""], "empty path"),
                        (["bench", "--max-parallel", "-1"], "must be at least 1")):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and match in capsys.readouterr().err
    out = str(tmp_path / "r")
    assert main(["train", "--workload", "digits-mlp", "--data-root", str(tmp_path),
                 "--out-dir", out]) == 2
    assert "built in (no files)" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["train", "--workload", "digits-mlp", "--epochs", "-1"],
                                  ["bench", "--workload", "digits-mlp", "--epochs", "0"]])
def test_range_errors_come_before_pytorch_is_imported(argv):
    code = ("import sys; from thrifty.cli import main; rc = main(sys.argv[1:]); "
            "print(rc, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.split() == ["2", "False"], out.stderr
    assert "epochs must be at least 1" in out.stderr
