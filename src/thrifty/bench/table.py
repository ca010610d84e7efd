"""The comparison table (seed 000 Table A1 plus the project's extras), as rows of numbers
and as text, CSV and Markdown.

Each method run is paired with the baseline of the same seed; ratios are computed per pair
and then averaged over seeds (mean ± sample std). Where the benchmark ran budget baselines,
each method also gets the equal-time frontier's accuracy at its own training time and its
gain over it, at equal wall time and at equal reference cost (:mod:`thrifty.metrics.frontier`).
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from typing import Any

from thrifty.bench.spec import BASELINE
from thrifty.metrics import compare as m
from thrifty.metrics.frontier import frontier_accuracy, gain_over_frontier, run_cost

COLUMNS = [
    ("label", "method"), ("note", "note"), ("seeds", "seeds"), ("acc", "acc %"),
    ("acc_std", "± "), ("robust_acc", "robust acc %"), ("robust_acc_std", "± "),
    ("drop", "drop p.p."), ("drop_std", "± "), ("equal_time_acc", "equal-time acc %"),
    ("gain_vs_equal_time_pp", "gain vs equal time p.p."), ("gain_vs_equal_time_std", "± "),
    ("gain_vs_equal_cost_pp", "gain vs equal cost p.p."), ("gain_vs_equal_cost_std", "± "),
    ("train_boost", "train boost"),
    ("e2e_boost", "e2e boost"), ("boost_1pp", "boost@1pp"), ("boost_5pp", "boost@5pp"),
    ("train_time", "train s"), ("prep_time", "prep s"), ("samples_trained", "trained"),
    ("samples_forwarded", "sel. fwd"), ("optimizer_steps", "steps"),
    ("ideal_boost", "ideal boost"), ("efficiency", "impl. eff."),
    ("selection_overhead", "sel. overhead %"), ("energy_j", "energy J"),
    ("energy_gain", "energy gain %"), ("energy_source", "energy"), ("test_q09", "test q0.9"),
    ("test_worst", "test worst"),
]


#: A configuration whose ideal boost (reference cost of the baseline over its own) is under
#: this did no less work than its baseline: flagged ``no saving`` and never credited with a
#: boost or a gain (a 2-epoch InfoBatch run cannot prune, yet its measured time may differ).
#: So is a method at a share of the epochs that did no less work than the budget baseline
#: of the same epochs: what it saves, training less saves alone.
NO_SAVING_BELOW = 1.02
NO_SAVING = "no saving"
#: Cells a configuration without saving is not credited with.
CREDIT = ("train_boost", "e2e_boost", "boost_1pp", "boost_5pp", "gain_vs_equal_time_pp",
          "gain_vs_equal_time_std", "gain_vs_equal_cost_pp", "gain_vs_equal_cost_std",
          "energy_gain")


def _no_saving(row: dict[str, Any], paired: list[tuple[dict, dict]]) -> bool:
    """Whether the configuration did no less work than its baseline: its ideal boost under
    :data:`NO_SAVING_BELOW`, or (without a calibration) as many samples trained and at
    least as many selection forwards as the baseline."""
    if not paired:
        return False
    ideal = row.get("ideal_boost")
    if isinstance(ideal, float) and not math.isnan(ideal):
        return ideal < NO_SAVING_BELOW
    work = [(m.work_counts(r), m.work_counts(b)) for r, b in paired]
    return all(w["samples_trained"] * NO_SAVING_BELOW >= v["samples_trained"]
               and w["samples_forwarded"] >= v["samples_forwarded"] for w, v in work)


def _as_short_as(pairs: list[tuple[int, dict, dict | None]],
                 results: dict[str, dict[int, dict | None]], budgets: list[str],
                 calibration: dict[str, float] | None) -> bool:
    """Whether a run at a share of the epochs did no less work than the budget baseline of
    the same number of epochs, in every seed (a method that could not act in so short a
    run: it is that budget baseline, and credited with nothing of its own)."""
    found = False
    for seed, run, _ in pairs:
        same = [r for b in budgets if (r := results.get(b, {}).get(seed))
                and r.get("status") == "finished" and len(r["epochs"]) == len(run["epochs"])]
        if not same:
            return False
        for short in same:
            if calibration:
                mine, theirs = (run_cost(x, "cost", calibration) for x in (run, short))
            else:
                mine, theirs = (m.work_counts(x)["samples_trained"] for x in (run, short))
            if mine * NO_SAVING_BELOW < theirs:
                return False
        found = True
    return found


def _mean_std(values: list[float]) -> tuple[float, float]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return math.nan, math.nan
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def _boost_cell(values: list[float | None]) -> Any:
    reached = [v for v in values if v is not None]
    if not values:
        return math.nan
    if len(reached) < len(values):
        return f"never ({len(values) - len(reached)}/{len(values)})"
    return statistics.fmean(reached)


BELOW = "below the shortest budget"


def _gain_cells(pairs: list[tuple[int, dict, dict | None]],
                results: dict[str, dict[int, dict | None]], budgets: list[str],
                calibration: dict[str, float] | None) -> dict[str, Any]:
    """Equal-time accuracy and the gains over the frontier (per seed: the full baseline and
    the budget baselines of that seed), as mean/std cells; a seed whose method run is
    cheaper than its shortest budget run makes the cell ``below the shortest budget (k/n)``."""
    row: dict[str, Any] = {}
    kinds = [("time", "gain_vs_equal_time")]
    if calibration:
        kinds.append(("cost", "gain_vs_equal_cost"))
    for kind, key in kinds:
        gains, accs, below, n = [], [], 0, 0
        for seed, run, base in pairs:
            if base is None:
                continue
            front = [base] + [r for b in budgets if (r := results.get(b, {}).get(seed))
                              and r.get("status") == "finished"]
            if len(front) < 2:  # no budget run finished for this seed yet
                continue
            n += 1
            gain = gain_over_frontier(run, front, kind, calibration)
            if gain is None:
                below += 1
                continue
            gains.append(gain)
            if kind == "time":
                points = [(run_cost(r, kind), r["epochs"][-1]["test_accuracy"]) for r in front]
                accs.append(100 * frontier_accuracy(points, run_cost(run, kind)))
        if not n:
            continue
        if below:
            row[f"{key}_pp"], row[f"{key}_std"] = f"{BELOW} ({below}/{n})", math.nan
        else:
            row[f"{key}_pp"], row[f"{key}_std"] = _mean_std(gains)
        if kind == "time" and accs and not below:
            row["equal_time_acc"] = _mean_std(accs)[0]
    return row


def compute_rows(results: dict[str, dict[int, dict | None]],
                 calibration: dict[str, float] | None = None,
                 baseline_of: dict[str, str] | None = None,
                 frontier_of: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """One row per label. ``results[label][seed]`` are run results (unfinished skipped);
    ``baseline_of[label]`` names the paired baseline (default ``"baseline"``);
    ``frontier_of[label]`` the budget baselines of that baseline (default: none, and no
    gain columns)."""
    baseline_of = baseline_of or {}
    frontier_of = frontier_of or {}
    rows = []
    for label, by_seed in results.items():
        base_label = baseline_of.get(label, BASELINE)
        base_runs = {s: r for s, r in results.get(base_label, {}).items()
                     if r and r.get("status") == "finished"}
        pairs = [(s, r, base_runs.get(s)) for s, r in sorted(by_seed.items())
                 if r and r.get("status") == "finished"]
        if not pairs:
            rows.append({"label": label, "seeds": 0})
            continue
        runs = [r for _, r in [(s, r) for s, r, _ in pairs]]
        paired = [(r, b) for _, r, b in pairs if b is not None]
        acc, acc_std = _mean_std([100 * m.final_accuracy(r) for r in runs])
        drop, drop_std = _mean_std([m.accuracy_drop(b, r) for r, b in paired])
        row: dict[str, Any] = {
            "label": label, "seeds": len(runs), "acc": acc, "acc_std": acc_std,
            "drop": drop, "drop_std": drop_std,
            "train_boost": _mean_std([m.train_boost(b, r) for r, b in paired])[0],
            "e2e_boost": _mean_std([m.end_to_end_boost(b, r) for r, b in paired])[0],
            "boost_1pp": _boost_cell([m.boost_to_target(b, r, 1.0) for r, b in paired]),
            "boost_5pp": _boost_cell([m.boost_to_target(b, r, 5.0) for r, b in paired]),
            "train_time": _mean_std([m.train_time(r) for r in runs])[0],
            "prep_time": _mean_std([r["final"].get("prep_time", 0.0) for r in runs])[0],
            "selection_overhead": 100 * _mean_std([m.selection_overhead(r) for r in runs])[0],
            "test_q09": _mean_std([r["final"]["test_loss"]["q0.9"] for r in runs])[0],
            "test_worst": _mean_std([r["final"]["test_loss"]["worst"] for r in runs])[0],
        }
        robust = [100 * r["final"]["robust_accuracy"] for r in runs
                  if r["final"].get("robust_accuracy") is not None]
        if robust:
            row["robust_acc"], row["robust_acc_std"] = _mean_std(robust)
        row.update(_energy(runs, paired))
        if frontier_of.get(label):
            row.update(_gain_cells(pairs, results, frontier_of[label], calibration))
        for key in ("samples_trained", "samples_forwarded", "optimizer_steps"):
            row[key] = statistics.fmean(m.work_counts(r)[key] for r in runs)
        if calibration and paired:
            f, t = calibration["forward_cost"], calibration["train_cost"]
            row["ideal_boost"] = _mean_std([m.ideal_boost(b, r, f, t) for r, b in paired])[0]
            row["efficiency"] = _mean_std(
                [m.implementation_efficiency(b, r, f, t) for r, b in paired])[0]
        if label != base_label and (_no_saving(row, paired) or (
                frontier_of.get(label) and _as_short_as(pairs, results, frontier_of[label],
                                                        calibration))):
            row["note"] = NO_SAVING
        rows.append(row)
    return rows


def _run_energy(run: dict) -> float:
    """Joules of a run: its epochs plus its preparation (embedding, warm-up), so that an
    offline reducer's energy gain is end to end, like its end-to-end boost."""
    final = run["final"]
    return final.get("energy_j", math.nan) + final.get("prep_energy_j", 0.0)


