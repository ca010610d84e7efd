#!/usr/bin/env bash
# The GPU check, as one short script for a lent GPU machine (the device tool runs it in a
# copy of the working tree; results land in $OUT, default ./gpu-check). Uses the Python that
# has a CUDA build of torch: .venv when carried, else the machine's own python3.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check}
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT.nvidia-smi.txt" || true
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA'; print('torch', torch.__version__, torch.cuda.get_device_name())"
# the step path must not synchronise: the CUDA test of the suite, then the measurements
"$PY" -m pytest -q -p no:cacheprovider tests/engine/test_core.py -k cuda
"$PY" benchmarks/gpu_check.py --samples "${SAMPLES:-20000}" --epochs "${EPOCHS:-2}" --out "$OUT"
