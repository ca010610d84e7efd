import numpy as np
import pytest
import torch

from thrifty.methods import build_method
from thrifty.selection import (
    SelectiveBackprop,
    StaleSB,
    empirical_cdf,
    sb_probabilities,
    sb_select,
)


def test_empirical_cdf_is_share_at_or_below():
    rng = np.random.default_rng(0)
    h, x = rng.normal(size=300), np.concatenate([rng.normal(size=50), [-9.0, 9.0]])
    x[0] = h[7]  # a value equal to a history entry counts itself
    ref = np.array([(h <= v).mean() for v in x])
    got = empirical_cdf(torch.from_numpy(x).float(), torch.from_numpy(h).float())
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-6)
    assert got[-2] == 0 and got[-1] == 1


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0, 3.0])
def test_selected_share_near_one_over_beta_plus_one(beta):
    g = torch.Generator().manual_seed(0)
    history, losses = torch.rand(4096, generator=g), torch.rand(100_000, generator=g)
    probs = sb_probabilities(losses, history, beta)
    np.testing.assert_allclose(probs.numpy(), empirical_cdf(losses, history).numpy() ** beta)
    chosen = sb_select(probs, g)
    assert abs(len(chosen) / len(losses) - 1 / (beta + 1)) < 0.01
    assert torch.equal(chosen, chosen.sort().values)


def test_selector_share_on_uniform_losses_and_history_length(make_ctx, batch_of):
    sel, ctx = SelectiveBackprop(), make_ctx()
    g = torch.Generator().manual_seed(1)
    for _ in range(200):
        sel.select(batch_of(torch.rand(128, generator=g)), ctx)
    assert len(sel.history) == 1024
    d = sel.epoch_diagnostics()
    assert d["selector_considered"] == 200 * 128
    assert abs(d["selector_selected_share"] - 1 / 3) < 0.02


def test_higher_losses_are_chosen_more_often(make_ctx, batch_of):
    sel, ctx = SelectiveBackprop(history=256), make_ctx()
    hits = torch.zeros(4)
    for _ in range(300):
        hits[sel.select(batch_of([0.1, 0.4, 0.7, 1.0]), ctx)] += 1
    assert hits[3] == 300 and hits[0] < hits[1] < hits[2] < hits[3]


def test_seeded_draws_are_reproducible(make_ctx, batch_of):
    losses = batch_of(torch.rand(64, generator=torch.Generator().manual_seed(2)))
    a = SelectiveBackprop().select(losses, make_ctx(seed=5))
    b = SelectiveBackprop().select(losses, make_ctx(seed=5))
    c = SelectiveBackprop().select(losses, make_ctx(seed=6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_unseen_samples_always_trained(make_ctx, batch_of):
    sel = SelectiveBackprop(beta=50.0)
    nan = float("nan")
    pos = sel.select(batch_of([nan, 0.1, 0.2, 0.3, nan], fresh=False), make_ctx(epoch=1))
    assert {0, 4} <= set(pos.tolist())
    assert torch.isfinite(sel.history).all() and len(sel.history) == 3
    assert sel.epoch_diagnostics()["selector_unseen_trained"] == 2


def test_stale_sb_schedule_and_registry():
    sb, stale = build_method("sb", {}), build_method("stale-sb", {})
    assert type(sb) is SelectiveBackprop and type(stale) is StaleSB
    assert (sb.staleness, stale.staleness, stale.beta, stale.history_size) == (1, 2, 2.0, 1024)
    assert (sb.name, stale.name) == ("sb", "stale-sb")
    fresh = [stale.is_fresh_epoch(e) for e in range(5)]
    assert fresh == [True, False, True, False, True]
    assert all(sb.is_fresh_epoch(e) for e in range(5))
    assert build_method("stale-sb", {"staleness": 3}).is_fresh_epoch(3)


@pytest.mark.parametrize("kwargs,match", [
    ({"beta": -1}, "beta must be >= 0"), ({"history": 0}, "history"),
    ({"staleness": 0}, "integer >= 1"), ({"end_of_epoch": "x"}, "end_of_epoch"),
])
def test_bad_hyper_parameters_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SelectiveBackprop(**kwargs)