def _energy(runs: list[dict], paired: list[tuple[dict, dict]]) -> dict[str, Any]:
    """Energy (training + preparation), energy gain vs the paired baseline, and whether
    measured or estimated. A gain is only computed between runs whose energy comes from the
    same source."""
    sources = {(r.get("energy") or {}).get("source") for r in runs}
    if None in sources or len(sources) != 1:
        return {"energy_j": math.nan, "energy_gain": math.nan, "energy_source": "–"}
    source = sources.pop()
    same = [(r, b) for r, b in paired if (b.get("energy") or {}).get("source") == source
            and b["final"].get("energy_j")]
    return {
        "energy_j": _mean_std([_run_energy(r) for r in runs])[0],
        "energy_gain": _mean_std([100 * (1 - _run_energy(r) / _run_energy(b))
                                  for r, b in same])[0],
        "energy_source": "measured" if runs[0]["energy"]["measured"] else "estimated",
    }


def _cell(row: dict[str, Any], key: str) -> str:
    """A row's cell as text: a configuration without saving shows ``no saving`` where a
    boost or a gain would credit it."""
    if row.get("note") == NO_SAVING and key in CREDIT and row.get(key) is not None:
        return "–" if key.endswith("_std") else NO_SAVING
    return _fmt(row.get(key), key)


