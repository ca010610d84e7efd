"""Seed 004's test/train loss ratios of finished runs, from their final checkpoints.

The ASSIST thesis reads a test/train ratio of the mean (and q0.9) loss close to 1 as
generalisation, and reports a higher worst-loss ratio for ASSIST than for SGD. A run with
``train_stats_every >= 0`` records these at its last epoch; this script computes the same
numbers afterwards for runs that did not (one forward pass over each split per run), so a
benchmark need not be trained again to answer the question.

    .venv/bin/python benchmarks/loss_ratios.py bench/equal-time-8ep/runs/{baseline,assist}-s? \\
        --csv docs/results/assist-claims/loss_ratios.csv

Runs are grouped by their benchmark label (or folder name without ``-sN``); the table gives
the mean over seeds and the seed count.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from thrifty.engine import Trainer
from thrifty.engine.checkpoint import load_checkpoint
from thrifty.engine.config import RunConfig

KEYS = ("accuracy", "mean", "q0.9", "worst")


def run_statistics(folder: Path, threads: int | None) -> dict[str, dict[str, float]]:
    """``{"train": stats, "test": stats}`` of the final weights of the run in ``folder``."""
    result = json.loads((folder / "result.json").read_text())
    if result.get("status") != "finished":
        raise ValueError(f"{folder}: the run is not finished ({result.get('status')})")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig(**{**result["config"], "out_dir": tmp, "method": [],
                           "method_args": {}, "progress": False, "energy": "off",
                           **({"threads": threads} if threads else {})})
        trainer = Trainer(cfg, log=lambda line: None, distributed=False)
        state = load_checkpoint(folder / "checkpoint.pt")
        if state["epoch"] < cfg.epochs or state.get("position") is not None:
            raise ValueError(f"{folder}: its checkpoint is from before the end of the run "
                             f"(epoch {state['epoch']} of {cfg.epochs} done)")
        trainer.model.load_state_dict(state["model"])
        return {split: trainer.loss_statistics(split) for split in ("train", "test")}


def label_of(folder: Path) -> str:
    result = json.loads((folder / "result.json").read_text())
    return (result.get("bench") or {}).get("label") or re.sub(r"-s\d+$", "", folder.name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished run folders")
    ap.add_argument("--csv", type=Path, help="also write one row per run here")
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    args = ap.parse_args(argv)
    rows = []
    for folder in args.runs:
        stats = run_statistics(folder, args.threads)
        row = {"run": folder.name, "label": label_of(folder)}
        for split in ("train", "test"):
            row.update({f"{split}_{k}": stats[split][k] for k in KEYS})
        row.update({f"ratio_{k}": stats["test"][k] / stats["train"][k] for k in KEYS})
        rows.append(row)
        print(f"{folder}: mean loss train {row['train_mean']:.4f} test {row['test_mean']:.4f}"
              f" ratio {row['ratio_mean']:.3f}", file=sys.stderr)
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    cols = [f"{s}_{k}" for k in ("mean", "q0.9", "worst") for s in ("train", "test", "ratio")]
    print("| label | seeds | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for label in dict.fromkeys(r["label"] for r in rows):
        mine = [r for r in rows if r["label"] == label]
        cells = [f"{statistics.fmean(r[c] for r in mine):.3f}" for c in cols]
        print(f"| {label} | {len(mine)} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    raise SystemExit(main())
