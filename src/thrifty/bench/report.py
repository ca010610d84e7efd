"""The benchmark report: a self-contained HTML page (plots embedded) and a Markdown file
(plots beside it), made with matplotlib from the stored results only.

Plots: test accuracy against training wall time for every method; the speed-up vs
accuracy-drop plane with its Pareto front and the equal-time frontier (the budget baselines:
a method above that line beats simply training for less); the share of samples trained per
epoch. Every configuration has its own colour and marker and a short key (``B`` the
baseline, ``B50`` its 50% budget run, ``1``, ``2``, ... the methods) listed in a legend
table beside the plots, so that 20+ configurations stay readable; points far outside the
rest are drawn at the edge with their value written beside them.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import math
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from thrifty.bench.spec import BASELINE  # noqa: E402
from thrifty.bench.table import COLUMNS, _cell, compute_rows, to_markdown  # noqa: E402


def load_results_dir(path: str | Path) -> dict[str, Any]:
    """Read a benchmark folder (``spec.json``, ``calibration.json``, ``runs/*/result.json``)."""
    path = Path(path)
    if not (path / "runs").is_dir():
        raise FileNotFoundError(f"{path} is not a benchmark folder (no runs/ inside); give the "
                                "--out folder of `thrifty bench`")
    spec = json.loads((path / "spec.json").read_text()) if (path / "spec.json").is_file() \
        else {}
    calibration = json.loads((path / "calibration.json").read_text()) \
        if (path / "calibration.json").is_file() else None
    results: dict[str, dict[int, Any]] = {}
    unreadable: list[str] = []
    for f in sorted((path / "runs").glob("*/result.json")):
        try:
            r = json.loads(f.read_text())
            if not isinstance(r, dict):
                raise ValueError("not a mapping")
        except (OSError, ValueError) as exc:  # one bad run does not hide the others
            unreadable.append(f"{f} ({type(exc).__name__}: {exc})")
            continue
        bench = r.get("bench") or {}
        label = bench.get("label") or f.parent.name
        seed = bench.get("seed", r.get("config", {}).get("seed", 0))
        results.setdefault(label, {})[seed] = r
    order = [r["label"] for r in spec.get("runs", [])]
    results = dict(sorted(results.items(), key=lambda kv: order.index(kv[0])
                          if kv[0] in order else len(order)))
    return {"results": results, "calibration": calibration,
            "baseline_of": spec.get("baseline_of", {}),
            "frontier_of": spec.get("frontier_of", {}), "spec": spec,
            "unreadable": unreadable}


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated when maximising x (boost) and minimising y (drop)."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any((x2 >= x and y2 <= y) and (x2 > x or y2 < y)
                        for j, (x2, y2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _finished(by_seed: dict[int, Any]) -> list[dict[str, Any]]:
    return [r for r in by_seed.values() if r and r.get("status") == "finished"]


def _epoch_means(runs: list[dict[str, Any]], key: str) -> list[float]:
    """Per-epoch mean of ``key`` over seeds (up to the shortest run)."""
    n = min(len(r["epochs"]) for r in runs)
    return [statistics.fmean(r["epochs"][e][key] for r in runs) for e in range(n)]


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


MARKERS = "osD^vP*Xh<>p8d"


def plot_keys(labels: list[str], budgets: dict[str, float] | None = None) -> dict[str, str]:
    """A short key per configuration: ``B`` for a baseline (``B`` + group number in option
    grids), ``B50`` for its 50% budget run, ``1``, ``2``, ... for the methods."""
    budgets = budgets or {}
    keys: dict[str, str] = {}
    bases = [lb for lb in labels if lb.endswith(BASELINE) and lb not in budgets]
    n = 0
    for label in labels:
        if label in budgets:
            continue
        if label in bases:
            keys[label] = "B" if len(bases) == 1 else f"B{bases.index(label) + 1}:"
        else:
            n += 1
            keys[label] = str(n)
    for label, share in budgets.items():
        if label in labels:
            twin = next((b for b in bases if label.startswith(b)), None)
            prefix = keys.get(twin, "B") if twin else "B"
            keys[label] = f"{prefix.rstrip(':')}{100 * share:g}"
    return keys


def plot_styles(labels: list[str]) -> dict[str, dict[str, Any]]:
    """A distinct colour and marker per configuration (tab20 colours x markers)."""
    cmap = plt.get_cmap("tab20")
    return {label: {"color": cmap(i % 20), "marker": MARKERS[i % len(MARKERS)]}
            for i, label in enumerate(labels)}


def _clip_limit(values: list[float], floor: float) -> float:
    """An axis limit that keeps the bulk of ``values`` readable: the largest value that is
    not an outlier (above Q3 + 3 IQR), at least ``floor``."""
    vals = sorted(v for v in values if not math.isnan(v))
    if len(vals) < 4:
        return max(vals + [floor])
    q1, q3 = vals[len(vals) // 4], vals[(3 * len(vals)) // 4]
    fence = q3 + 3 * max(q3 - q1, 0.1)
    return max([v for v in vals if v <= fence] + [floor])


def plot_accuracy_vs_time(results, keys: dict[str, str] | None = None,
                          styles: dict[str, dict[str, Any]] | None = None) -> bytes:
    keys = keys or {label: label for label in results}
    styles = styles or plot_styles(list(results))
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    floor = []
    for label, by_seed in results.items():
        runs = _finished(by_seed)
        if not runs:
            continue
        t = list(itertools.accumulate(_epoch_means(runs, "train_time")))
        acc = [100 * a for a in _epoch_means(runs, "test_accuracy")]
        floor.append(acc[-1])
        ax.plot(t, acc, ms=4, label=keys[label], **styles[label],
                lw=2.5 if label.endswith(BASELINE) else 1.2)
    if floor:  # the end points matter; very low early epochs would squash them
        finals = sorted(floor)
        low = min(finals[len(finals) // 4] - 3 * (finals[-1] - finals[len(finals) // 4] + 0.5),
                  finals[0])
        ax.set_ylim(bottom=max(low, 0), top=finals[-1] + 0.5)
    ax.set_xlabel("training wall time (s, evaluation excluded; mean over seeds)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=max(1, len(results) // 12 + 1), loc="lower right",
              title="key (see the table)", title_fontsize=7)
    return _png(fig)


def plot_pareto(rows, keys: dict[str, str] | None = None,
                styles: dict[str, dict[str, Any]] | None = None,
                frontiers: dict[str, list[str]] | None = None) -> bytes:
    """Train boost against accuracy drop: one point per configuration, the Pareto front,
    and the equal-time frontier of each full baseline through its budget runs
    (``frontiers``: full baseline label -> its budget labels)."""
    frontiers = frontiers or {}
    pts = [(r["train_boost"], r["drop"], r["label"]) for r in rows
           if r.get("seeds") and not math.isnan(r.get("train_boost", math.nan))]
    keys = keys or {label: label for _, _, label in pts}
    styles = styles or plot_styles([label for _, _, label in pts])
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    if pts:
        top = _clip_limit([y for _, y, _ in pts], 1.0)
        for x, y, label in pts:
            shown = min(y, top * 1.08)
            ax.scatter([x], [shown], s=36, edgecolor="black", linewidth=0.4, zorder=3,
                       **{"color": styles[label]["color"], "marker": styles[label]["marker"]})
            ax.annotate(keys[label], (x, shown), fontsize=7, xytext=(4, 3),
                        textcoords="offset points")
            if y > top * 1.08:  # an outlier: at the edge, with its value
                ax.annotate(f"{keys[label]}: {y:.1f} p.p. (off scale)", (x, shown),
                            fontsize=7, xytext=(4, -10), textcoords="offset points",
                            color="firebrick")
        xy = [(x, y) for x, y, _ in pts]
        front = pareto_front(xy)
        ax.plot([xy[i][0] for i in front], [min(xy[i][1], top * 1.08) for i in front], "r--",
                lw=1, label="Pareto front")
        # one frontier per full baseline: it and its budget runs, made monotone like the
        # table's (a longer run is credited with the best drop of any shorter one)
        where = {label: (x, y) for x, y, label in pts}
        for n, (full, budgets) in enumerate(sorted(frontiers.items())):
            line = sorted(where[b] for b in [full, *budgets] if b in where)
            best, mono = math.inf, []
            for x, y in sorted(line, key=lambda p: -p[0]):  # from the cheapest (fastest) run
                best = min(best, y)
                mono.append((x, best))
            if len(mono) > 1:
                ax.plot([p[0] for p in mono], [min(p[1], top * 1.08) for p in mono], "k-",
                        lw=1.5, alpha=0.7,
                        label="equal-time frontier (baseline trained less)" if n == 0 else None)
        ax.set_ylim(bottom=min(min(y for _, y, _ in pts), 0) - 0.2, top=top * 1.15 + 0.1)
        ax.legend(fontsize=7, loc="upper left")
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xlabel("train boost (x, higher is better)")
    ax.set_ylabel("accuracy drop (p.p., lower is better)")
    ax.grid(alpha=0.3)
    return _png(fig)


def plot_selected_share(results, keys: dict[str, str] | None = None,
                        styles: dict[str, dict[str, Any]] | None = None) -> bytes:
    keys = keys or {label: label for label in results}
    styles = styles or plot_styles(list(results))
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for label, by_seed in results.items():
        runs = _finished(by_seed)
        if not runs:
            continue
        size = runs[0].get("dataset", {}).get("train_size") or 1
        share = [100 * v / size for v in _epoch_means(runs, "samples_trained")]
        ax.plot(range(1, len(share) + 1), share, ms=4, label=keys[label], lw=1.2,
                **styles[label])
    ax.set_xlabel("epoch")
    ax.set_ylabel("samples trained / training set (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=max(1, len(results) // 12 + 1), title="key",
              title_fontsize=7)
    return _png(fig)


def _environment(results) -> dict[str, Any]:
    for by_seed in results.values():
        for r in _finished(by_seed):
            return r.get("environment", {})
    return {}


def write_report(path: str | Path, out: str | Path | None = None) -> dict[str, Path]:
    """Write ``report.html`` (self-contained) and ``report.md`` (+ PNGs) for a benchmark
    folder; return the paths. Every number comes from the stored results."""
    path = Path(path)
    out = Path(out) if out else path
    out.mkdir(parents=True, exist_ok=True)
    data = load_results_dir(path)
    # a benchmark still running: configurations without a finished run are left out
    results = {k: v for k, v in data["results"].items() if _finished(v)}
    if not results:
        raise ValueError(f"no finished run in {path}/runs: nothing to report yet")
    rows = compute_rows(results, data["calibration"], data["baseline_of"], data["frontier_of"])
    budget_labels = {r["label"]: r["budget"] for r in data["spec"].get("runs", [])
                     if r.get("budget") is not None}
    keys = plot_keys(list(results), budget_labels)
    frontiers: dict[str, list[str]] = {}
    for r in data["spec"].get("runs", []):
        if r.get("budget") is not None and r.get("twin"):
            frontiers.setdefault(r["twin"], []).append(r["label"])
    styles = plot_styles(list(results))
    plots = {"accuracy_vs_time.png": plot_accuracy_vs_time(results, keys, styles),
             "speedup_vs_drop.png": plot_pareto(rows, keys, styles, frontiers),
             "selected_share.png": plot_selected_share(results, keys, styles)}
    for name, png in plots.items():
        (out / name).write_bytes(png)
    env = _environment(results)
    cal = data["calibration"] or {}
    titles = {"accuracy_vs_time.png": "Test accuracy against training time",
              "speedup_vs_drop.png": "Speed-up against accuracy drop (Pareto front; the "
                                     "equal-time frontier: a point below the black line "
                                     "beats training the baseline for less)",
              "selected_share.png": "Share of the training set trained on, per epoch"}
    env_lines = [f"{k}: {v}" for k, v in env.items()]
    if cal:
        env_lines.append(f"per-sample cost: forward {1e3 * cal['forward_cost']:.3f} ms, "
                         f"train step {1e3 * cal['train_cost']:.3f} ms")
    key_rows = [(keys[r["label"]], r["label"]) for r in rows if r["label"] in keys]
    md = ["# thrifty benchmark report", "", f"Results: `{path}`", "", to_markdown(rows), "",
          "## Plot keys", "", "| key | configuration |", "|---|---|",
          *[f"| {k} | {lb} |" for k, lb in key_rows], ""]
    for name, title in titles.items():
        md += [f"## {title}", "", f"![{title}]({name})", ""]
    md += ["## Environment", "", *[f"- {line}" for line in env_lines], ""]
    if data["unreadable"]:  # left out of every table and plot, and said so
        md += ["## Runs left out (unreadable result.json)", "",
               *[f"- {line}" for line in data["unreadable"]], ""]
        env_lines.append("left out, unreadable: " + "; ".join(data["unreadable"]))
    (out / "report.md").write_text("\n".join(md))

    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r, k))}</td>"
                                    for k, _ in COLUMNS) + "</tr>" for r in rows)
    legend = "<table class='keys'><thead><tr><th>key</th><th>configuration</th></tr></thead>" \
        "<tbody>" + "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(lb)}</td></tr>"
                            for k, lb in key_rows) + "</tbody></table>"
    figs = "".join(
        f"<h2>{html.escape(t)}</h2><div class='fig'><img alt='{html.escape(t)}' "
        f"src='data:image/png;base64,{base64.b64encode(plots[n]).decode()}'>{legend}</div>"
        for n, t in titles.items())
    env_html = "".join(f"<li>{html.escape(line)}</li>" for line in env_lines)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>thrifty benchmark report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px;
text-align:right}}td:first-child,th:first-child{{text-align:left}}img{{max-width:100%}}
.fig{{display:flex;gap:1em;align-items:flex-start}}.fig img{{max-width:65%}}
table.keys td{{text-align:left}}</style>
</head><body><h1>thrifty benchmark report</h1><p>Results: <code>{html.escape(str(path))}</code></p>
<table id="comparison"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
{figs}<h2>Environment</h2><ul>{env_html}</ul></body></html>
"""
    (out / "report.html").write_text(page)
    return {"html": out / "report.html", "markdown": out / "report.md"}
