#!/usr/bin/env bash
# Issue 27: MINT, SNACS, magnitude and random pruning of fmnist-cnn's trained baselines
# (benchmarks/seed003_fmnist.yaml), seeds 0-2: MINT at its defaults, SNACS at tau 0.75, then
# magnitude and random pruning at MINT's and SNACS's own per-layer shares (match=), each
# evaluated before and after one retraining epoch with the masks fixed. Prints every
# command's output; prune times are in each prune.json.
# Usage: benchmarks/pruning_fmnist.sh [BENCH] [OUT] [SEEDS] (defaults bench/seed003-fmnist,
# bench/pruning-fmnist, "0 1 2"). Resumable: a prune whose prune.json exists and a retrain
# whose result.json says finished are skipped.
set -euo pipefail
BENCH=${1:-bench/seed003-fmnist}
OUT=${2:-bench/pruning-fmnist}
T=${THRIFTY:-.venv/bin/thrifty}
mkdir -p "$OUT"
SEEDS=${3:-0 1 2}
run() { echo "\$ $*"; "$@"; }
prune() {  # prune DIR ARGS...: skipped when DIR holds a finished prune
  local dir=$1; shift
  [ -f "$dir/prune.json" ] && { echo "# $dir: done earlier"; return; }
  run $T prune "$@" --out "$dir"
}
for s in $SEEDS; do
  base="$BENCH/runs/baseline-s$s"
  prune "$OUT/s$s/mint" --method mint --from "$base" --no-progress
  prune "$OUT/s$s/snacs" --method snacs --from "$base" --method-arg tau=0.75 --no-progress
  for m in mint snacs; do
    for b in magnitude random; do
      prune "$OUT/s$s/$m-$b" --method $b --from "$base" \
          --method-arg match="$OUT/s$s/$m/prune.json"
    done
  done
  for d in mint snacs mint-magnitude mint-random snacs-magnitude snacs-random; do
    if grep -qs '"status": "finished"' "$OUT/runs/s$s-$d-retrain/result.json"; then
      echo "# s$s-$d-retrain: done earlier"; continue
    fi
    run $T train --workload fmnist-cnn --weights "$OUT/s$s/$d/weights.pt" \
        --masks "$OUT/s$s/$d/masks.pt" --epochs 1 --lr 0.01 --seed $s \
        --out-dir "$OUT/runs" --run-name "s$s-$d-retrain" --no-progress | tail -3
  done
done
