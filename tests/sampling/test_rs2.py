"""RS2 without replacement: every sample once per cycle of ceil(1/r) rounds."""

import pytest
import torch

from thrifty.sampling import RS2

from .conftest import assert_resume_equals_uninterrupted, drive


def test_a_cycle_sees_every_sample_once_then_a_new_permutation_starts(make_ctx):
    ctx = make_ctx(torch.zeros(20, dtype=torch.long), epochs=8)
    s = RS2(ratio=0.25)
    s.setup(torch.arange(20), ctx)
    rounds = drive(s, ctx, range(8))
    assert all(len(r) == 5 and len(set(r.tolist())) == 5 for r in rounds)
    for cycle in (rounds[:4], rounds[4:]):  # 4 rounds of 5 cover the 20 samples once
        assert sorted(torch.cat(cycle).tolist()) == list(range(20))
    assert [set(a.tolist()) for a in rounds[:4]] != [set(b.tolist()) for b in rounds[4:]]


def test_a_round_across_two_permutations_repeats_no_sample_and_skips_none(make_ctx):
    ctx = make_ctx(torch.zeros(10, dtype=torch.long), epochs=6)
    s = RS2(ratio=0.3)  # 3 per round: the 4th round takes 1 left and 2 of the next cycle
    s.setup(torch.arange(10), ctx)
    rounds = drive(s, ctx, range(6))
    assert all(len(set(r.tolist())) == len(r) == 3 for r in rounds)
    assert sorted(torch.cat(rounds[:3]).tolist() + [x for x in rounds[3].tolist()
                                                    if x not in torch.cat(rounds[:3])]) \
        == list(range(10))
    counts = torch.bincount(torch.cat(rounds), minlength=10)
    assert int(counts.max()) - int(counts.min()) <= 1  # seen evenly over the six rounds
    with pytest.raises(ValueError, match="ratio"):
        RS2(ratio=0)


def test_resume_mid_cycle_equals_the_uninterrupted_run(tiny_config, digits):
    assert_resume_equals_uninterrupted(lambda **kw: tiny_config(epochs=4, **kw), digits,
                                       lambda: RS2(ratio=0.4), stop_at_batch=20)
