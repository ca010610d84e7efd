import pytest
import torch

from thrifty.data import Batch
from thrifty.engine import Packer, PackingRule


def chunk(start: int, n: int) -> Batch:
    idx = torch.arange(start, start + n)
    return Batch(idx.float()[:, None], idx, idx)


def test_carry_packs_full_batches_in_order():
    p = Packer(4)
    assert p.add(chunk(0, 3)) == []
    out = p.add(chunk(3, 6))  # 9 pending -> two batches of 4, 1 left
    assert [b.idx.tolist() for b in out] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert p.count == 1
    p.add(chunk(9, 2))  # 3 pending: at least half a batch, flushed at the epoch's end
    last = p.end_epoch()
    assert [b.idx.tolist() for b in last] == [[8, 9, 10]] and p.count == 0


def test_flush_keeps_a_remainder_under_half_a_batch_for_the_next_epoch():
    p = Packer(8)
    p.add(chunk(0, 11))  # one batch of 8; 3 left, under half of 8
    assert p.end_epoch() == [] and p.count == 3  # waits: never a 3-sample step
    out = p.add(chunk(11, 5))  # next epoch: the 3 lead its first batch
    assert [b.idx.tolist() for b in out] == [[8, 9, 10, 11, 12, 13, 14, 15]]
    p.add(chunk(16, 2))
    assert p.end_epoch(last=True) == [] and p.count == 0 and p.end_dropped == 2


def test_strict_discard_single_step_is_assist_rule():
    p = Packer(4, PackingRule(strict=True, overflow="discard", repeat=False))
    assert p.add(chunk(0, 4)) == []  # 4 is not > 4
    out = p.add(chunk(4, 7))  # 11 > 4: one step on the first 4, 7 discarded
    assert [b.idx.tolist() for b in out] == [[0, 1, 2, 3]]
    assert p.count == 0 and p.discarded == 7


def test_end_of_epoch_rules():
    carry = Packer(4, PackingRule(end_of_epoch="carry"))
    carry.add(chunk(0, 2))
    assert carry.end_epoch() == [] and carry.count == 2
    drop = Packer(4, PackingRule(end_of_epoch="drop"))
    drop.add(chunk(0, 2))
    assert drop.end_epoch() == [] and drop.count == 0
    # an end-of-epoch drop is not overflow (ASSIST spec §1.7(b)): separate counters
    assert drop.end_dropped == 2 and drop.discarded == 0


def test_overflow_and_end_of_epoch_drops_are_counted_apart_and_checkpointed():
    p = Packer(4, PackingRule(strict=True, overflow="discard", repeat=False,
                              end_of_epoch="drop"))
    p.add(chunk(0, 7))            # 7 > 4: a step on 4, 3 discarded as overflow
    p.add(chunk(7, 2))            # 2 pending
    p.end_epoch()                 # ... dropped at the end of the epoch
    assert (p.discarded, p.end_dropped, p.count) == (3, 2, 0)
    q = Packer(4, p.rule)
    q.load_state_dict(p.state_dict())
    assert (q.discarded, q.end_dropped) == (3, 2)
    old = p.state_dict()
    del old["end_dropped"]        # a checkpoint written before the split
    q.load_state_dict(old)
    assert (q.discarded, q.end_dropped) == (3, 0)


def test_state_round_trip():
    p = Packer(4)
    p.add(chunk(0, 3))
    q = Packer(4)
    q.load_state_dict(p.state_dict())
    assert q.count == 3 and [b.idx.tolist() for b in q.add(chunk(3, 1))] == [[0, 1, 2, 3]]


def test_bad_rules():
    with pytest.raises(ValueError, match="overflow"):
        PackingRule(overflow="keep")
    with pytest.raises(ValueError, match="end_of_epoch"):
        PackingRule(end_of_epoch="later")
    with pytest.raises(ValueError, match="positive"):
        Packer(0)


def test_immediate_trains_each_contribution_at_its_size():
    p = Packer(4, PackingRule(immediate=True))
    assert [b.idx.tolist() for b in p.add(chunk(0, 3))] == [[0, 1, 2]]
    assert p.add(chunk(3, 0)) == [] and p.count == 0
    assert [b.idx.tolist() for b in p.add(chunk(3, 9))] == [list(range(3, 12))]
