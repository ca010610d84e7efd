"""The two conditional GMI estimators on the same data (seed 003, spec §7): run time per call
(MST / Friedman-Rafsky of MINT vs hash ACMI of SNACS) and the mean squared error of each
under independence (true CMI = 0) as N and the dimension grow, and both (with the printed
occupied-cells-only form of the hash estimator) as the dependence of Y on X weakens
(N = 1,500, d_z = 2).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pruning_estimators.py

Timing: N = 2000 samples of independent normal X, Y, Z for each (d_x, d_y, d_z), the median of
``--repeats`` calls. MSE: the mean of ``I^2`` over ``--trials`` seeds.
"""

from __future__ import annotations

import argparse
import time
from statistics import median

import numpy as np

from thrifty.pruning.estimators import acmi_hash, gmi_mst

ESTIMATORS = {"mst": gmi_mst, "hash": acmi_hash}


def sample(n: int, dims: tuple[int, int, int], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, d)) for d in dims]


def seconds_per_call(fn, data: list[np.ndarray], repeats: int) -> float:
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        fn(*data, seed=r)
        times.append(time.perf_counter() - start)
    return median(times)


def mse(fn, n: int, dims: tuple[int, int, int], trials: int) -> float:
    return float(np.mean([fn(*sample(n, dims, 1000 + t), seed=t) ** 2 for t in range(trials)]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--trials", type=int, default=10)
    args = p.parse_args()
    print("| N | d_x, d_y, d_z | MST s/call | hash s/call | speed-up |\n|---|---|---|---|---|")
    for dims in [(1, 1, 2), (8, 8, 120), (16, 16, 240)]:
        data = sample(2000, dims, 0)
        mst, hashed = (seconds_per_call(ESTIMATORS[k], data, args.repeats) for k in ("mst", "hash"))
        print(f"| 2000 | {dims} | {mst:.4f} | {hashed:.4f} | {mst / hashed:.1f}x |")
    print("\n| Y = X + s*noise, s | MST | hash | hash, occupied cells only (eq. 4.8 as printed) |"
          "\n|---|---|---|---|")
    x, z = sample(1500, (1, 2, 0), 1)[:2]
    noise = sample(1500, (1, 0, 0), 2)[0]
    for s in (0.1, 0.3, 0.6, 1.0, 2.0, 4.0):
        y = x + s * noise
        print(f"| {s} | {gmi_mst(x, y, z):.3f} | {acmi_hash(x, y, z):.3f} | "
              f"{acmi_hash(x, y, z, empty_cells=False):.3f} |")
    print("\n| N | dims | MSE MST | MSE hash |\n|---|---|---|---|")
    for n in [500, 1000, 2000, 5000]:
        print(f"| {n} | (1, 1, 2) | {mse(gmi_mst, n, (1, 1, 2), args.trials):.5f} | "
              f"{mse(acmi_hash, n, (1, 1, 2), args.trials):.5f} |")
    for d in [3, 10, 20, 50]:
        print(f"| 2000 | ({d}, {d}, {d}) | {mse(gmi_mst, 2000, (d, d, d), args.trials):.5f} | "
              f"{mse(acmi_hash, 2000, (d, d, d), args.trials):.5f} |")


if __name__ == "__main__":
    main()
