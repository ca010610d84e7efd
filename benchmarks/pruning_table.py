"""The pruning comparison's table, from ``benchmarks/pruning_fmnist.sh``'s folder:

    .venv/bin/python benchmarks/pruning_table.py bench/pruning-fmnist > table.md

One row per pruning (MINT, SNACS, and magnitude and random pruning at each one's per-layer
shares), mean ± std over the seeds found: the share of all Conv + Linear weights pruned, the
test accuracy before retraining, after one retraining epoch, and the prune time.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ORDER = ("mint", "mint-magnitude", "mint-random", "snacs", "snacs-magnitude", "snacs-random")


def _pm(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    if not values:
        return "–"
    mean = statistics.fmean(values) * scale
    std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def main(folder: str) -> None:
    root = Path(folder)
    seeds = sorted(p.name for p in root.glob("s[0-9]*") if p.is_dir())
    print(f"Seeds: {', '.join(s[1:] for s in seeds)}.\n")
    print("| pruning | pruned % of all weights | acc before retraining % | "
          "acc after 1 retraining epoch % | prune time s |")
    print("|---|---|---|---|---|")
    unpruned = []
    for name in ORDER:
        shares, before, after, times = [], [], [], []
        for s in seeds:
            report = root / s / name / "prune.json"
            if not report.is_file():
                continue
            r = json.loads(report.read_text())
            unpruned.append(r["test_accuracy"]["unpruned"])
            shares.append(r["total_pruned_share"])
            before.append(r["test_accuracy"]["pruned"])
            times.append(r["time_s"])
            run = root / "runs" / f"{s}-{name}-retrain" / "result.json"
            if run.is_file():
                done = json.loads(run.read_text())
                if done.get("status") == "finished":
                    after.append(done["final"]["test_accuracy"])
        print(f"| {name} | {_pm(shares, 100)} | {_pm(before, 100)} | {_pm(after, 100)} | "
              f"{_pm(times, 1, 1)} |")
    seen = {round(u, 6) for u in unpruned}
    print(f"\nUnpruned (the baselines pruned): {_pm(sorted(seen), 100)} %.")


if __name__ == "__main__":
    main(sys.argv[1])
