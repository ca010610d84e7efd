"""What a run writes: ``result.json`` (format ``thrifty-run/1``), built from the run's
history, config, environment and methods."""

from __future__ import annotations

import inspect
from typing import Any

RESULT_FORMAT = "thrifty-run/1"


def method_record(method: Any) -> dict[str, Any]:
    """A method object as result.json records it: its name, class and the hyper-parameters
    of its constructor that it keeps as attributes (plain values only)."""
    params = {}
    for name, param in inspect.signature(type(method).__init__).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) \
                or not hasattr(method, name):
            continue  # only hyper-parameters the method keeps under their own name
        value = getattr(method, name)
        if isinstance(value, (bool, int, float, str, type(None))):
            params[name] = value
    return {"name": method.name, "class": f"{type(method).__module__}.{type(method).__name__}",
            "params": params}


def final_summary(epochs: list[dict[str, Any]], prep_time: float, prep_energy_j: float
                  ) -> dict[str, Any]:
    """The run's totals over its epochs and the last epoch's accuracy and loss statistics
    (empty before the first epoch ended)."""
    if not epochs:
        return {}
    last = epochs[-1]
    return {
        "test_accuracy": last["test_accuracy"],
        "train_time": sum(e["train_time"] for e in epochs),
        "eval_time": sum(e["time"]["evaluation"] for e in epochs),
        "prep_time": prep_time,
        "samples_loaded": sum(e["samples_loaded"] for e in epochs),
        "samples_forwarded": sum(e["samples_forwarded"] for e in epochs),
        "samples_trained": sum(e["samples_trained"] for e in epochs),
        "optimizer_steps": sum(e["optimizer_steps"] for e in epochs),
        "energy_j": sum(e.get("energy_j", 0.0) for e in epochs),
        "prep_energy_j": prep_energy_j,
        "test_loss": last["test_loss"], "train_loss_stats": last["train_loss_stats"],
        "loss_ratios": last["loss_ratios"],
        "robust_accuracy": last.get("robust_accuracy"), "robust": last.get("robust", {}),
    }


def run_result(trainer: Any, status: str, error: str | None = None) -> dict[str, Any]:
    """The ``result.json`` of ``trainer`` (a :class:`~thrifty.engine.loop.Trainer`) now."""
    t = trainer
    reducer, sampler, selector = t.core.pieces
    result = {
        "format": RESULT_FORMAT, "status": status, "error": error,
        "run_dir": str(t.run_dir), "config": t.config.to_dict(),
        "environment": t._environment,
        "dataset": {"name": getattr(t.train_data, "name", type(t.train_data).__name__),
                    "class": type(t.train_data).__name__,
                    "source": t._sources["dataset"],
                    "train_size": len(t.train_data), "test_size": len(t.test_data),
                    "pool_size": len(sampler.pool), "num_classes": t.num_classes,
                    "label_noise": {"share": t.config.label_noise,
                                    "relabelled": len(t.noisy)}},
        "model": {"class": type(t.model).__name__, "source": t._sources["model"],
                  "parameters": sum(p.numel() for p in t.model.parameters())},
        "methods": {"reducer": reducer.name, "sampler": sampler.name,
                    "selector": selector.name, "source": t._sources["methods"],
                    "objects": {place: method_record(obj) for place, obj in (
                        ("reducer", reducer), ("sampler", sampler), ("selector", selector))},
                    "reducer_info": dict(reducer.info_ or {})},
        "energy": None if t.energy_meter is None else {
            "source": t.energy_meter.source, "measured": t.energy_meter.measured,
            "description": t.energy_meter.describe()},
        "epochs": t.history, "final": final_summary(t.history, t.prep_time, t.prep_energy_j),
        "checkpoint": str(t.run_dir / "checkpoint.pt"),
        "world_size": t.dist.world_size,
    }
    if t._bench is not None:
        result["bench"] = t._bench
    return result


def epoch_line(s: Any, epochs: int) -> str:
    """The one-line summary of an epoch (an :class:`~thrifty.engine.accounting.EpochStats`)
    the engine prints."""
    t = s.time
    return (f"epoch {s.epoch + 1:>3}/{epochs}  acc {100 * s.test_accuracy:6.2f}%"
            f"  loss {s.train_loss:.4f}  lr {s.lr:.4g}  loaded {s.samples_loaded}"
            f"  fwd {s.samples_forwarded}  trained {s.samples_trained}"
            f"  steps {s.optimizer_steps}  train {s.train_time:.1f}s"
            f" (data {t['data']:.1f} sel-fwd {t['selection_forward']:.1f}"
            f" step {t['train_step']:.1f} sel {t['selection_logic']:.2f})"
            f"  eval {t['evaluation']:.1f}s")
