import sys
import types

import pytest

from thrifty.engine import Trainer
from thrifty.engine.tracking import Tracker, _flat


def test_flat_names_numeric_values_only():
    flat = _flat({"epoch": 3, "test_accuracy": 0.5, "time": {"data": 1.0}, "status": "x",
                  "test_loss": {"q0.9": 2.0}, "flag": True})
    assert flat == {"test_accuracy": 0.5, "time/data": 1.0, "test_loss/q0.9": 2.0}


def test_mlflow_tracker_mirrors_every_epoch(tiny_config, digits, monkeypatch):
    calls = []
    fake = types.SimpleNamespace(
        start_run=lambda run_name: calls.append(("start", run_name)),
        log_params=lambda p: calls.append(("params", p)),
        log_metrics=lambda m, step: calls.append(("metrics", step, m)),
        end_run=lambda: calls.append(("end",)))
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    Trainer(tiny_config(epochs=2, track="mlflow", run_name="t"), train=digits[0],
            test=digits[1], log=lambda s: None).fit()
    assert calls[0] == ("start", "t") and calls[-1] == ("end",)
    metrics = [c for c in calls if c[0] == "metrics"]
    assert [m[1] for m in metrics] == [1, 2]
    assert "test_accuracy" in metrics[0][2] and "time.train_step" in metrics[0][2]


def test_missing_tracker_package_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import fails
    with pytest.raises(ImportError, match="pip install mlflow"):
        Tracker("mlflow", tmp_path, {})
    with pytest.raises(ValueError, match="track must be"):
        Tracker("wandb", tmp_path, {})
