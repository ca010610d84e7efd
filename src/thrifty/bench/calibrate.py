"""Per-sample costs of a no-grad forward (F) and of a training step (T) on this machine,
for the ideal boost of BENCHMARK.md."""

from __future__ import annotations

import itertools
import statistics
import time

import torch
import torch.nn.functional as F

from thrifty.data import iterate_batches
from thrifty.engine import RunConfig, Trainer


def calibrate(config: RunConfig, batches: int = 12, warmup: int = 3,
              trainer: Trainer | None = None) -> dict[str, float]:
    """Median seconds per sample of an eval-mode no-grad forward and of a train step
    (forward + backward + optimizer step) at the run's batch size, on its device, over
    ``warmup`` unmeasured then ``batches`` measured batches of the training set (its batches
    are visited again when it has fewer)."""
    trainer = trainer or Trainer(config, log=lambda s: None)
    model, opt, bs = trainer.model, trainer.optimizer, config.batch_size
    n = min(len(trainer.train_data), bs * (batches + warmup))
    data = list(iterate_batches(trainer.train_data, range(n), bs, device=trainer.device))
    data = [b for b in data if len(b.idx) == bs] or data
    if not data:
        raise ValueError("calibration needs at least one training sample")
    # a training set smaller than warmup + batches batches is visited again
    data = list(itertools.islice(itertools.cycle(data), warmup + batches))
    fwd, step = [], []
    for i, b in enumerate(data):
        t0 = time.perf_counter()
        trainer._forward_eval(b.x, b.y)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        model.train()
        loss = F.cross_entropy(model(b.x), b.y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        if i >= warmup:
            fwd.append((t1 - t0) / len(b.idx))
            step.append((t2 - t1) / len(b.idx))
    forward_cost, train_cost = statistics.median(fwd), statistics.median(step)
    return {"forward_cost": forward_cost, "train_cost": train_cost,
            "train_over_forward": train_cost / forward_cost, "batch_size": bs,
            "batches": len(fwd)}
