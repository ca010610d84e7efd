"""Engine overhead check: one fmnist-cnn epoch through thrifty's Trainer vs a bare PyTorch
loop over the same in-memory tensors, model and batch size (issue: foundation, "no more
than 1.1x").

    python benchmarks/bare_loop.py --repeats 3

Runs are interleaved (bare, engine, bare, engine, ...) so machine drift hits both; the
ratio of medians is reported. The engine's time is its training time (evaluation excluded).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from thrifty.data import load_fashion_mnist
from thrifty.engine import Trainer, make_config
from thrifty.models import SmallCNN


def bare_epoch(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> float:
    torch.manual_seed(seed)
    model = SmallCNN(10, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    model.train()
    t0 = time.perf_counter()
    perm = torch.randperm(len(y))
    for i in range(0, len(y), batch_size):
        idx = perm[i:i + batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def engine_epoch(train, test, batch_size: int, seed: int, out: str) -> float:
    cfg = make_config({"workload": "fmnist-cnn", "epochs": 1, "batch_size": batch_size,
                       "seed": seed, "out_dir": out, "progress": False})
    result = Trainer(cfg, train=train, test=test, log=lambda s: None).fit()
    return result["epochs"][0]["train_time"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    args = p.parse_args()
    train, test = load_fashion_mnist()
    bare, engine = [], []
    with tempfile.TemporaryDirectory() as out:
        for r in range(args.repeats):
            bare.append(bare_epoch(train.x, train.y, args.batch_size, r))
            engine.append(engine_epoch(train, test, args.batch_size, r, out))
            print(f"repeat {r + 1}: bare {bare[-1]:.2f}s  engine {engine[-1]:.2f}s", flush=True)
    mb, me = statistics.median(bare), statistics.median(engine)
    print(json.dumps({"bare_median_s": round(mb, 3), "engine_median_s": round(me, 3),
                      "ratio": round(me / mb, 3), "torch_threads": torch.get_num_threads(),
                      "bare_s": [round(v, 3) for v in bare],
                      "engine_s": [round(v, 3) for v in engine]}))


if __name__ == "__main__":
    main()
