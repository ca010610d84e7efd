"""Per-seed clean and robust accuracy of a bench folder's runs, and paired differences.

    .venv/bin/python benchmarks/paired_table.py bench/seed003-fmnist "caper_remove=0.05" \\
        baseline "random_removal_0.05"

prints, for every seed, each named run's test accuracy, robust accuracy (when the run was
attacked) and train time, then the paired differences of the first run against each of the
others (mean ± standard deviation over the seeds both finished, how many seeds it is
ahead, and the two-sided p-value of a paired t-test: a one-sample t-test of the differences, scipy's
``ttest_1samp``). Runs are the folder names under ``runs/`` without their ``-sN`` suffix.

``--robust-csv FILE`` takes the robust accuracies from ``benchmarks/robust_eval.py``'s CSV
(the whole test set) instead of the runs' own (their fixed attack subset).
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
from pathlib import Path

from scipy.stats import ttest_1samp


def _read(root: Path, name: str) -> dict[int, dict[str, float]]:
    out = {}
    for path in sorted(root.glob(f"runs/{name}-s*/result.json")):
        result = json.loads(path.read_text())
        if result.get("status") != "finished":
            continue
        seed = int(path.parent.name.rsplit("-s", 1)[1])
        final = result["final"]
        out[seed] = {"acc": 100 * final["test_accuracy"], "time": final["train_time"]}
        if final.get("robust_accuracy") is not None:
            out[seed]["robust"] = 100 * final["robust_accuracy"]
    return out


def _pm(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):+.2f} ± {std:.2f}"


def _robust_csv(path: str) -> dict[tuple[str, int], float]:
    with open(path) as f:
        return {(r["run"], int(r["seed"])): 100 * float(r["robust_acc"])
                for r in csv.DictReader(f)}


def _ms(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.2f} ± {std:.2f}"


def main(folder: str, first: str, *others: str, robust_csv: str | None = None) -> None:
    root = Path(folder)
    runs = {name: _read(root, name) for name in (first, *others)}
    if robust_csv:  # the whole test set: only the runs it covers keep a robust accuracy
        full = _robust_csv(robust_csv)
        for name, by_seed in runs.items():
            for seed, values in by_seed.items():
                values.pop("robust", None)
                if (name, seed) in full:
                    values["robust"] = full[name, seed]
    seeds = sorted(set().union(*(set(r) for r in runs.values())))
    print("| run | seed | acc % | robust acc % | train s |\n|---|---|---|---|---|")
    for name, by_seed in runs.items():
        for s in seeds:
            if s in by_seed:
                v = by_seed[s]
                robust = f"{v['robust']:.2f}" if "robust" in v else "–"
                print(f"| {name} | {s} | {v['acc']:.2f} | {robust} | {v['time']:.1f} |")
    print("\n| run | seeds | acc % (mean ± std) | robust acc % (mean ± std) |\n|---|---|---|---|")
    for name, by_seed in runs.items():
        robust = [v["robust"] for v in by_seed.values() if "robust" in v]
        print(f"| {name} | {len(by_seed)} | {_ms([v['acc'] for v in by_seed.values()])} | "
              f"{_ms(robust) if robust else '–'} |")
    print(f"\n| {first} minus | metric | paired difference p.p. (mean ± std) | seeds ahead | "
          "paired t-test p |")
    print("|---|---|---|---|---|")
    for other in others:
        both = sorted(set(runs[first]) & set(runs[other]))
        for metric in ("acc", "robust"):
            diffs = [runs[first][s][metric] - runs[other][s][metric] for s in both
                     if metric in runs[first][s] and metric in runs[other][s]]
            if diffs:
                ahead = sum(d > 0 for d in diffs)
                p = ttest_1samp(diffs, 0.0).pvalue if len(diffs) > 1 else float("nan")
                print(f"| {other} | {metric} | {_pm(diffs)} | {ahead} of {len(diffs)} | "
                      f"{p:.3f} |")


if __name__ == "__main__":
    args = sys.argv[1:]
    csv_path = None
    if "--robust-csv" in args:
        at = args.index("--robust-csv")
        csv_path = args[at + 1]
        del args[at:at + 2]
    if len(args) < 3:
        sys.exit(__doc__)
    main(args[0], args[1], *args[2:], robust_csv=csv_path)
