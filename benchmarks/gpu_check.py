"""The GPU check (run by ``scripts/gpu_check.sh`` on a lent GPU): the engine against a bare
PyTorch loop on CUDA, a CIFAR-sized ResNet-18 on synthetic tensors in bf16, for the
baseline, InfoBatch and the ``fast`` recipe, with the host synchronisations per training
step counted by ``torch.cuda.set_sync_debug_mode("warn")``.

    python benchmarks/gpu_check.py --samples 20000 --epochs 2 --out OUT

Writes ``OUT/gpu_check.json`` and prints one line per measurement. Needs CUDA.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from thrifty.data import TensorData
from thrifty.engine import Trainer, make_config
from thrifty.models.registry import create_model


def synthetic(n: int, seed: int) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    return TensorData(torch.randn(n, 3, 32, 32, generator=g),
                      torch.randint(0, 10, (n,), generator=g), num_classes=10, name="synthetic")


def bare(train: TensorData, epochs: int, batch: int, device: str) -> dict[str, float]:
    """A plain loop: the same model, optimizer, bf16 autocast and batches, data on the GPU."""
    torch.manual_seed(0)
    model = create_model("resnet18", 10, (3, 32, 32)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x, y = train.x.to(device), train.y.to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = []
    for _ in range(epochs):
        sync()
        t0 = time.perf_counter()
        perm = torch.randperm(len(y), device=device)
        for i in range(0, len(y), batch):
            idx = perm[i:i + batch]
            with torch.autocast(device, dtype=torch.bfloat16):
                loss = F.cross_entropy(model(x[idx]).float(), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync()
        times.append(time.perf_counter() - t0)
    return {"epoch_s": min(times), "steps_per_epoch": -(-len(y) // batch)}


def engine(train: TensorData, test: TensorData, method: str, epochs: int, batch: int,
           out: str, device: str) -> dict[str, Any]:
    cfg = make_config({"model": "resnet18", "dataset": "synthetic", "epochs": epochs,
                       "batch_size": batch, "lr": 0.1, "momentum": 0.9, "nesterov": False,
                       "weight_decay": 5e-4, "schedule": "cosine", "amp": "bf16",
                       "device": device, "out_dir": out, "run_name": method or "baseline",
                       "progress": False, "method": [method] if method else [],
                       "train_stats_every": -1, "energy": "off"})
    trainer = Trainer(cfg, train=train, test=test, log=print)
    real, syncs, steps = trainer._train_step, [0], [0]

    def counted(b: Any, stats: Any) -> None:
        if device != "cuda":
            real(b, stats)
            steps[0] += 1
            return
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                real(b, stats)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        syncs[0] += sum("synchroniz" in str(w.message) for w in seen)
        steps[0] += 1

    trainer._train_step = counted
    result = trainer.fit()
    e = result["epochs"]
    return {"epoch_train_s": [round(x["train_time"], 3) for x in e],
            "train_step_s": [round(x["time"]["train_step"], 3) for x in e],
            "samples_trained": result["final"]["samples_trained"],
            "steps": result["final"]["optimizer_steps"],
            "syncs_per_step": syncs[0] / max(steps[0], 1),
            "test_accuracy": result["final"]["test_accuracy"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=20_000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--out", default=".")
    p.add_argument("--device", default="cuda", help="cpu: a dry run of the script itself")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check needs a CUDA device")
    train, test = synthetic(args.samples, 0), synthetic(2000, 1)
    report: dict[str, Any] = {"device": torch.cuda.get_device_name() if args.device == "cuda"
                              else args.device, "torch": torch.__version__,
                              "samples": args.samples, "epochs": args.epochs,
                              "batch_size": args.batch_size}
    report["bare"] = bare(train, args.epochs, args.batch_size, args.device)
    print("bare", report["bare"], flush=True)
    with tempfile.TemporaryDirectory() as out:
        for method in ("", "infobatch", "fast"):
            r = engine(train, test, method, args.epochs, args.batch_size, out, args.device)
            r["vs_bare_best_epoch"] = round(min(r["epoch_train_s"]) / report["bare"]["epoch_s"], 3)
            report[method or "baseline"] = r
            print(method or "baseline", r, flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "gpu_check.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
