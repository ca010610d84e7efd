"""MINT and SNACS against magnitude and random pruning at equal sparsity, one retraining pass
(seed 003, spec §7), on scikit-learn digits with an MLP.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pruning_digits.py --hidden 256 128 \
        --seeds 0 1 2 --out bench/pruning-digits

For every seed: train the MLP (the digits-mlp recipe), prune it with each MINT/SNACS setting,
then prune it with magnitude and random pruning copying the per-layer shares of that result,
retrain every pruned model once with the same recipe (masks fixed), and print one row per
(setting, method): pruned share of all Conv + Linear weights and of the pruned layers, test
accuracy unpruned / pruned before retraining / after retraining (final epoch and best epoch),
and pruning time. Writes OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from statistics import mean, stdev

import torch

from thrifty.data import load_digits
from thrifty.engine import Trainer, make_config
from thrifty.models.small import MLP
from thrifty.pruning import apply_masks, baseline_prune, mint_prune, save_masks, snacs_prune
from thrifty.pruning.command import test_accuracy

SETTINGS = ["mint", "mint delta=0.3", "snacs tau=0.5", "snacs tau=0.75",
            "snacs tau=0.65 protect=0.3", "snacs tau=0.75 phi=one"]


def parse_setting(text: str) -> tuple[str, dict]:
    """``"snacs tau=0.5"`` -> ``("snacs", {"tau": 0.5})``."""
    import yaml

    name, *pairs = shlex.split(text)
    return name, {k: yaml.safe_load(v) for k, v in (p.split("=", 1) for p in pairs)}


def fresh_model(hidden: list[int], state: dict | None = None) -> MLP:
    model = MLP(10, (1, 8, 8), hidden=tuple(hidden))
    if state is not None:
        model.load_state_dict(state)
    return model


def run(cfg_over: dict, model: MLP, data) -> dict:
    cfg = make_config({"workload": "digits-mlp", "progress": False, **cfg_over})
    result = Trainer(cfg, model=model, train=data[0], test=data[1], log=lambda _: None).fit()
    accs = [e["test_accuracy"] for e in result["epochs"]]
    return {"final": accs[-1], "best": max(accs)}


def evaluate_setting(text: str, base: dict, hidden: list[int], seed: int, out: Path, data,
                     epochs: int) -> list[dict]:
    name, options = parse_setting(text)
    model = fresh_model(hidden, base)
    x, y = data[0].x, data[0].y
    prune = mint_prune if name == "mint" else snacs_prune
    first = prune(model, x, y, seed=seed, progress=False, **options)
    results = [("method", first)]
    for kind in ("magnitude", "random"):
        results.append((kind, baseline_prune(model, kind, match=first.report, seed=seed)))
    rows = []
    for role, res in results:
        label = f"{text} / {res.report['method']}"
        path = save_masks(out / f"s{seed}" / f"{label.replace(' ', '_').replace('/', '')}.pt",
                          res.masks)
        pruned = apply_masks(fresh_model(hidden, base), res.masks)
        layer_weights = sum(v["weights"] for v in res.report["layers"].values())
        layer_pruned = sum(v["weights"] * v["pruned_share"] for v in res.report["layers"].values())
        retrained = run({"epochs": epochs, "seed": seed, "masks": str(path),
                         "out_dir": str(out / "runs"), "run_name": f"{label}-s{seed}"},
                        fresh_model(hidden, base), data)
        rows.append({"setting": text, "method": res.report["method"], "role": role,
                     "seed": seed, "total_pruned": res.report["total_pruned_share"],
                     "layers_pruned": layer_pruned / layer_weights,
                     "per_layer": {k: v["pruned_share"] for k, v in res.report["layers"].items()},
                     "acc_pruned": test_accuracy(pruned, data[1]),
                     "acc_final": retrained["final"], "acc_best": retrained["best"],
                     "time_s": res.report["time_s"]})
    return rows


def summarise(rows: list[dict], base_acc: list[float]) -> str:
    def ms(values: list[float]) -> str:
        values = [100 * v for v in values]
        return f"{mean(values):.2f}" + (f" ± {stdev(values):.2f}" if len(values) > 1 else "")

    lines = [f"unpruned test accuracy: {ms(base_acc)}% ({len(base_acc)} seeds)", "",
             "| setting | method | pruned % (all / pruned layers) | acc pruned % | "
             "acc retrained final % | best % | prune time s |", "|---|---|---|---|---|---|---|"]
    keys = dict.fromkeys((r["setting"], r["method"]) for r in rows)
    for setting, method in keys:
        sel = [r for r in rows if r["setting"] == setting and r["method"] == method]
        lines.append(f"| {setting} | {method} | {ms([r['total_pruned'] for r in sel])} / "
                     f"{ms([r['layers_pruned'] for r in sel])} | "
                     f"{ms([r['acc_pruned'] for r in sel])} | {ms([r['acc_final'] for r in sel])}"
                     f" | {ms([r['acc_best'] for r in sel])} | "
                     f"{mean(r['time_s'] for r in sel):.1f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, nargs="+", default=[128],
                   help="hidden widths of the MLP (default: 128, the digits-mlp model)")
    p.add_argument("--epochs", type=int, default=10, help="training and retraining epochs")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--setting", action="append", help=f"a pruning setting (default: {SETTINGS})")
    p.add_argument("--out", type=Path, default=Path("bench/pruning-digits"))
    args = p.parse_args()
    torch.set_num_threads(1)
    rows, base_acc = [], []
    for seed in args.seeds:
        data = load_digits(seed=seed)
        torch.manual_seed(seed)
        model = fresh_model(args.hidden)
        base_acc.append(run({"epochs": args.epochs, "seed": seed, "out_dir": str(args.out / "runs"),
                             "run_name": f"base-s{seed}"}, model, data)["final"])
        base = {k: v.clone() for k, v in model.state_dict().items()}
        for text in args.setting or SETTINGS:
            rows += evaluate_setting(text, base, args.hidden, seed, args.out, data, args.epochs)
            print(f"seed {seed}: {text} done", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"rows": rows, "base": base_acc,
                                                       "args": vars(args)}, indent=2,
                                                      default=str))
    print(summarise(rows, base_acc))


if __name__ == "__main__":
    main()
