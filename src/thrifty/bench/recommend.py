"""The plan: what a benchmark says to run, in a few lines (``OUT/plan.md`` and the end of
the terminal output).

It answers three questions from the comparison table, each with seeds and spread:

1. the cheapest configuration whose mean accuracy drop stays within ``target_drop``
   percentage points of the full baseline (budget baselines included: "train for fewer
   epochs" is a legitimate answer);
2. the best accuracy at each budget (a share of the full baseline's cost);
3. whether any method beats the equal-time frontier (the budget baselines) beyond its
   spread over seeds.

Cost is the reference cost (ideal boost: machine independent, from the calibrated
per-sample costs) where the benchmark has a calibration, else the measured train time.
A configuration that did no less work than its baseline (``no saving``) is never chosen.
"""

from __future__ import annotations

import math
from typing import Any

from thrifty.bench.spec import BenchSpec
from thrifty.bench.table import NO_SAVING
from thrifty.workload import factory_label, is_factory

#: Budget bins of the plan: shares of the full baseline's cost.
BINS = (0.25, 0.5, 0.75, 1.0)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not math.isnan(value) else None


def _boost(row: dict[str, Any]) -> float | None:
    """The row's cost boost: the ideal boost where calibrated, else the train boost."""
    return _num(row.get("ideal_boost")) or _num(row.get("train_boost"))


def _pm(mean: Any, std: Any) -> str:
    m, s = _num(mean), _num(std)
    if m is None:
        return "–"
    return f"{m:.2f}" if s is None else f"{m:.2f} ± {s:.2f}"


def _describe(row: dict[str, Any]) -> str:
    boost = _boost(row)
    train = _num(row.get("train_boost"))
    parts = [f"acc {_pm(row.get('acc'), row.get('acc_std'))} %",
             f"drop {_pm(row.get('drop'), row.get('drop_std'))} p.p."]
    if boost is not None:
        parts.append(f"{boost:.2f}x less work")
    if train is not None:
        parts.append(f"train boost {train:.2f}x")
    parts.append(f"{row.get('seeds', 0)} seed(s)")
    return ", ".join(parts)


def kinds(spec: BenchSpec) -> dict[str, str]:
    """Label -> ``baseline``, ``budget`` (a budget baseline), ``method`` or
    ``method-budget`` (a method at a share of the epochs)."""
    out = {}
    for r in spec.runs:
        if r.budget is not None:
            out[r.label] = "budget"
        elif not r.method:
            out[r.label] = "baseline"
        else:
            out[r.label] = "method-budget" if r.share is not None else "method"
    return out


