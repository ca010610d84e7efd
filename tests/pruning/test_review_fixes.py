"""Tie-breaking, bad inputs, protected SNACS sparsity, residual blocks and baseline units."""

import numpy as np
import pytest
import torch
from torch import nn

from thrifty.pruning import baseline_prune, filter_sensitivity, layer_pairs, mint_prune
from thrifty.pruning.core import prune_lowest, tie_rng
from thrifty.pruning.groups import pair_groups
from thrifty.pruning.limits import match_sparsity
from thrifty.pruning.mint import threshold_with_cap
from thrifty.pruning.snacs import snacs_prune


def test_ties_at_the_cap_are_not_all_taken_from_the_first_rows():
    scores = np.zeros((8, 4))  # every connection tied (rho takes discrete values)
    cut = threshold_with_cap(scores, 0.0, 0.5, tie_rng(0, "fc"))
    assert cut.sum() == 16
    rows = cut.sum(1)
    assert rows[4:].sum() > 0 and rows[:4].sum() < 16  # not the 4 first rows
    again = threshold_with_cap(scores, 0.0, 0.5, tie_rng(0, "fc"))
    assert np.array_equal(cut, again)  # seeded: reproducible
    assert not np.array_equal(cut, threshold_with_cap(scores, 0.0, 0.5, tie_rng(1, "fc")))
    # lower scores still go first; ties among the rest are random
    scores[7, 3] = -1.0
    assert prune_lowest(scores, 1, rng=tie_rng(0, "fc"))[7, 3]
    # without an rng the old row-major order is kept
    assert prune_lowest(np.zeros((2, 2)), 2).tolist() == [[True, True], [False, False]]


def test_mint_breaks_cap_ties_with_its_seed(monkeypatch):
    """With every rho tied, the cap decides by the tie order: not the first rows."""
    monkeypatch.setattr("thrifty.pruning.mint.gmi_mst", lambda *a, **k: 0.0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(),
                          nn.Linear(8, 2))
    x, y = torch.randn(200, 4), torch.arange(200) % 2
    result = mint_prune(model, x, y, per_class=60, groups=8, gamma=0.5, progress=False)
    cut_rows = (~result.masks["2"]).sum(1)
    assert cut_rows.sum() == 32 and cut_rows[4:].sum() > 0  # row-major: rows 0-3 only
    other = mint_prune(model, x, y, per_class=60, groups=8, gamma=0.5, seed=1, progress=False)
    assert not torch.equal(result.masks["2"], other.masks["2"])


def test_nan_activations_are_refused():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    x, y = torch.randn(40, 4), torch.arange(40) % 2
    for prune in (mint_prune, snacs_prune):
        with pytest.raises(ValueError, match="NaN/inf activation.*broken"):
            prune(model, x, y, per_class=10, gamma=0.5, progress=False)


def test_layers_cut_entirely_and_inputless_filters_are_reported():
    from thrifty.pruning.command import format_table

    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 3), nn.Linear(3, 2))
    result = baseline_prune(model, "magnitude", sparsity=1.0)
    layers = result.report["layers"]
    assert layers["1"]["pruned_share"] == 1.0 and layers["1"]["inputless_filters"] == 3
    assert any("cut 100%" in w and "layer 1" in w for w in result.report["warnings"])
    table = format_table(result.report)
    assert "ALL" in table and "warning: layer 1 is cut 100%" in table
    half = baseline_prune(model, "random", match={"layers": {"1": {"pruned_share": 0.25}}})
    mask = half.masks["1"]
    assert half.report["layers"]["1"]["inputless_filters"] == int((~mask.any(1)).sum())


def test_sensitivity_error_names_the_filter_and_the_fix():
    weight = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match="filter 1 has zero total weight.*all zero"):
        filter_sensitivity(weight)
    with pytest.raises(ValueError, match="filter 0 has zero total weight.*use absolute=True"):
        filter_sensitivity(torch.tensor([[1.0, -1.0]]), absolute=False)


