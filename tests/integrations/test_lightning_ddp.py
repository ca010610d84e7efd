"""Lightning with strategy="ddp" on 2 CPU processes (gloo): the Thrift made before
``fit`` joins Lightning's process group, every rank makes one choice, trains a disjoint
share whose union is the choice, and ends with the same record, counts and weights; an
in-batch selector, whose ranks would take different numbers of steps, is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lightning.pytorch")

SCRIPT = Path(__file__).with_name("lightning_ddp_script.py")


def _run(method, out):
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), method, str(out)], env=env,
                          capture_output=True, text=True, timeout=240)
    return proc


@pytest.mark.parametrize("method", ["infobatch", "random-adaptive"])
def test_lightning_ddp_shares_one_choice_and_one_record(tmp_path, method):
    proc = _run(method, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["orders"] == r1["orders"] and len(r0["orders"]) == 2
    for epoch, order in enumerate(r0["orders"]):
        a, b = r0["trained"][epoch], r1["trained"][epoch]
        assert not set(a) & set(b) and sorted(a + b) == sorted(order)
    assert r0["counts"] == r1["counts"]
    assert r0["counts"]["trained"] == sum(len(o) for o in r0["orders"]) == \
        sum(r0["times_trained"])
    assert r0["weights"] == r1["weights"] and r0["times_trained"] == r1["times_trained"]


def test_lightning_ddp_refuses_an_in_batch_selector(tmp_path):
    proc = _run("stale-sb", tmp_path)
    assert proc.returncode != 0
    assert "Lightning's DDP cannot join" in proc.stderr
