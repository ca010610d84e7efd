import math

import numpy as np
import pytest
import torch

from thrifty.methods import build_method
from thrifty.selection import (
    Adonis,
    adonis_probabilities,
    adonis_select,
    clip_history,
    loss_histogram,
)

RULES = ["sturges", "sqrt", "rice"]


def _losses(n=512, seed=0):
    rng = np.random.default_rng(seed)
    h = rng.gamma(2.0, 0.5, size=n)
    h[:4] = [9.0, 11.0, 12.0, -3.0]  # outliers
    return h


# ---------------------------------------------------------------- functional core
@pytest.mark.parametrize("rule", RULES)
def test_histogram_matches_numpy_rules(rule):
    h = _losses()
    counts, edges = loss_histogram(torch.from_numpy(h), rule)
    ref_edges = np.histogram_bin_edges(h, bins=rule)
    assert len(counts) == len(ref_edges) - 1
    np.testing.assert_allclose(edges.numpy(), ref_edges)
    assert counts.tolist() == np.histogram(h, bins=ref_edges)[0].tolist()


@pytest.mark.parametrize("n", [10, 100, 300, 700])
def test_bin_counts_follow_the_textbook_rules(n):
    values = torch.from_numpy(np.random.default_rng(n).normal(size=n))
    expected = {"sturges": math.ceil(math.log2(n)) + 1, "sqrt": math.ceil(math.sqrt(n)),
                "rice": math.ceil(2 * n ** (1 / 3))}
    for rule, k in expected.items():
        assert len(loss_histogram(values, rule)[0]) == k, rule


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0, math.inf])
def test_sigma_clipping_keeps_mean_plus_minus_sigma_std(sigma):
    h = _losses()
    ref = h[np.abs(h - h.mean()) <= sigma * h.std()]
    got = clip_history(torch.from_numpy(h), sigma, clip="remove").numpy()
    np.testing.assert_array_equal(got, ref)
    assert (len(got) == len(h)) == (sigma == math.inf)
    assert 12.0 not in got or sigma == math.inf


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("sigma", [0.5, 1.0])
def test_probability_is_pmf_of_the_samples_bin(rule, sigma):
    h = _losses()
    clipped = h[np.abs(h - h.mean()) <= sigma * h.std()]
    counts, edges = np.histogram(clipped, bins=rule)
    pmf = counts / len(clipped)
    assert math.isclose(pmf.sum(), 1.0)
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.gamma(2.0, 0.5, 60), [12.0, -3.0, clipped.min(), clipped.max(),
                                                  edges[3]]])
    expected = []
    for v in x:  # numpy assigns each value to its bin on its own
        inside = edges[0] <= v <= edges[-1]
        expected.append(pmf[np.histogram([v], bins=edges)[0].argmax()] if inside else 0.0)
    p = adonis_probabilities(torch.from_numpy(x), torch.from_numpy(h), sigma, rule,
                             clip="remove")
    np.testing.assert_allclose(p.numpy(), expected)
    assert p[60] == 0 and p[61] == 0  # outliers clipped away get p = 0


def test_constant_history_gives_one_bin_of_probability_one():
    p = adonis_probabilities(torch.tensor([1.0, 1.0, 3.0]), torch.full((10,), 1.0),
                             clip="remove")
    assert p.tolist() == [1.0, 1.0, 0.0]


def test_theta_is_strict():
    p = torch.tensor([0.12, 0.13, 0.11, 0.5], dtype=torch.float64)
    choice = adonis_select(p, theta=0.12, alpha=1.0)
    assert choice.positions.tolist() == [1, 3] and choice.candidates == 2
    assert not choice.fallback


