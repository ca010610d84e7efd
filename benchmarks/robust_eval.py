"""Robust accuracy of a bench folder's finished runs on the whole test set, from their
checkpoints (the bench attacks a fixed subset during training; this re-measures the final
weights on every test image, with the same attack, to shrink the measurement noise).

    .venv/bin/python benchmarks/robust_eval.py bench/seed003-fmnist OUT.csv [RUN ...]

RUN: run folder names under ``runs/`` without their ``-sN`` suffix (default: every finished
run). Each row: run, seed, clean accuracy (re-measured; must equal the run's own), robust
accuracy on all test images, the attack and its seconds. Rows already in OUT.csv are kept
and skipped, so a stopped evaluation continues.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import torch

from thrifty.data import eval_view, iterate_batches
from thrifty.metrics.robustness import robust_accuracy
from thrifty.pruning.command import (
    load_model,
    load_train_test,
    read_source,
    resolve_config,
    run_classes,
    test_accuracy,
)

FIELDS = ["run", "seed", "clean_acc", "run_clean_acc", "robust_acc", "samples", "attack",
          "eps", "steps", "step_size", "seconds"]


def main(folder: str, out: str, *names: str) -> None:
    root, out_path = Path(folder), Path(out)
    done = set()
    if out_path.is_file():
        with out_path.open() as f:
            done = {(r["run"], r["seed"]) for r in csv.DictReader(f)}
    else:
        with out_path.open("w", newline="") as f:
            csv.DictWriter(f, FIELDS).writeheader()
    for run_dir in sorted(root.glob("runs/*-s*")):
        name, _, seed = run_dir.name.rpartition("-s")
        result_file = run_dir / "result.json"
        if (names and name not in names) or (name, seed) in done or not result_file.is_file():
            continue
        result = json.loads(result_file.read_text())
        if result.get("status") != "finished":
            continue
        state, config = read_source(run_dir)
        cfg = resolve_config(config, {})
        train, test = load_train_test(cfg)
        model = load_model(cfg, state, run_classes(train), train)
        parts = list(iterate_batches(eval_view(test), range(len(test)), 1024))
        x, y = torch.cat([b.x for b in parts]), torch.cat([b.y for b in parts])
        start = time.perf_counter()
        attack = {k: config[f"attack_{k}"] for k in ("eps", "steps", "step_size")}
        if config.get("attack", "none") == "none":
            print(f"{run_dir.name}: not attacked during its run; skipped")
            continue
        robust = robust_accuracy(model, x, y, run_classes(train), attack=config["attack"],
                                 seed=config["seed"], **attack)
        row = {"run": name, "seed": seed, "clean_acc": test_accuracy(model, test),
               "run_clean_acc": result["final"]["test_accuracy"], "robust_acc": robust,
               "samples": len(y), "attack": config["attack"], "eps": attack["eps"],
               "steps": attack["steps"], "step_size": attack["step_size"] or
               attack["eps"] / 4, "seconds": round(time.perf_counter() - start, 1)}
        with out_path.open("a", newline="") as f:
            csv.DictWriter(f, FIELDS).writerow(row)
        print(f"{name} s{seed}: clean {100 * row['clean_acc']:.2f} % (run: "
              f"{100 * row['run_clean_acc']:.2f}), robust {100 * robust:.2f} % on {len(y)} "
              f"test images ({row['seconds']} s)", flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], *sys.argv[3:])
