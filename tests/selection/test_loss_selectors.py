"""The loss selectors of ASSIST's preliminary work, each against an independent computation."""

import math

import pytest
import torch

from thrifty.selection.loss_selectors import (
    LossSelector,
    bucket_quotas,
    loss_weighted,
    q_split,
    q_split_buckets,
    resolve_k,
    top_k,
    top_q,
)


def _losses(n=37, seed=0):
    return torch.rand(n, generator=torch.Generator().manual_seed(seed)) * 3


@pytest.mark.parametrize("k,count", [(5, 5), (100, 37), (0.25, 10), (0.3, 12), (0.001, 1),
                                     (8.0, 8)])
def test_resolve_k_counts_and_shares(k, count):
    assert resolve_k(k, 37) == count
    assert resolve_k(k, 0) == 0


def test_share_rounding_ignores_float_noise():
    assert resolve_k(0.3, 10) == 3  # 0.3 * 10 = 3.0000000000000004


@pytest.mark.parametrize("k", [5, 0.25])
def test_top_k_matches_torch_topk(k):
    x = _losses()
    m = resolve_k(k, len(x))
    expected = set(torch.topk(x, m).indices.tolist())
    got = top_k(x, k)
    assert set(got.tolist()) == expected and len(got) == m
    assert torch.equal(got, got.sort().values)


@pytest.mark.parametrize("q", [0.1, 0.5, 0.9])
def test_top_q_matches_torch_quantile(q):
    x = _losses()
    expected = {i for i, v in enumerate(x.tolist()) if v >= torch.quantile(x.double(), q)}
    got = top_q(x, q)
    assert set(got.tolist()) == expected
    assert abs(len(got) - (1 - q) * len(x)) <= 2


def test_top_q_keeps_at_least_one_sample():
    assert top_q(torch.tensor([1.0]), 0.99).tolist() == [0]
    assert top_q(torch.tensor([0.0, 0.0, 0.0]), 0.5).tolist() == [0, 1, 2]


