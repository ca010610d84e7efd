"""The benchmark report: a self-contained HTML page (plots embedded) and a Markdown file
(plots beside it), made with matplotlib from the stored results only.

Plots: test accuracy against training wall time for every method; the speed-up vs
accuracy-drop plane with its Pareto front; the share of samples trained per epoch.
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
from thrifty.bench.table import COLUMNS, _fmt, compute_rows, to_markdown  # noqa: E402


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
    for f in sorted((path / "runs").glob("*/result.json")):
        r = json.loads(f.read_text())
        bench = r.get("bench") or {}
        label = bench.get("label") or f.parent.name
        seed = bench.get("seed", r.get("config", {}).get("seed", 0))
        results.setdefault(label, {})[seed] = r
    order = [r["label"] for r in spec.get("runs", [])]
    results = dict(sorted(results.items(), key=lambda kv: order.index(kv[0])
                          if kv[0] in order else len(order)))
    return {"results": results, "calibration": calibration,
            "baseline_of": spec.get("baseline_of", {}), "spec": spec}


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


def plot_accuracy_vs_time(results) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, by_seed in results.items():
        runs = _finished(by_seed)
        if not runs:
            continue
        t = list(itertools.accumulate(_epoch_means(runs, "train_time")))
        acc = [100 * a for a in _epoch_means(runs, "test_accuracy")]
        ax.plot(t, acc, marker="o", ms=3, label=label,
                lw=2.5 if label.endswith(BASELINE) else 1.5)
    ax.set_xlabel("training wall time (s, evaluation excluded; mean over seeds)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def plot_pareto(rows) -> bytes:
    pts = [(r["train_boost"], r["drop"], r["label"]) for r in rows
           if r.get("seeds") and not math.isnan(r.get("train_boost", math.nan))]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if pts:
        xy = [(x, y) for x, y, _ in pts]
        ax.scatter([p[0] for p in xy], [p[1] for p in xy])
        for x, y, label in pts:
            ax.annotate(label, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        front = pareto_front(xy)
        ax.plot([xy[i][0] for i in front], [xy[i][1] for i in front], "r--", lw=1,
                label="Pareto front")
        ax.legend(fontsize=7)
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xlabel("train boost (x, higher is better)")
    ax.set_ylabel("accuracy drop (p.p., lower is better)")
    ax.grid(alpha=0.3)
    return _png(fig)


def plot_selected_share(results) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, by_seed in results.items():
        runs = _finished(by_seed)
        if not runs:
            continue
        size = runs[0].get("dataset", {}).get("train_size") or 1
        share = [100 * v / size for v in _epoch_means(runs, "samples_trained")]
        ax.plot(range(1, len(share) + 1), share, marker="o", ms=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("samples trained / training set (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
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
    rows = compute_rows(results, data["calibration"], data["baseline_of"])
    plots = {"accuracy_vs_time.png": plot_accuracy_vs_time(results),
             "speedup_vs_drop.png": plot_pareto(rows),
             "selected_share.png": plot_selected_share(results)}
    for name, png in plots.items():
        (out / name).write_bytes(png)
    env = _environment(results)
    cal = data["calibration"] or {}
    titles = {"accuracy_vs_time.png": "Test accuracy against training time",
              "speedup_vs_drop.png": "Speed-up against accuracy drop (Pareto front)",
              "selected_share.png": "Share of the training set trained on, per epoch"}
    env_lines = [f"{k}: {v}" for k, v in env.items()]
    if cal:
        env_lines.append(f"per-sample cost: forward {1e3 * cal['forward_cost']:.3f} ms, "
                         f"train step {1e3 * cal['train_cost']:.3f} ms")
    md = ["# thrifty benchmark report", "", f"Results: `{path}`", "", to_markdown(rows), ""]
    for name, title in titles.items():
        md += [f"## {title}", "", f"![{title}]({name})", ""]
    md += ["## Environment", "", *[f"- {line}" for line in env_lines], ""]
    (out / "report.md").write_text("\n".join(md))

    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(k), k))}</td>"
                                    for k, _ in COLUMNS) + "</tr>" for r in rows)
    figs = "".join(
        f"<h2>{html.escape(t)}</h2><img alt='{html.escape(t)}' src='data:image/png;base64,"
        f"{base64.b64encode(plots[n]).decode()}'>" for n, t in titles.items())
    env_html = "".join(f"<li>{html.escape(line)}</li>" for line in env_lines)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>thrifty benchmark report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px;
text-align:right}}td:first-child,th:first-child{{text-align:left}}img{{max-width:100%}}</style>
</head><body><h1>thrifty benchmark report</h1><p>Results: <code>{html.escape(str(path))}</code></p>
<table id="comparison"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
{figs}<h2>Environment</h2><ul>{env_html}</ul></body></html>
"""
    (out / "report.html").write_text(page)
    return {"html": out / "report.html", "markdown": out / "report.md"}
