"""The equal-time (and equal-cost) frontier: what the baseline reaches when it simply trains
for less, with its schedule fully decayed over the shorter run.

Per seed, the budget baselines (e.g. 25/50/75% of the epochs) and the full baseline are
points ``(cost, accuracy)``. The frontier is the piecewise-linear curve through them, made
monotone (a longer run is credited with the best accuracy of any shorter one: a user would
stop there). A method's **gain over the equal-time baseline** is its accuracy minus the
frontier's accuracy at the method's own training time; at equal **reference cost** the
method's cost is its work counts priced with the machine's per-sample costs
(``selection forwards x F + trained samples x T``), which does not drift with the load.

A method cheaper than the shortest budget run has no equal-time baseline measured:
:func:`frontier_accuracy` returns ``None`` for it, never an extrapolated number. A method
costlier than the full baseline is compared with the full baseline (the longest run
measured).
"""

from __future__ import annotations

import bisect
from typing import Any

Result = dict[str, Any]


def monotone_frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """``(cost, accuracy)`` points sorted by cost, accuracy made non-decreasing (running
    maximum). Points of equal cost keep the better accuracy."""
    if not points:
        raise ValueError("a frontier needs at least one (cost, accuracy) point")
    out: list[tuple[float, float]] = []
    for cost, acc in sorted(points):
        if out and cost == out[-1][0]:
            out[-1] = (cost, max(acc, out[-1][1]))
            continue
        out.append((cost, max(acc, out[-1][1]) if out else acc))
    return out


def frontier_accuracy(points: list[tuple[float, float]], cost: float) -> float | None:
    """The frontier's accuracy at ``cost``: linear between the measured points, flat at the
    full baseline beyond the costliest, ``None`` below the cheapest (not measured)."""
    front = monotone_frontier(points)
    costs = [c for c, _ in front]
    if cost < costs[0]:
        return None
    if cost >= costs[-1]:
        return front[-1][1]
    i = bisect.bisect_right(costs, cost)
    (c0, a0), (c1, a1) = front[i - 1], front[i]
    return a0 + (a1 - a0) * (cost - c0) / (c1 - c0)


def reference_cost(run: Result, forward_cost: float, train_cost: float) -> float:
    """A run's work priced with per-sample costs: selection forwards x F + trained x T."""
    forwarded = sum(e["samples_forwarded"] for e in run["epochs"])
    trained = sum(e["samples_trained"] for e in run["epochs"])
    return forwarded * forward_cost + trained * train_cost


def run_cost(run: Result, kind: str, calibration: dict[str, float] | None = None
             ) -> float:
    """``kind="time"``: training wall time (evaluation excluded); ``kind="cost"``: the
    reference cost (needs ``calibration`` with ``forward_cost`` and ``train_cost``)."""
    if kind == "time":
        return sum(e["train_time"] for e in run["epochs"])
    if kind == "cost":
        if not calibration:
            raise ValueError("the equal-cost frontier needs the per-sample costs "
                             "(calibration.json of the benchmark)")
        return reference_cost(run, calibration["forward_cost"], calibration["train_cost"])
    raise ValueError(f"frontier kind must be 'time' or 'cost', got {kind!r}")


def gain_over_frontier(method: Result, frontier_runs: list[Result], kind: str = "time",
                       calibration: dict[str, float] | None = None) -> float | None:
    """Accuracy of ``method`` minus the frontier's at its cost, in p.p.; ``None`` when the
    method is cheaper than every run of ``frontier_runs`` (budget baselines and the full
    baseline of the same seed)."""
    points = [(run_cost(r, kind, calibration), r["epochs"][-1]["test_accuracy"])
              for r in frontier_runs]
    at = frontier_accuracy(points, run_cost(method, kind, calibration))
    if at is None:
        return None
    return 100.0 * (method["epochs"][-1]["test_accuracy"] - at)