def test_weighted_draws_are_seeded_distinct_and_skip_zero_losses():
    x = _losses(50)
    x[::3] = 0.0
    a = loss_weighted(x, 20, torch.Generator().manual_seed(1))
    b = loss_weighted(x, 20, torch.Generator().manual_seed(1))
    c = loss_weighted(x, 20, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len(a) == 20 == len(set(a.tolist()))
    for draw in (a, c):
        assert (x[draw] > 0).all()
    # more samples asked for than have a positive loss: only the positive ones come back
    everything = loss_weighted(x, 50, torch.Generator().manual_seed(0))
    assert set(everything.tolist()) == set(torch.nonzero(x > 0).flatten().tolist())
    assert len(loss_weighted(torch.zeros(5), 3, torch.Generator())) == 0


def test_weighted_draws_follow_the_loss():
    x = torch.tensor([1.0, 9.0])  # one draw: P(pick 1) = 0.9
    g = torch.Generator().manual_seed(0)
    picks = torch.cat([loss_weighted(x, 1, g) for _ in range(2000)])
    assert 0.87 < picks.float().mean() < 0.93


def _buckets_reference(losses, p, q):
    """The midpoint rule written as a plain loop over the ascending losses."""
    pairs = sorted(enumerate(losses), key=lambda t: t[1])
    w = [max(v, 0.0) ** p for _, v in pairs]
    total = sum(w)
    out, cum = [0] * len(losses), 0.0
    for (i, _), wi in zip(pairs, w):
        out[i] = min(q - 1, math.floor(q * (cum + wi / 2) / total))
        cum += wi
    return out


def test_q_split_buckets_on_a_hand_example():
    losses = torch.tensor([4.0, 1.0, 1.0, 1.0, 2.0])
    # p = 1: cumulative [1, 2, 3, 5, 9] over ascending losses, width 4.5
    assert q_split_buckets(losses, p=1, buckets=2).tolist() == [1, 0, 0, 0, 0]
    # p = 2: weights [1, 1, 1, 4, 16]: the dominant top loss alone forms the upper bucket
    assert q_split_buckets(losses, p=2, buckets=2).tolist() == [1, 0, 0, 0, 0]
    # equal losses split by rank
    assert q_split_buckets(torch.ones(6), p=3, buckets=3).tolist() == [0, 0, 1, 1, 2, 2]
    assert q_split_buckets(torch.zeros(4), p=2, buckets=2).tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("p,q", [(1.0, 2), (2.0, 2), (3.0, 4), (0.5, 3)])
def test_q_split_buckets_match_a_loop(p, q):
    x = _losses(41, seed=3)
    assert q_split_buckets(x, p, q).tolist() == _buckets_reference(x.tolist(), p, q)


def test_bucket_quotas_split_evenly_with_the_rest_on_high_losses():
    assert bucket_quotas(8, 2).tolist() == [4, 4]
    assert bucket_quotas(5, 2).tolist() == [2, 3]
    assert bucket_quotas(7, 4).tolist() == [1, 2, 2, 2]


def test_q_split_draws_k_over_q_from_each_bucket():
    x = _losses(40, seed=5)
    bucket = q_split_buckets(x, 1.0, 2)
    size = torch.bincount(bucket, minlength=2)
    assert (size >= 5).all()
    seen = set()
    for seed in range(20):
        got = q_split(x, 10, p=1.0, buckets=2, generator=torch.Generator().manual_seed(seed))
        assert len(got) == 10 == len(set(got.tolist()))
        assert torch.bincount(bucket[got], minlength=2).tolist() == [5, 5]
        seen.add(tuple(got.tolist()))
    assert len(seen) > 1  # random within the buckets
    a = q_split(x, 10, 1.0, 2, torch.Generator().manual_seed(7))
    assert torch.equal(a, q_split(x, 10, 1.0, 2, torch.Generator().manual_seed(7)))


def test_q_split_takes_a_small_bucket_whole_without_moving_its_shortfall():
    losses = torch.tensor([4.0, 1.0, 1.0, 1.0, 2.0])
    for seed in range(10):
        got = q_split(losses, 4, p=2, buckets=2, generator=torch.Generator().manual_seed(seed))
        assert 0 in got.tolist()  # the top bucket {0} always gives its only sample
        assert len(got) == 3      # 2 from bucket 0, 1 (of a quota of 2) from bucket 1


@pytest.mark.parametrize("kwargs,match", [
    ({"kind": "top-k", "k": 0}, "k must"), ({"kind": "top-k", "k": -2}, "k must"),
    ({"kind": "top-k", "k": 2.5}, "neither"), ({"kind": "top-k", "k": True}, "k must"),
    ({"kind": "top-q", "q": 0.0}, "q must"), ({"kind": "top-q", "q": 1.0}, "q must"),
    ({"kind": "q-split", "p": 0}, "p must"), ({"kind": "q-split", "p": -1.0}, "p must"),
    ({"kind": "q-split", "buckets": 1}, "buckets must"),
    ({"kind": "q-split", "buckets": 2.5}, "buckets must"),
    ({"kind": "median"}, "selector must"),
    ({"kind": "top-q", "k": 3}, "not a hyper-parameter"),
    ({"kind": "all", "q": 0.5}, "not a hyper-parameter"),
])
def test_impossible_hyper_parameters_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LossSelector(**kwargs)


def test_functions_refuse_bad_arguments_and_non_finite_losses():
    with pytest.raises(ValueError, match="q must"):
        top_q(torch.ones(3), 1.5)
    with pytest.raises(ValueError, match="finite"):
        top_k(torch.tensor([1.0, float("nan")]), 1)
    with pytest.raises(ValueError, match="buckets"):
        q_split(torch.ones(3), 2, buckets=1)


def test_configured_selector_defaults_and_dispatch():
    x = _losses()
    assert LossSelector("top-k").k == 0.5
    assert LossSelector("q-split").p == 2.0 and LossSelector("q-split").buckets == 2
    assert torch.equal(LossSelector("all")(x), torch.arange(len(x)))
    assert torch.equal(LossSelector("top-k", k=4)(x), top_k(x, 4))
    assert torch.equal(LossSelector("top-q", q=0.8)(x), top_q(x, 0.8))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(LossSelector("weighted", k=6)(x, g1), loss_weighted(x, 6, g2))
    assert torch.equal(LossSelector("q-split", k=6, p=3.0, buckets=3)(x, g1),
                       q_split(x, 6, 3.0, 3, g2))


def test_empty_input_gives_empty_output():
    empty = torch.empty(0)
    for f in (lambda x: top_k(x, 3), lambda x: top_q(x, 0.5), lambda x: loss_weighted(x, 3),
              lambda x: q_split(x, 3)):
        out = f(empty)
        assert out.dtype == torch.long and len(out) == 0


def test_share_and_with_share_are_the_schedules_handle():
    assert LossSelector("top-q", q=0.3).share == pytest.approx(0.7)
    assert LossSelector("top-k", k=0.25).share == 0.25
    assert LossSelector("q-split").share == 0.5  # default k = 0.5
    assert LossSelector("top-k", k=8).share is None and LossSelector().share is None
    q = LossSelector("top-q", q=0.3).with_share(0.2)
    assert q.kind == "top-q" and q.q == pytest.approx(0.8)
    k = LossSelector("weighted", k=0.5).with_share(0.1)
    assert k.kind == "weighted" and k.k == 0.1
    split = LossSelector("q-split", k=0.5, p=3.0, buckets=3).with_share(0.2)
    assert (split.k, split.p, split.buckets) == (0.2, 3.0, 3)
    with pytest.raises(ValueError, match="keeps every sample"):
        LossSelector().with_share(0.5)
    with pytest.raises(ValueError, match="is a count"):
        LossSelector("top-k", k=8).with_share(0.5)
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        LossSelector("top-k", k=0.5).with_share(1.0)
