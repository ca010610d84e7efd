"""Comparison metrics of BENCHMARK.md: accuracy drop, train and end-to-end boost, boost to
target, ideal boost from work counts, implementation efficiency, selection overhead.

All functions take run results as written by :class:`thrifty.engine.Trainer`
(``result.json`` dicts).
"""

from __future__ import annotations

import math
from typing import Any

Result = dict[str, Any]


def final_accuracy(run: Result) -> float:
    return run["epochs"][-1]["test_accuracy"]


def train_time(run: Result) -> float:
    """Training wall time: every phase but evaluation, summed over epochs."""
    return sum(e["train_time"] for e in run["epochs"])


def accuracy_drop(baseline: Result, method: Result) -> float:
    """Baseline final accuracy minus method final accuracy, in percentage points."""
    return 100.0 * (final_accuracy(baseline) - final_accuracy(method))


def train_boost(baseline: Result, method: Result) -> float:
    """Baseline training time / method training time (same epochs)."""
    return train_time(baseline) / train_time(method)


def end_to_end_boost(baseline: Result, method: Result) -> float:
    """As :func:`train_boost`, with the method's offline preparation time added."""
    prep = method.get("final", {}).get("prep_time", 0.0)
    return train_time(baseline) / (train_time(method) + prep)


def time_to_accuracy(run: Result, target: float, include_prep: bool = False) -> float | None:
    """Training time until the end of the first epoch whose test accuracy >= ``target``
    (evaluation time not counted); ``None`` when never reached — never extrapolated."""
    elapsed = run.get("final", {}).get("prep_time", 0.0) if include_prep else 0.0
    for e in run["epochs"]:
        elapsed += e["train_time"]
        if e["test_accuracy"] >= target:
            return elapsed
    return None


def boost_to_target(baseline: Result, method: Result, drop_pp: float) -> float | None:
    """Time for the baseline to first reach (its final accuracy − ``drop_pp`` p.p.) divided
    by the time the method needs to reach the same accuracy; ``None`` if the method never
    reaches it."""
    target = final_accuracy(baseline) - drop_pp / 100.0
    t_base = time_to_accuracy(baseline, target)
    t_method = time_to_accuracy(method, target)
    if t_base is None or t_method is None:
        return None
    return t_base / t_method


def work_counts(run: Result) -> dict[str, int]:
    keys = ("samples_loaded", "samples_forwarded", "samples_trained", "optimizer_steps")
    return {k: sum(e[k] for e in run["epochs"]) for k in keys}


def ideal_boost(baseline: Result, method: Result, forward_cost: float,
                train_cost: float) -> float:
    """``N·E·T / (selection_forwards·F + trained_samples·T)`` from exact work counts and the
    measured per-sample costs of a no-grad forward (F) and a training step (T); the
    baseline's trained samples stand for N·E."""
    base = work_counts(baseline)["samples_trained"] * train_cost
    w = work_counts(method)
    return base / (w["samples_forwarded"] * forward_cost + w["samples_trained"] * train_cost)


def implementation_efficiency(baseline: Result, method: Result, forward_cost: float,
                              train_cost: float) -> float:
    """Train boost / ideal boost: whether the code realises what the algorithm saves."""
    return train_boost(baseline, method) / ideal_boost(baseline, method, forward_cost,
                                                        train_cost)


def selection_overhead(run: Result) -> float:
    """Time in selection logic (outside forward/backward passes) / total training time."""
    logic = sum(e["time"]["selection_logic"] for e in run["epochs"])
    total = train_time(run)
    return logic / total if total > 0 else math.nan