def test_snacs_matches_tau_on_the_shares_the_protected_masks_reach():
    levels = np.array([0.25, 0.5, 0.75])
    curves = {"a": np.array([1.0, 0.9, 0.8]), "b": np.array([1.0, 0.95, 0.85])}
    betas = {"a": 0.5, "b": 0.5}
    # layer a has most filters protected: whatever the level, it cuts only 0.25
    reached = {"a": np.array([0.25, 0.25, 0.25]), "b": levels}
    # on the levels alone, theta = 0.9 gives 0.5 exactly, but the masks would reach 0.375
    assert match_sparsity(curves, levels, betas, 0.5) == (0.9, {"a": 0.5, "b": 0.5})
    theta, gammas = match_sparsity(curves, levels, betas, 0.5, reached)
    assert (theta, gammas) == (0.85, {"a": 0.5, "b": 0.75})  # reaches 0.25/2 + 0.75/2


@pytest.fixture(scope="module")
def informative():
    """Labels depend on the inputs, and the hidden layers carry them."""
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(),
                          nn.Linear(12, 3))
    x = torch.randn(450, 6, generator=g)
    y = (x[:, :3].argmax(1)).long()
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), x, y


def _reached(report):
    layers = report["layers"].values()
    return sum(v["weights"] * v["pruned_share"] for v in layers) / sum(v["weights"]
                                                                        for v in layers)


def _candidates(settings, betas):
    from thrifty.pruning.limits import shares_at

    levels = np.array(settings["levels"])
    curves = {k: np.array(v) for k, v in settings["svm_accuracy"].items()}
    reached = {k: np.array(v) for k, v in settings["reached_at_level"].items()}
    thetas = np.unique(np.concatenate([*curves.values(), [0.0]]))
    return [sum(betas[n] * s for n, s in shares_at(curves, levels, t, reached).items())
            for t in thetas]


@pytest.mark.parametrize("protect", [0.0, 0.5])
def test_snacs_gammas_from_svms_reach_the_closest_share_to_tau(informative, protect):
    model, x, y = informative
    tau = 0.4
    result = snacs_prune(model, x, y, per_class=100, tau=tau, svm_step=10, protect=protect,
                         progress=False)
    report, settings = result.report, result.report["settings"]
    curves = settings["svm_accuracy"]
    assert max(curves["2"]) > 0.6  # the SVMs see the label information
    weights = {n: v["weights"] for n, v in report["layers"].items()}
    betas = {n: w / sum(weights.values()) for n, w in weights.items()}
    reached = _reached(report)
    assert settings["reached"] == pytest.approx(reached)
    best = min(abs(c - tau) for c in _candidates(settings, betas))
    assert abs(reached - tau) == pytest.approx(best, abs=1e-9)  # the closest achievable
    assert abs(reached - tau) <= 0.05 + 1e-9  # within half a level step here
    if protect:
        assert report["layers"]["2"]["protected_filters"] == 6
        assert result.masks["2"][torch.from_numpy(_protected_rows(model))].all()


def _protected_rows(model):
    lam = filter_sensitivity(model[4].weight)
    rows = np.zeros(12, dtype=bool)
    rows[torch.argsort(lam, descending=True)[:6].numpy()] = True
    return rows


def test_snacs_refuses_a_tau_protection_makes_unreachable_and_warns_on_gamma(informative):
    model, x, y = informative
    with pytest.raises(ValueError, match="tau=0.9 cannot be reached: with the protected"):
        snacs_prune(model, x, y, per_class=60, tau=0.9, svm_step=10, protect=0.5,
                    progress=False)
    with pytest.raises(ValueError, match="lower tau or protect"):
        match_sparsity({"a": np.array([1.0, 0.5])}, np.array([0.25, 0.75]), {"a": 1.0}, 0.6,
                       {"a": np.array([0.25, 0.5])})
    given = snacs_prune(model, x, y, per_class=60, gamma=0.9, protect=0.5, progress=False)
    assert given.report["layers"]["2"]["pruned_share"] <= 0.5 + 1e-9
    assert any("layer 2" in w and "less than its gamma" in w
               for w in given.report["warnings"])