@pytest.mark.parametrize("alpha,kept", [(0.3, 3), (0.25, 3), (0.01, 1), (1.0, 10), (0.7, 7)])
def test_alpha_share_of_candidates(alpha, kept):
    p = torch.tensor([0.5] * 10 + [0.0] * 5, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    pos = adonis_select(p, 0.12, alpha, g).positions
    assert len(pos) == kept and len(pos.unique()) == kept and pos.max() < 10
    assert torch.equal(pos, pos.sort().values)
    assert adonis_select(p, 0.12, alpha, draw="first").positions.tolist() == list(range(kept))


def test_random_draw_is_uniform_over_candidates_and_seeded():
    p = torch.tensor([0.0, 0.5, 0.5, 0.0, 0.5, 0.5, 0.5], dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    hits = torch.zeros(7)
    for _ in range(2000):
        hits[adonis_select(p, 0.12, 0.4, g).positions] += 1  # 2 of 5 candidates
    assert hits[[0, 3]].sum() == 0
    assert torch.allclose(hits[[1, 2, 4, 5, 6]], torch.full((5,), 800.0), rtol=0.1)
    a = adonis_select(p, 0.12, 0.4, torch.Generator().manual_seed(9)).positions
    b = adonis_select(p, 0.12, 0.4, torch.Generator().manual_seed(9)).positions
    assert torch.equal(a, b)


def test_no_candidate_fallbacks():
    p = torch.tensor([0.05, 0.1, 0.1, 0.0], dtype=torch.float64)
    top = adonis_select(p, 0.12, 0.5, torch.Generator().manual_seed(0))
    assert top.fallback and top.candidates == 0 and len(top.positions) == 1
    assert top.positions.item() in (1, 2)
    skip = adonis_select(p, 0.12, 0.5, fallback="skip")
    assert skip.fallback and len(skip.positions) == 0
    everywhere_zero = adonis_select(torch.zeros(4, dtype=torch.float64), 0.12, 1.0)
    assert everywhere_zero.positions.tolist() == [0, 1, 2, 3]


# ---------------------------------------------------------------- the selector
def test_selector_appends_then_selects_alpha_share_of_candidates(make_ctx, batch_of):
    sel = Adonis(history=8, theta=0.2, alpha=0.5, draw="first", clip="remove")
    ctx = make_ctx()
    losses = [1.0, 1.0, 1.0, 1.0, 5.0, 9.0]
    pos = sel.select(batch_of(losses), ctx)
    # history = the batch; clip mean±std drops 5 and 9; one bin of p=1 holds the four 1.0s
    assert sel.history.tolist() == losses
    assert pos.tolist() == [0, 1]
    sel.select(batch_of([2.0] * 4), ctx)
    assert sel.history.tolist() == losses[2:] + [2.0] * 4  # last `history` losses
    d = sel.epoch_diagnostics()
    assert d["selector_considered"] == 10 and d["selector_candidates"] == 8
    assert d["selector_selected"] == 4 and d["selector_selected_share"] == 0.4
    assert sel.epoch_diagnostics()["selector_considered"] == 0  # reset


def test_no_candidate_fallback_is_counted(make_ctx, batch_of):
    ctx = make_ctx()
    flat = Adonis(bins="sqrt", theta=0.12, alpha=0.3, clip="remove")
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        pos = flat.select(batch_of(torch.rand(512, generator=g)), ctx)
        assert len(pos) > 0
    d = flat.epoch_diagnostics()
    assert d["selector_no_candidate_batches"] == 5 and d["selector_candidates"] == 0
    loose = Adonis(bins="sqrt", theta=0.01, clip="remove")
    loose.select(batch_of(torch.rand(128, generator=g)), ctx)
    assert loose.epoch_diagnostics()["selector_no_candidate_batches"] == 0
    skip = Adonis(bins="sqrt", fallback="skip", clip="remove")
    assert len(skip.select(batch_of(torch.rand(512, generator=g)), ctx)) == 0
    assert skip.epoch_diagnostics()["selector_no_candidate_batches"] == 1


def test_unseen_samples_are_trained_and_kept_out_of_history(make_ctx, batch_of):
    sel = Adonis(alpha=0.01, draw="first")
    nan = float("nan")
    pos = sel.select(batch_of([nan, 1.0, 1.0, 1.0, nan], fresh=False), make_ctx(epoch=1))
    assert {0, 4} <= set(pos.tolist()) and len(pos) == 3
    assert torch.isfinite(sel.history).all() and len(sel.history) == 3
    d = sel.epoch_diagnostics()
    assert d["selector_unseen_trained"] == 2 and d["selector_stale_batches"] == 1


def test_warmup_trains_everything_and_eta_schedule(make_ctx, batch_of):
    sel = Adonis(eta=3, warmup=2)
    fresh = [sel.needs_forward(make_ctx(epoch=e)) for e in range(9)]
    assert fresh == [False, False, True, False, False, True, False, False, True]
    pos = sel.select(batch_of([0.1, 5.0, 9.0]), make_ctx(epoch=1))
    assert pos.tolist() == [0, 1, 2] and len(sel.history) == 0
    assert sel.epoch_diagnostics()["selector_warmup_trained"] == 3


@pytest.mark.parametrize("kwargs,match", [
    ({"theta": 0}, r"theta .* must be in \(0, 1\)"), ({"theta": 1}, "theta"),
    ({"theta": 1.5}, "theta"), ({"theta": -0.1}, "theta"),
    ({"alpha": 0}, r"alpha .* \(0, 1\]"), ({"alpha": 1.2}, "alpha"),
    ({"eta": 0}, "eta must be an integer >= 1"), ({"eta": 1.5}, "eta"),
    ({"sigma": 0}, "sigma"), ({"bins": "scott"}, "bins must be one of"),
    ({"history": 0}, "history"), ({"warmup": -1}, "warmup"), ({"draw": "top"}, "draw"),
    ({"fallback": "none"}, "fallback"), ({"end_of_epoch": "keep"}, "end_of_epoch"),
    ({"theta": "high"}, "theta must be a number"), ({"alpha": None}, "alpha must be a number"),
])
def test_bad_hyper_parameters_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Adonis(**kwargs)


def test_built_by_name_with_cli_style_values():
    sel = build_method("adonis", {"theta": 0.1, "eta": 2})
    assert isinstance(sel, Adonis) and sel.theta == 0.1 and sel.eta == 2
    assert sel.name == "adonis" and not sel.identity
    with pytest.raises(ValueError, match="theta"):
        build_method("adonis", {"theta": 2})
    with pytest.raises(ValueError, match="has no hyper-parameter beta"):
        build_method("adonis", {"beta": 2})


def test_state_round_trips_through_weights_only_load(tmp_path, make_ctx, batch_of):
    a, ctx = Adonis(history=64), make_ctx()
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        a.select(batch_of(torch.rand(32, generator=g)), ctx)
    torch.save(a.state_dict(), tmp_path / "s.pt")
    b = Adonis(history=64)
    b.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert torch.equal(a.history, b.history) and a.counts == b.counts
    nxt = batch_of(torch.rand(32, generator=g))
    assert torch.equal(a.select(nxt, make_ctx(seed=4)), b.select(nxt, make_ctx(seed=4)))


# ------------------------------------------------ the readings of issue 14 (hand-computed)
H = torch.tensor([1.0, 1, 1, 1, 2, 2, 10])  # mean 18/7, population std 3.064: band
# [-0.493, 5.635] at sigma 1; 10 is the outlier


def test_clip_remove_drops_the_outlier_and_cap_sets_it_to_the_band_edge():
    from thrifty.selection import clip_history

    assert clip_history(H, clip="remove").tolist() == [1, 1, 1, 1, 2, 2]
    capped = clip_history(H, clip="cap")
    assert clip_history(H).tolist() == capped.tolist() and Adonis().clip == "cap"  # default
    assert capped[:6].tolist() == [1, 1, 1, 1, 2, 2]
    assert capped[6].item() == pytest.approx(18 / 7 + (65.714285714 / 7) ** 0.5, abs=1e-6)


def test_probabilities_under_each_clip_and_denominator():
    x = torch.tensor([1.0, 2.0, 10.0])
    # remove: sqrt rule -> 3 bins over [1, 2]: counts [4, 0, 2] of 6 clipped values
    p = adonis_probabilities(x, H, bins="sqrt", clip="remove")
    assert p.tolist() == pytest.approx([4 / 6, 2 / 6, 0.0])
    p = adonis_probabilities(x, H, bins="sqrt", clip="remove", pmf_denominator="history")
    assert p.tolist() == pytest.approx([4 / 7, 2 / 7, 0.0])  # R = 7, the history's length
    # cap: 3 bins over [1, 5.635]: counts [6, 0, 1]; 10 is capped into the edge bin
    p = adonis_probabilities(x, H, bins="sqrt", clip="cap")
    assert p.tolist() == pytest.approx([6 / 7, 6 / 7, 1 / 7])
    assert p[2].item() > 0.12  # the not-yet-fit sample now passes the default theta


def test_warmup_rule_le_trains_epoch_omega_plainly():
    lt, le = Adonis(warmup=0), Adonis(warmup=0, warmup_rule="le", eta=2)
    assert not lt.in_warmup(0) and lt.is_fresh_epoch(0)
    assert le.in_warmup(0) and not le.in_warmup(1)  # Algorithm 1: if i <= omega
    assert [e for e in range(6) if le.is_fresh_epoch(e)] == [1, 3, 5]
    assert Adonis(warmup=2, warmup_rule="le").plain_epochs == 3


def test_alpha_none_keeps_every_candidate():
    p = torch.tensor([0.5, 0.05, 0.3, 0.2, 0.01])
    assert adonis_select(p, theta=0.12, alpha=None).positions.tolist() == [0, 2, 3]
    assert Adonis(alpha="none").alpha is None  # --method-arg alpha=none
    with pytest.raises(ValueError, match="alpha"):
        Adonis(alpha="all")
    with pytest.raises(ValueError, match="clip"):
        Adonis(clip="trim")
