"""thrifty.Thrift in a user's own DDP loop, 2 CPU processes (gloo), as under torchrun:
every rank makes the same choice, trains a disjoint share of it whose union is the
choice, the record is the same on every rank after each epoch, counts are global, ranks
that keep different numbers of samples (an in-batch selector) do not hang and end with
the same weights and optimizer state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ranks import join_group, reporting, run_ranks
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

WORLD = 2


def _worker(rank, port, method, args, queue):
    join_group(rank, port, WORLD)
    with reporting(rank, queue) as report:
        from thrifty import Thrift
        from thrifty.data import load_digits

        data = load_digits()[0]
        train = TensorDataset(data.x, data.y)
        train.targets = data.y
        torch.manual_seed(0)
        model = nn.parallel.DistributedDataParallel(
            nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)))
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        thrift = Thrift(method, train, epochs=2, batch_size=32, method_args=args,
                        log=lambda s: None)
        loader = DataLoader(thrift.dataset, batch_size=32, sampler=thrift.sampler)
        orders, trained = [], []
        for _ in range(2):
            mine: list[int] = []
            for x, y, idx in thrift.epoch(loader, model, optimizer=opt):
                mine += idx.tolist()
                loss = thrift.loss(F.cross_entropy(model(x), y, reduction="none"), idx)
                opt.zero_grad()
                loss.backward()
                opt.step()
            orders.append(thrift._order.tolist())
            trained.append(mine)
        report.update(
            orders=orders, trained=trained, counts=dict(thrift.counts),
            loss=thrift.record.loss.numpy().copy(),
            times_trained=thrift.record.times_trained.numpy().copy(),
            weights=torch.cat([p.detach().flatten() for p in model.parameters()]).numpy().copy(),
            momentum=torch.cat([opt.state[p]["momentum_buffer"].flatten()
                                for p in model.parameters()]).numpy().copy())


def _run(method, args, timeout=120):
    return run_ranks(_worker, (method, args), WORLD, timeout)


@pytest.mark.parametrize("method,args", [
    ("infobatch", None), ("random-adaptive", {"ratio": 0.5, "period": 1}),
    ("stale-sb", None), ("rpc+sb", {"rpc.alpha": 0.6})])
def test_two_processes_share_one_choice_and_one_record(method, args):
    (r0, r1), took = _run(method, args)
    assert "error" not in r0 and "error" not in r1, r0.get("traceback") or r1.get("traceback")
    assert took < 120  # no hang, whatever each rank kept
    assert r0["orders"] == r1["orders"]  # one choice on every rank
    for epoch, order in enumerate(r0["orders"]):
        a, b = r0["trained"][epoch], r1["trained"][epoch]
        if method in ("infobatch", "random-adaptive"):  # samplers: shares of the choice
            assert not set(a) & set(b) and sorted(a + b) == sorted(order)
        else:  # selectors train a subset of each rank's share
            assert set(a) | set(b) <= set(order)
    for key in ("loss", "times_trained", "weights", "momentum"):
        assert np.array_equal(r0[key], r1[key], equal_nan=key == "loss"), key
    # global counts: the same on both ranks, and what both trained together
    assert r0["counts"] == r1["counts"]
    assert r0["counts"]["trained"] == int(r0["times_trained"].sum())
    assert r0["counts"]["loaded"] == sum(len(o) for o in r0["orders"])
