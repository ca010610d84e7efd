"""SeTa: a random subset, k-means groups by loss, a window sliding from easy to hard."""

import numpy as np
import pytest
import torch

from thrifty.sampling import SeTa, loss_groups, window_start

from .conftest import drive


def test_groups_are_ordered_easy_to_hard_and_cover_every_position():
    scores = np.array([5.0, 0.1, 9.0, 0.2, 5.1, 9.2, 0.15, 4.9, 9.1])
    groups = loss_groups(scores, 3)
    assert [sorted(g.tolist()) for g in groups] == [[1, 3, 6], [0, 4, 7], [2, 5, 8]]
    assert sorted(np.concatenate(loss_groups(np.ones(7), 3)).tolist()) == list(range(7))


def test_the_window_slides_one_group_per_epoch_and_starts_over():
    assert [window_start(t, 5, 3) for t in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert [window_start(t, 5, 5) for t in range(3)] == [0, 0, 0]


def _primed(make_ctx, losses, epochs=8, **kw):
    ctx = make_ctx(torch.zeros(len(losses), dtype=torch.long), epochs=epochs)
    ctx.record.update(torch.arange(len(losses)), losses, None, 0, trained=True)
    s = SeTa(**kw)
    s.setup(torch.arange(len(losses)), ctx)
    return s, ctx


def test_a_pruning_epoch_trains_the_window_of_a_random_subset(make_ctx):
    # five well-separated loss levels of 20 samples each: the k-means groups are the levels
    losses = torch.arange(5).repeat_interleave(20).float() * 10
    s, ctx = _primed(make_ctx, losses, prune_ratio=0.0, groups=5, window=0.6)
    first, second, third = drive(s, ctx, range(3))
    assert len(first) == 100  # the first epoch trains every group
    # w = 3 groups: epoch 1 -> levels 1..3, epoch 2 -> levels 2..4
    assert sorted(set((losses[second] / 10).long().tolist())) == [1, 2, 3]
    assert sorted(set((losses[third] / 10).long().tolist())) == [2, 3, 4]
    assert s.epoch_diagnostics()["window_start"] == 2.0


def test_random_pruning_and_annealing(make_ctx):
    losses = torch.rand(200)
    s, ctx = _primed(make_ctx, losses, epochs=8, prune_ratio=0.3, window=1.0)
    orders = drive(s, ctx, range(8))
    assert all(len(o) == 140 for o in orders)  # floor(0.7 * 200) every epoch
    assert s.epoch_diagnostics()["annealing"] == 1.0  # epoch 7 >= floor(0.875 * 8)
    assert not torch.equal(orders[0].sort().values, orders[1].sort().values)
    with pytest.raises(ValueError, match="prune_ratio"):
        SeTa(prune_ratio=0.95)
