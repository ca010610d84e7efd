"""How offline preparation time grows with dataset size, on synthetic embeddings.

    python benchmarks/prep_scaling.py --sizes 10000 100000 1000000 --dim 512 --classes 10

Times the registry build of IDS (per-class centroid, Euclidean distances, per-class sort)
and SSP's k-means (k = classes, scikit-learn; MiniBatchKMeans above 200k samples, faiss
when installed) plus its cosine distances and selection, from embeddings already in memory:
the embedding pass itself is excluded (it is one forward pass over the data, reported as
`embed_time` by the reducers).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from thrifty.offline.ids import IDSRegistry
from thrifty.offline.ssp import ssp_scores, ssp_select


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--alpha", type=float, default=0.8)
    args = p.parse_args()
    g = torch.Generator().manual_seed(0)
    rows = []
    for n in args.sizes:
        labels = torch.randint(0, args.classes, (n,), generator=g)
        centres = torch.randn(args.classes, args.dim, generator=g) * 3
        z = centres[labels] + torch.randn(n, args.dim, generator=g)
        t0 = time.perf_counter()
        reg = IDSRegistry.build(z, labels, num_classes=args.classes)
        reg.select(args.alpha, "hard")
        t_ids = time.perf_counter() - t0
        t0 = time.perf_counter()
        dist, _, backend = ssp_scores(z, args.classes, seed=0)
        ssp_select(dist, args.alpha, "hard")
        t_ssp = time.perf_counter() - t0
        row = {"samples": n, "dim": args.dim, "ids_s": round(t_ids, 3),
               "ssp_s": round(t_ssp, 3), "ssp_backend": backend}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("| samples | IDS registry (s) | SSP k-means + distances (s) | SSP backend |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['samples']:,} | {r['ids_s']:.3f} | {r['ssp_s']:.3f} | {r['ssp_backend']} |")


if __name__ == "__main__":
    main()
