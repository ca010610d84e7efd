#!/usr/bin/env bash
# MINT, SNACS, magnitude and random pruning of the digits-mlp workload through the command
# line (seed 003, spec §7): train once, prune four ways at the same per-layer shares, retrain
# each once with the same recipe. Usage: benchmarks/pruning_digits_cli.sh [OUT] (default
# bench/pruning-cli). Prints every command's output.
set -euo pipefail
OUT=${1:-bench/pruning-cli}
T=${THRIFTY:-.venv/bin/thrifty}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"
run() { echo "\$ $*"; "$@"; }
run $T train --workload digits-mlp --out-dir "$OUT/runs" --run-name base --no-progress
run $T prune --method mint --from "$OUT/runs/base" --out "$OUT/mint" --no-progress
run $T prune --method snacs --from "$OUT/runs/base" --out "$OUT/snacs" \
    --method-arg tau=0.75 --no-progress
for m in mint snacs; do
  for b in magnitude random; do
    run $T prune --method $b --from "$OUT/runs/base" --out "$OUT/$m-$b" \
        --method-arg match="$OUT/$m/prune.json"
  done
done
for d in mint snacs mint-magnitude mint-random snacs-magnitude snacs-random; do
  run $T train --workload digits-mlp --weights "$OUT/$d/weights.pt" --masks "$OUT/$d/masks.pt" \
      --out-dir "$OUT/runs" --run-name "$d-retrain" --no-progress | tail -3
done
