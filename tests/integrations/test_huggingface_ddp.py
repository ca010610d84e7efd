"""ThriftyTrainer under torchrun, 2 CPU processes (gloo): the Thrift joins the trainer's
process group; every rank makes one choice and trains a disjoint share whose union is the
choice, in as many steps as the other rank; record, counts and weights agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ranks import free_port

pytest.importorskip("transformers")

SCRIPT = Path(__file__).with_name("hf_ddp_script.py")


@pytest.mark.parametrize("method", ["infobatch", "random-adaptive"])
def test_hugging_face_under_torchrun_shares_one_choice_and_one_record(tmp_path, method):
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(torchrun), "--nproc_per_node=2", f"--master_port={free_port()}",
                           str(SCRIPT), method, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["orders"] == r1["orders"] and len(r0["orders"]) == 3
    for epoch, order in enumerate(r0["orders"]):
        a, b = r0["trained"][epoch], r1["trained"][epoch]
        assert not set(a) & set(b) and sorted(a + b) == sorted(order)
    assert r0["counts"] == r1["counts"] and r0["steps"] == r1["steps"]
    assert r0["counts"]["trained"] == sum(len(o) for o in r0["orders"]) == \
        sum(r0["times_trained"])
    assert r0["times_trained"] == r1["times_trained"] and r0["weights"] == r1["weights"]
    assert (next((tmp_path / "hf").glob("checkpoint-*")) / "thrifty.pt").is_file()
