#!/usr/bin/env bash
# Issue 13: a 2-process DDP run (gloo, torchrun) against its single-process twin on
# fmnist-cnn, for the baseline and for InfoBatch (a sampler fed back every rank's losses).
# The 2-process runs use half the batch per process (BATCH=, default 128): the global batch
# of the single process, so both take the same optimizer steps on the same global batches' worth of
# samples. Two processes on two cores share the cores the single process uses with two
# threads: the point is that the result matches, not that it is faster.
#
#   benchmarks/ddp_twin.sh [EPOCHS]   # default 2; results in bench/ddp-twin/ (OUT=, WORKLOAD=)
#
# Finished runs are skipped (delete a run folder to measure it again), unfinished ones start
# again; each line of the summary comes from a finished run's result.json.
set -euo pipefail
epochs=${1:-2}
out=${OUT:-bench/ddp-twin}
py=${PYTHON:-.venv/bin/python}
batch=${BATCH:-128}  # the global batch (the workload's; fmnist-cnn: 128)
common=(--workload "${WORKLOAD:-fmnist-cnn}" --epochs "$epochs" --out-dir "$out" --no-progress)
done_run() {  # a finished run is kept; an unfinished one is removed to start again
  if [ -f "$out/$1/result.json" ] && grep -q '"status": "finished"' "$out/$1/result.json"; then
    return 0
  fi
  rm -rf "${out:?}/$1"
  return 1
}
run_pair() {  # NAME, then method flags
  local name=$1; shift
  done_run "ddp2-$name" || OMP_NUM_THREADS=1 "$py" -m torch.distributed.run --standalone \
    --nproc_per_node=2 -m thrifty.cli train "${common[@]}" --batch-size $((batch / 2)) --threads 1 \
    --run-name "ddp2-$name" "$@"
  done_run "single-$name" || "$py" -m thrifty.cli train "${common[@]}" --batch-size "$batch" \
    --threads 2 --run-name "single-$name" "$@"
}
run_pair baseline
# delta=1: InfoBatch may prune in every epoch (the first has no losses yet and trains all);
# with its default 0.875 a 2-epoch run would never prune, and show nothing of the record
run_pair infobatch --method infobatch --method-arg prune_ratio=0.5 --method-arg delta=1.0
"$py" - "$out" <<'PY'
import json, sys
from pathlib import Path
print(f"{'run':<20} {'world':>5} {'acc %':>7} {'train s':>8} {'loaded':>8} {'trained':>8} {'steps':>6}")
for f in sorted(Path(sys.argv[1]).glob("*/result.json")):
    r = json.loads(f.read_text())
    if r.get("status") != "finished":
        continue
    ep = r["epochs"]
    tot = lambda k: sum(e.get(k) or 0 for e in ep)
    print(f"{f.parent.name:<20} {r.get('world_size', 1):>5} "
          f"{100 * r['final']['test_accuracy']:>7.2f} {tot('train_time'):>8.1f} "
          f"{tot('samples_loaded'):>8} {tot('samples_trained'):>8} {tot('optimizer_steps'):>6}")
PY
