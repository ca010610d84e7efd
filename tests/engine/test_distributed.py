"""DDP with 2 CPU processes (gloo, torch.multiprocessing): identical records and weights on
both ranks, disjoint shards, global work counts equal to a single process's, a failing rank
ending the run on both, and an exact resume with the same world size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
from ranks import join_group, reporting, run_ranks

from thrifty.engine import EpochSampler, Trainer, TrainingInterrupted, make_config

WORLD = 2


def _config(out, **kw):
    base = {"workload": "digits-mlp", "epochs": 2, "out_dir": str(out), "progress": False,
            "batch_size": 32, "run_name": "ddp", "threads": 1, "energy": "off"}
    return make_config({**base, **kw})


class FailsOnRankOne(EpochSampler):
    name = "fails"

    def begin_epoch(self, ctx):
        super().begin_epoch(ctx)
        if ctx.epoch == 1 and dist.get_rank() == 1:
            raise RuntimeError("rank 1 breaks")


def _worker(rank, port, out, case, queue):
    join_group(rank, port, WORLD)
    with reporting(rank, queue) as report:
        kind, kw = case
        if kind == "resume":
            trainer = Trainer.resume(out / "ddp", log=lambda s: None)
        else:
            sampler = FailsOnRankOne() if kind == "fail" else None
            trainer = Trainer(_config(out, **kw), sampler=sampler, log=lambda s: None)
        loaded, steps = {}, [0]
        real_batches, real_step = trainer._loaded_batches, trainer.optimizer.step

        def batches(order, position):
            for b in real_batches(order, position):
                loaded.setdefault(trainer.ctx.epoch, []).extend(b.idx.tolist())
                yield b

        def step(*a, **k):
            steps[0] += 1
            return real_step(*a, **k)

        trainer._loaded_batches, trainer.optimizer.step = batches, step
        if kind == "stop":  # a stop asked in epoch 2 ends the run after epoch 2
            trainer.on_batch_end = lambda t: t.request_stop() if t.ctx.epoch == 1 else None
        try:
            result = trainer.fit()
        except TrainingInterrupted:
            result = None
        # numpy, not tensors: torch's queue shares tensors through the sender's memory, gone
        # once it exits
        report.update(
            loss=trainer.record.loss.numpy().copy(),
            kind=trainer.record.loss_kind.numpy().copy(),
            times_trained=trainer.record.times_trained.numpy().copy(),
            times_forwarded=trainer.record.times_forwarded.numpy().copy(),
            weights=torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
            .numpy().copy(),
            momentum=torch.cat([trainer.optimizer.state[p]["momentum_buffer"].flatten()
                                for p in trainer.model.parameters()
                                if p in trainer.optimizer.state]).numpy().copy(),
            loaded=loaded, steps=steps[0],
            final=None if result is None else result["final"],
            sync=0 if result is None else result["epochs"][-1]["method"].get(
                "record_sync_bytes", 0),
            world=None if result is None else result["world_size"])


def _run(out, case, timeout=120):
    return run_ranks(_worker, (out, case), WORLD, timeout)


def _single(out, **kw):
    cfg = _config(out, run_name="single", threads=None, **kw)
    return Trainer(cfg, log=lambda s: None).fit()


@pytest.mark.parametrize("kw", [
    {"method": ["infobatch"]},
    {"method": ["stale-sb"]},
    {"method": ["rpc", "sb"], "method_args": {"rpc.alpha": 0.6}},
], ids=["infobatch", "stale-sb", "rpc+sb"])
def test_both_ranks_hold_the_same_record_and_weights(tmp_path, kw):
    (r0, r1), _ = _run(tmp_path, ("train", kw))
    assert "error" not in r0 and "error" not in r1, r0.get("traceback") or r1.get("traceback")
    # the optimizer state too: a rank with fewer steps takes the state of the one with most
    for key in ("loss", "kind", "times_trained", "times_forwarded", "weights", "momentum"):
        assert np.array_equal(r0[key], r1[key], equal_nan=key == "loss"), key
    for epoch in r0["loaded"]:  # each epoch's shards are disjoint
        assert not set(r0["loaded"][epoch]) & set(r1["loaded"][epoch])
    assert r0["world"] == 2 and r0["final"]["samples_trained"] == int(r0["times_trained"].sum())
    assert r0["sync"] > 0  # the epoch's record exchange is measured


@pytest.mark.parametrize("kw", [{}, {"method": ["random-adaptive"],
                                     "method_args": {"ratio": 0.5, "period": 1}}],
                         ids=["baseline", "random-adaptive"])
def test_disjoint_shards_equal_steps_and_global_counts_equal_one_process(tmp_path, kw):
    (r0, r1), _ = _run(tmp_path, ("train", kw))
    assert "error" not in r0 and "error" not in r1, r0.get("traceback") or r1.get("traceback")
    single = _single(tmp_path, batch_size=64, **kw)
    for epoch in (0, 1):
        a, b = r0["loaded"][epoch], r1["loaded"][epoch]
        assert abs(len(a) - len(b)) <= 1 and not set(a) & set(b)  # disjoint, even shards
        expected = single["epochs"][epoch]["samples_loaded"]
        assert len(set(a) | set(b)) == len(a) + len(b) == expected
    assert abs(r0["steps"] - r1["steps"]) <= 2
    for key in ("samples_loaded", "samples_trained", "samples_forwarded"):
        assert r0["final"][key] == single["final"][key], key
    if not kw:
        assert sorted(r0["loaded"][0] + r1["loaded"][0]) == list(range(1347))


def test_a_failing_rank_fails_the_run_on_both_within_bounded_time(tmp_path):
    (r0, r1), elapsed = _run(tmp_path, ("fail", {"epochs": 3}), timeout=150)
    assert "rank 1 breaks" in r1.get("error", "")
    assert "error" in r0  # rank 0 does not hang nor report success
    result = (tmp_path / "ddp" / "result.json").read_text()
    assert '"status": "failed"' in result
    assert elapsed < 150


def test_resume_under_two_ranks_continues_exactly_and_refuses_another_world(tmp_path):
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    kw = {"epochs": 3, "method": ["stale-sb"]}
    (ref, _), _ = _run(ref_dir, ("train", kw))
    (stopped, _), _ = _run(run_dir, ("stop", kw))
    assert stopped["final"] is None  # interrupted, at the end of epoch 2
    with pytest.raises(ValueError, match="--nproc_per_node=2"):  # one process: refused
        Trainer.resume(run_dir / "ddp", log=lambda s: None).fit()
    (resumed, other), _ = _run(run_dir, ("resume", {}))
    assert "error" not in resumed, resumed.get("traceback")
    assert np.array_equal(resumed["weights"], ref["weights"])
    assert np.array_equal(resumed["weights"], other["weights"])
