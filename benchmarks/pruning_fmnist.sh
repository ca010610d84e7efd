#!/usr/bin/env bash
# Issue 27: MINT, SNACS, magnitude and random pruning of fmnist-cnn's trained baselines
# (benchmarks/seed003_fmnist.yaml), seeds 0-2: MINT at its defaults, SNACS at tau 0.75, then
# magnitude and random pruning at MINT's and SNACS's own per-layer shares (match=), each
# evaluated before and after one retraining epoch with the masks fixed. Prints every
# command's output; prune times are in each prune.json.
# Usage: benchmarks/pruning_fmnist.sh [BENCH] [OUT] (defaults bench/seed003-fmnist,
# bench/pruning-fmnist).
set -euo pipefail
BENCH=${1:-bench/seed003-fmnist}
OUT=${2:-bench/pruning-fmnist}
T=${THRIFTY:-.venv/bin/thrifty}
mkdir -p "$OUT"
run() { echo "\$ $*"; "$@"; }
for s in 0 1 2; do
  base="$BENCH/runs/baseline-s$s"
  run $T prune --method mint --from "$base" --out "$OUT/s$s/mint" --no-progress
  run $T prune --method snacs --from "$base" --out "$OUT/s$s/snacs" --method-arg tau=0.75 \
      --no-progress
  for m in mint snacs; do
    for b in magnitude random; do
      run $T prune --method $b --from "$base" --out "$OUT/s$s/$m-$b" \
          --method-arg match="$OUT/s$s/$m/prune.json"
    done
  done
  for d in mint snacs mint-magnitude mint-random snacs-magnitude snacs-random; do
    run $T train --workload fmnist-cnn --weights "$OUT/s$s/$d/weights.pt" \
        --masks "$OUT/s$s/$d/masks.pt" --epochs 1 --lr 0.01 --seed $s \
        --out-dir "$OUT/runs" --run-name "s$s-$d-retrain" --no-progress | tail -3
  done
done
