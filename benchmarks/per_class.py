"""Per-class view of finished runs: test accuracy per class and how often the samples of each
class were trained on (from the checkpoint's per-sample record).

    python benchmarks/per_class.py bench/online-selection/runs/baseline-s0 \
        bench/online-selection/runs/adonis_eta=1-s0

Used in the ADONIS card to show which classes a selector stops training.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from thrifty.data import load_dataset
from thrifty.engine import RunConfig
from thrifty.engine.checkpoint import load_checkpoint
from thrifty.models import create_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders with checkpoint.pt")
    args = p.parse_args()
    loaded: dict[str, tuple] = {}
    print("| run | test accuracy per class (%) | samples trained per class (all epochs) |")
    print("|---|---|---|")
    for run in args.runs:
        state = load_checkpoint(run)
        cfg = RunConfig(**state["config"])
        if cfg.dataset not in loaded:
            loaded[cfg.dataset] = load_dataset(cfg.dataset, cfg.data_root, seed=cfg.seed)
        train, test = loaded[cfg.dataset]
        model = create_model(cfg.model, train.num_classes, train.input_shape)
        model.load_state_dict(state["model"])
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(test.x[i:i + 1000]).argmax(1)
                              for i in range(0, len(test), 1000)])
        classes = range(train.num_classes)
        acc = [100 * (pred[test.y == c] == c).float().mean().item() for c in classes]
        trained = state["record"]["times_trained"].long()
        per_class = [int(trained[train.y == c].sum()) for c in classes]
        print(f"| {run.name} | {' / '.join(f'{a:.0f}' for a in acc)} | "
              f"{' / '.join(str(n) for n in per_class)} |")


if __name__ == "__main__":
    main()