def make_plan(rows: list[dict[str, Any]], spec: BenchSpec,
              target_drop: float | None = None) -> str:
    """The plan as Markdown.

    Args:
        rows: the comparison table (:func:`thrifty.bench.table.compute_rows`).
        spec: the benchmark (which rows are baselines, budget baselines, methods).
        target_drop: the largest accepted mean drop in p.p. Default: ``spec.target_drop``.
    """
    target = spec.target_drop if target_drop is None else target_drop
    kind = kinds(spec)
    done = [r for r in rows if r.get("seeds")]
    base = [r for r in done if kind.get(r["label"]) == "baseline"]
    others = [r for r in done if kind.get(r["label"]) != "baseline"]
    seeds = max((r["seeds"] for r in done), default=0)
    costed = any(_num(r.get("ideal_boost")) for r in others)
    workload = str(spec.base.get("workload") or "the workload")
    if is_factory(workload):  # its file's name, not the machine's path to it
        workload = factory_label(workload)
    lines = [f"# What to run: {workload}", ""]
    if not base:
        return "\n".join(lines + ["No full baseline has finished yet: nothing to compare; "
                                  "run the same command again.", ""])
    lines += [f"From {seeds} seed(s); the full baseline reaches "
              + "; ".join(f"{_pm(b.get('acc'), b.get('acc_std'))} %"
                          + (f" ({b['label']})" if len(base) > 1 else "") for b in base)
              + ". Costs are " + ("reference costs (ideal boost)"
                                  if costed else "measured train times") + ".", ""]
    flagged = [r["label"] for r in others if r.get("note") == NO_SAVING]
    useful = [r for r in others if r.get("note") != NO_SAVING and _boost(r) is not None
              and _num(r.get("drop")) is not None]
    within = [r for r in useful if r["drop"] <= target + 1e-9 and (_boost(r) or 0) > 1]
    lines.append(f"## Cheapest within {target:g} p.p. of the baseline")
    lines.append("")
    if within:
        # on a tie (a method at a share that could not prune does the budget run's work),
        # the simpler answer: the budget baseline
        best = max(within, key=lambda r: (round(_boost(r) or 0, 2), -round(r["drop"], 2),
                                          kind.get(r["label"]) == "budget"))
        lines.append(f"**{best['label']}**: {_describe(best)}.")
        if kind.get(best["label"]) == "budget":
            lines.append("")
            lines.append("That is the baseline trained for fewer epochs: no method beats "
                         "simply training less at this drop.")
    else:
        lines.append(f"Nothing cheaper stays within {target:g} p.p.: train the full "
                     "baseline, or accept a larger drop (--target-drop).")
    lines += ["", "## Best accuracy at each budget", "",
              "| budget (share of the baseline's cost) | configuration | acc % | drop p.p. | "
              "less work | train boost |", "|---|---|---|---|---|---|"]
    low = 0.0
    for high in BINS:
        inside = [r for r in useful if low < 1 / _boost(r) <= high + 1e-9
                  and not (high == 1.0 and kind.get(r["label"]) == "baseline")]
        if inside:
            r = max(inside, key=lambda r: r["acc"])
            lines.append(f"| {100 * low:g}–{100 * high:g} % | {r['label']} | "
                         f"{_pm(r.get('acc'), r.get('acc_std'))} | "
                         f"{_pm(r.get('drop'), r.get('drop_std'))} | {_boost(r):.2f}x | "
                         f"{_pm(r.get('train_boost'), None)}x |")
        low = high
    # the frontier at equal reference cost where calibrated (machine independent, the
    # costs of this plan), else at equal measured train time
    key = "gain_vs_equal_cost" if costed else "gain_vs_equal_time"
    what = "equal reference cost" if costed else "equal train time"
    lines += ["", f"## Against training for fewer epochs (the frontier, at {what})", ""]
    methods = [r for r in useful if kind.get(r["label"], "").startswith("method")]
    beats, measured = [], []
    for r in methods:
        gain, std = _num(r.get(f"{key}_pp")), _num(r.get(f"{key}_std"))
        if gain is None:
            continue
        measured.append(r)
        if gain > 0 and r["seeds"] > 1 and gain - (std or 0.0) > 0:
            beats.append((gain, std or 0.0, r))
    for gain, std, r in sorted(beats, key=lambda x: -x[0]):
        timed = _num(r.get("gain_vs_equal_time_pp"))
        lines.append(f"- **{r['label']}** beats it by {gain:+.2f} ± {std:.2f} p.p. at "
                     f"{_boost(r):.2f}x less work"
                     + (f" ({timed:+.2f} p.p. at equal train time)"
                        if costed and timed is not None else "") + ".")
    if not beats:
        if not measured:
            lines.append("No method has a frontier comparison (no budget baselines, or "
                         "every method is cheaper than the shortest one).")
        elif seeds < 2:
            lines.append("One seed gives no spread: nothing can be said to beat training "
                         "for fewer epochs yet; run --seeds 0 1 2.")
        else:
            lines.append("No method beats training for fewer epochs beyond its spread over "
                         "seeds. On this workload, train for fewer epochs (the budget "
                         "baselines above).")
    if flagged:
        lines += ["", "Did no less work than the baseline (never credited with a boost): "
                  + ", ".join(flagged) + "."]
    return "\n".join(lines) + "\n"
