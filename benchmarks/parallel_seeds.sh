#!/usr/bin/env bash
# Run a benchmark file as one single-threaded `thrifty bench` process per seed, all at once,
# and wait for them; then print the combined table. On a small CPU this gets more epochs per
# hour than one multi-threaded process, and every seed's runs (baseline included) share the
# same conditions. Times are comparable only within one such invocation.
#
#   benchmarks/parallel_seeds.sh benchmarks/reduction_8ep.yaml 0 1 2
#
# Logs go to OUT_DIR/seed<N>.log (OUT_DIR: the file's out_dir). Interrupt with Ctrl-C: every
# process saves its checkpoint; the same command continues.
set -euo pipefail
config=${1:?usage: $0 CONFIG SEED [SEED ...]}
shift
[ $# -gt 0 ] || { echo "usage: $0 CONFIG SEED [SEED ...]" >&2; exit 2; }
thrifty=${THRIFTY:-.venv/bin/thrifty}
out=$(python3 -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['out_dir'])" "$config" 2>/dev/null \
      || .venv/bin/python -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['out_dir'])" "$config")
mkdir -p "$out"
pids=()
trap 'kill -INT "${pids[@]}" 2>/dev/null; wait' INT TERM
for seed in "$@"; do
  PYTHONUNBUFFERED=1 "$thrifty" bench --config "$config" --seeds "$seed" --set threads=1 \
    --no-progress >> "$out/seed$seed.log" 2>&1 &
  pids+=($!)
  echo "seed $seed: pid $! -> $out/seed$seed.log"
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
# every run is finished now (or failed): this only collects them into one table
"$thrifty" bench --config "$config" --no-progress | tail -n +1
exit $status
