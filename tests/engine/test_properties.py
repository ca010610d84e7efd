"""Property-based tests (hypothesis) of the contract every driver relies on: for any seed,
pool and ratio a sampler's epoch choice is a subset of the pool of the promised size; DDP
shares are disjoint and cover the choice; packing hands every chosen sample on exactly
once; a short last batch joins its predecessor without losing or repeating a sample; a
sampler's state round trip continues identically; the record applies updates in order."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from thrifty.data.tensor import Batch
from thrifty.engine import EpochSampler, PackingRule, TrainContext
from thrifty.engine.core import min_batch, without_small_tail
from thrifty.engine.distributed import Dist, shard
from thrifty.engine.packing import Packer
from thrifty.engine.record import SampleRecord
from thrifty.sampling import InfoBatch, RandomAdaptive

FAST = settings(max_examples=40, deadline=None)


def _ctx(n: int, seed: int, epochs: int = 4) -> TrainContext:
    record = SampleRecord(n)
    return TrainContext(epoch=0, epochs=epochs, record=record, batch_size=8, seed=seed,
                        generator=torch.Generator().manual_seed(seed + 2), num_classes=3,
                        labels=torch.arange(n) % 3)


def _pool(n: int, keep: list[bool]) -> torch.Tensor:
    chosen = [i for i in range(n) if keep[i % len(keep)]]
    return torch.tensor(chosen or [0], dtype=torch.long)


def _epoch(sampler: EpochSampler, ctx: TrainContext, epoch: int) -> list[int]:
    ctx.epoch = epoch
    sampler.set_epoch(epoch)
    sampler.begin_epoch(ctx)
    return list(iter(sampler))


@FAST
@given(n=st.integers(2, 300), keep=st.lists(st.booleans(), min_size=1, max_size=7),
       ratio=st.floats(0.01, 1.0), seed=st.integers(0, 2 ** 31), epoch=st.integers(0, 5))
def test_random_adaptive_chooses_a_subset_of_the_pool_of_the_promised_size(
        n, keep, ratio, seed, epoch):
    pool = _pool(n, keep)
    ctx = _ctx(n, seed, epochs=6)
    sampler = RandomAdaptive(ratio=ratio, period=1)
    sampler.setup(pool, ctx)
    order = _epoch(sampler, ctx, epoch)
    assert len(set(order)) == len(order) and set(order) <= set(pool.tolist())
    assert len(order) == max(1, math.ceil(ratio * len(pool)))


@FAST
@given(n=st.integers(2, 300), keep=st.lists(st.booleans(), min_size=1, max_size=7),
       seed=st.integers(0, 2 ** 31), losses=st.lists(st.floats(0, 10), min_size=1,
                                                     max_size=9))
def test_infobatch_chooses_a_subset_of_the_pool_and_keeps_every_sample_above_the_mean(
        n, keep, seed, losses):
    pool = _pool(n, keep)
    ctx = _ctx(n, seed, epochs=8)
    sampler = InfoBatch()
    sampler.setup(pool, ctx)
    first = _epoch(sampler, ctx, 0)
    assert sorted(first) == sorted(pool.tolist())  # nothing is known yet: the whole pool
    values = torch.tensor([losses[i % len(losses)] for i in range(n)])
    ctx.record.update(pool, values[pool], None, 0, trained=True)
    order = _epoch(sampler, ctx, 1)
    assert len(set(order)) == len(order) and set(order) <= set(pool.tolist())
    mean = float(values[pool].mean())
    assert {int(i) for i in pool if float(values[i]) >= mean} <= set(order)


@FAST
@given(order=st.lists(st.integers(0, 10 ** 6), unique=True, max_size=300),
       world=st.integers(1, 8))
def test_ddp_shares_are_disjoint_cover_the_choice_and_differ_by_at_most_one(order, world):
    t = torch.tensor(order, dtype=torch.long)
    shares = [shard(t, Dist(r, world)).tolist() for r in range(world)]
    seen = [i for s in shares for i in s]
    assert sorted(seen) == sorted(order) and len(seen) == len(set(seen))
    sizes = [len(s) for s in shares]
    assert max(sizes) - min(sizes) <= 1


@FAST
@given(sizes=st.lists(st.integers(0, 40), max_size=30), rho=st.integers(1, 16),
       strict=st.booleans(), repeat=st.booleans(),
       end=st.sampled_from(["flush", "carry", "drop"]), last=st.booleans())
def test_packing_hands_every_chosen_sample_on_once(sizes, rho, strict, repeat, end, last):
    packer = Packer(rho, PackingRule(strict=strict, repeat=repeat, end_of_epoch=end))
    start, out = 0, []
    for k in sizes:
        idx = torch.arange(start, start + k)
        start += k
        for b in packer.add(Batch(idx.float(), idx, idx)):
            assert len(b.idx) == rho  # packed batches are full
            out += b.idx.tolist()
    flushed = packer.end_epoch(last=last)
    assert all(len(b.idx) >= min_batch(rho) for b in flushed)  # never a tiny flush
    out += [i for b in flushed for i in b.idx.tolist()]
    assert len(out) == len(set(out))
    if last and end != "carry":
        assert packer.count == 0  # after the last epoch nothing waits
    assert len(out) + packer.count + packer.end_dropped == start  # carry: still pending


@FAST
@given(n=st.integers(1, 200), width=st.integers(1, 40), merges=st.booleans())
def test_a_short_last_batch_joins_its_predecessor_and_nothing_is_lost(n, width, merges):
    chunks = [list(range(i, min(i + width, n))) for i in range(0, n, width)]
    out = list(without_small_tail(iter(chunks), len, lambda a, b: a + b, width, merges))
    assert [i for c in out for i in c] == list(range(n))
    short = [c for c in out[:-1] if len(c) < width]
    assert not short
    if merges and len(chunks) > 1:
        assert all(len(c) >= width for c in out)


@FAST
@given(n=st.integers(4, 200), seed=st.integers(0, 2 ** 31), ratio=st.floats(0.05, 0.9))
def test_a_samplers_state_round_trip_continues_identically(n, seed, ratio):
    pool = torch.arange(n)
    ctx = _ctx(n, seed, epochs=6)
    a = RandomAdaptive(ratio=ratio, period=2)
    a.setup(pool, ctx)
    _epoch(a, ctx, 0)
    state, gen = a.state_dict(), ctx.generator.get_state()
    rest = [_epoch(a, ctx, e) for e in (1, 2, 3)]
    ctx2 = _ctx(n, seed, epochs=6)
    b = RandomAdaptive(ratio=ratio, period=2)
    b.setup(pool, ctx2)
    b.load_state_dict(state)
    ctx2.generator.set_state(gen)
    assert [_epoch(b, ctx2, e) for e in (1, 2, 3)] == rest


@FAST
@given(updates=st.lists(st.tuples(st.lists(st.integers(0, 19), min_size=1, max_size=8),
                                  st.booleans()), max_size=20))
def test_the_record_applies_deferred_updates_as_if_one_after_the_other(updates):
    deferred, at_once = SampleRecord(20), SampleRecord(20)
    for step, (idx, trained) in enumerate(updates):
        i = torch.tensor(idx)
        losses = torch.arange(len(idx), dtype=torch.float32) + step
        deferred.update(i, losses, None, step, trained=trained)
        at_once.update(i, losses, None, step, trained=trained)
        at_once.flush()  # applied right away
    for key in ("loss", "loss_epoch", "loss_kind", "times_trained", "times_forwarded"):
        torch.testing.assert_close(getattr(deferred, key), getattr(at_once, key),
                                   equal_nan=True)
    expected = torch.zeros(20, dtype=torch.int32)
    for idx, trained in updates:
        if trained:
            for i in idx:
                expected[i] += 1
    assert torch.equal(deferred.times_trained, expected)