def test_snacs_delta_only_cuts_connections_scored_at_most_delta(informative):
    model, x, y = informative
    free = snacs_prune(model, x, y, per_class=60, gamma=0.8, phi="one", progress=False)
    eta = free.scores["2"]
    delta = float(np.quantile(eta, 0.2))
    limited = snacs_prune(model, x, y, per_class=60, gamma=0.8, phi="one", delta=delta,
                          progress=False)
    share = limited.report["layers"]["2"]["pruned_share"]
    assert 0 < share < free.report["layers"]["2"]["pruned_share"]
    cut_scores = limited.scores["2"][~np.isnan(limited.scores["2"])]
    assert cut_scores.max() <= delta  # scores above delta are out of reach (NaN)
    groups = pair_groups(layer_pairs(model)[0], None)
    cut = np.zeros(groups.shape, dtype=bool)
    rows, cols = np.nonzero(~limited.masks["2"].numpy())
    cut[groups.child[rows], groups.parent[cols]] = True
    assert np.all(eta[cut] <= delta + 1e-12)


def test_snacs_repeats_average_independent_hashes(informative):
    model, x, y = informative
    one = snacs_prune(model, x, y, per_class=60, gamma=0.5, phi="one", progress=False)
    many = snacs_prune(model, x, y, per_class=60, gamma=0.5, phi="one", repeats=4,
                       progress=False)
    assert one.report["settings"]["repeats"] == 1 and many.report["settings"]["repeats"] == 4
    assert not np.allclose(one.scores["2"], many.scores["2"])
    assert np.all(many.scores["2"] >= 0)
    again = snacs_prune(model, x, y, per_class=60, gamma=0.5, phi="one", repeats=4,
                        progress=False)
    assert np.array_equal(many.scores["2"], again.scores["2"])


def test_resnet18_pairs_stay_inside_residual_blocks():
    from thrifty.models import create_model

    model = create_model("resnet18", 10, (3, 32, 32))
    pairs = [(p.parent, p.child) for p in layer_pairs(model)]
    assert ("conv1", "layer1.0.conv1") in pairs  # the stem output is no residual sum
    assert ("layer1.0.conv1", "layer1.0.conv2") in pairs
    assert len(pairs) == 9
    for parent, child in pairs[1:]:
        assert parent.rsplit(".", 1)[0] == child.rsplit(".", 1)[0]  # one block
    children = {c for _, c in pairs}
    assert not any("downsample" in c for c in children) and "fc" not in children
    crossed = [(p.parent, p.child) for p in layer_pairs(model, cross_residual=True)]
    assert ("layer2.0.downsample.0", "layer2.1.conv1") in crossed
    assert ("layer1.0.conv2", "layer1.1.conv1") not in pairs


def cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3),
                         nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 3))


@pytest.mark.parametrize("kind", ["magnitude", "random"])
def test_baselines_cut_column_blocks_after_a_flatten_like_mint(kind):
    model = cnn()
    result = baseline_prune(model, kind, sparsity=0.5, seed=3)
    linear = result.masks["5"]
    blocks = linear.view(3, 6, 16).float().mean(2)
    assert set(blocks.unique().tolist()) <= {0.0, 1.0}  # a channel's 16 columns together
    assert linear.float().mean() == 0.5 and result.report["layers"]["5"]["groups"] == [3, 6]
    kernels = result.masks["2"].flatten(2).float().mean(2)
    assert set(kernels.unique().tolist()) <= {0.0, 1.0}
    if kind == "magnitude":
        l1 = model[5].weight.detach().abs().view(3, 6, 16).sum(2)
        assert l1[blocks == 0].max() <= l1[blocks == 1].min()


def test_baselines_honour_skip_under_match():
    model = cnn()
    match = {"layers": {"2": {"pruned_share": 0.5}, "5": {"pruned_share": 0.5}}}
    result = baseline_prune(model, "random", match=match, skip=("5",))
    assert set(result.masks) == {"2"} and result.report["settings"]["skip"] == ["5"]
    with pytest.raises(ValueError, match="cannot skip fc"):
        baseline_prune(model, "random", match=match, skip=("fc",))