def _fmt(value: Any, key: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return "–"
    if key in ("samples_trained", "samples_forwarded", "optimizer_steps", "seeds"):
        return f"{value:,.0f}"
    if key == "energy_j":
        return f"{value:,.0f}"
    if key in ("acc", "acc_std", "robust_acc", "robust_acc_std", "drop", "drop_std",
               "train_time", "prep_time",
               "selection_overhead", "energy_gain", "equal_time_acc") or key.startswith("gain_"):
        return f"{value:.2f}"
    return f"{value:.3f}" if key.startswith("test_") else f"{value:.2f}"


def to_markdown(rows: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(h for _, h in COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(_cell(r, k) for k, _ in COLUMNS) + " |" for r in rows]
    return "\n".join([head, sep, *body]) + "\n"


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[k for k, _ in COLUMNS], extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k, _ in COLUMNS})
    return buf.getvalue()


def to_text(rows: list[dict[str, Any]]) -> str:
    cells = [[h for _, h in COLUMNS]] + [[_cell(r, k) for k, _ in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths))) for row in cells)


#: The short terminal table (fits 100 columns); the full one stays in the files.
COMPACT = [("label", "method"), ("acc", "acc %"), ("drop", "drop p.p."),
           ("train_boost", "boost"), ("gain_vs_equal_time_pp", "vs equal time p.p."),
           ("samples_trained", "trained"), ("samples_forwarded", "sel. fwd")]


def _compact(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if isinstance(value, str) and value.startswith(BELOW):
        return "below budgets"
    return _cell(row, key)


def to_compact_text(rows: list[dict[str, Any]], width: int = 100) -> str:
    """The short table for the terminal: method, accuracy, drop, train boost, gain over
    the equal-time baseline, samples trained and selection forwards, at most ``width``
    characters a line (long labels are shortened with "...")."""
    cells = [[h for _, h in COMPACT]] + [[_compact(r, k) for k, _ in COMPACT] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COMPACT))]
    room = width - sum(widths[1:]) - 2 * (len(COMPACT) - 1)
    if widths[0] > room:
        widths[0] = max(room, 12)
        for row in cells:
            if len(row[0]) > widths[0]:
                row[0] = row[0][:widths[0] - 3] + "..."
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths))) for row in cells)
