"""Optional experiment trackers: TensorBoard or MLflow, when installed.

The JSON result of every run is always written; a tracker only mirrors the per-epoch
numbers (accuracy, loss statistics, work counts, phase times, energy) for dashboards.
``--track tensorboard`` needs ``pip install "thrifty[tensorboard]"``; ``--track mlflow``
needs ``pip install mlflow``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

TRACKERS = ("none", "tensorboard", "mlflow")


def _flat(stats: dict[str, Any]) -> dict[str, float]:
    """Numeric per-epoch values with slash-separated names (``time/train_step``)."""
    out: dict[str, float] = {}
    for key, value in stats.items():
        if isinstance(value, dict):
            for sub, v in _flat(value).items():
                out[f"{key}/{sub}"] = v
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and key != "epoch":
            out[key] = float(value)
    return out


class Tracker:
    """Mirror per-epoch records to TensorBoard or MLflow.

    Args:
        kind: ``"tensorboard"`` or ``"mlflow"``.
        run_dir: the run folder (TensorBoard writes ``run_dir/tensorboard``).
        config: the run config, logged as parameters (MLflow) or text (TensorBoard).
    """

    def __init__(self, kind: str, run_dir: Path, config: dict[str, Any]) -> None:
        if kind not in TRACKERS[1:]:
            raise ValueError(f"track must be one of {', '.join(TRACKERS)}, got {kind!r}")
        self.kind = kind
        module = "torch.utils.tensorboard" if kind == "tensorboard" else "mlflow"
        try:
            self._mod = importlib.import_module(module)
        except ImportError as exc:
            fix = 'pip install "thrifty[tensorboard]"' if kind == "tensorboard" else \
                "pip install mlflow"
            raise ImportError(f"--track {kind} needs the {kind} package: {fix} (results are "
                              "always in result.json without it)") from exc
        if kind == "tensorboard":
            self._writer = self._mod.SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
            self._writer.add_text("config", str(config))
        else:
            self._mod.start_run(run_name=Path(run_dir).name)
            self._mod.log_params({k: str(v)[:250] for k, v in config.items()})

    def log_epoch(self, stats: dict[str, Any]) -> None:
        step = int(stats["epoch"]) + 1
        values = _flat(stats)
        if self.kind == "tensorboard":
            for name, value in values.items():
                self._writer.add_scalar(name, value, step)
            self._writer.flush()
        else:
            self._mod.log_metrics({k.replace("/", ".").replace(" ", "_"): v
                                   for k, v in values.items()}, step=step)

    def close(self) -> None:
        if self.kind == "tensorboard":
            self._writer.close()
        else:
            self._mod.end_run()
