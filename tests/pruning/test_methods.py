"""MINT, SNACS and the magnitude/random baselines on a network with known connections."""

import numpy as np
import pytest
import torch
from torch import nn

from thrifty.pruning import apply_masks, filter_sensitivity, pruned_share
from thrifty.pruning.baselines import baseline_prune
from thrifty.pruning.mint import MINT, delta_cutoff, mint_prune, threshold_with_cap
from thrifty.pruning.snacs import SNACS, phi_matrix, snacs_prune


@pytest.fixture(scope="module")
def known():
    """Child 0 of layer "1" reads only parent 0, child 1 only parent 1 (the rest is 0)."""
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(4))
        model[0].bias.zero_()
        model[1].weight.copy_(torch.tensor([[3.0, 0, 0, 0], [0, 3.0, 0, 0]]))
        model[3].weight.copy_(torch.randn(2, 2, generator=g))
    inputs = torch.randn(400, 4, generator=g)
    labels = torch.arange(400) % 2
    return model, inputs, labels


def kept_diagonal(masks):
    return bool(masks["1"][0, 0] and masks["1"][1, 1])


def test_mint_keeps_the_true_connections_and_caps_each_layer(known):
    model, x, y = known
    result = mint_prune(model, x, y, per_class=150, delta=1.0, gamma=0.5, progress=False)
    rho = result.scores["1"]
    assert rho[0, 0] > 0.3 and rho[1, 1] > 0.3
    assert np.delete(rho[0], 0).max() < rho[0, 0]
    assert kept_diagonal(result.masks)
    assert result.masks["1"].float().mean() == 0.5  # delta=1 cuts all, the cap keeps half
    assert "0" not in result.masks  # the first layer is never a child
    report = result.report
    assert report["layers"]["1"]["pruned_share"] == 0.5
    assert report["total_pruned_share"] == pytest.approx(pruned_share(model, result.masks))
    assert report["settings"]["samples"] == 300 and report["time_s"] > 0
    again = MINT(per_class=150, delta=1.0, gamma=0.5, progress=False).prune(model, x, y)
    assert all(torch.equal(again.masks[k], v) for k, v in result.masks.items())


def test_delta_is_a_quantile_of_unique_pooled_scores_or_a_raw_value():
    scores = [np.array([[0.0, 0.0, 0.1]]), np.array([[0.1, 0.5, np.nan]])]
    assert delta_cutoff(scores, 0.0) == 0.0 and delta_cutoff(scores, 0.4) == 0.1
    assert delta_cutoff(scores, 1.0) == 0.5 and delta_cutoff(scores, 0.3, "raw") == 0.3
    cut = threshold_with_cap(np.array([[0.0, 0.0, 0.1, 0.9]]), 0.1, gamma=0.5)
    assert cut.tolist() == [[True, True, False, False]]


@pytest.mark.parametrize("options,message", [
    ({"delta": 1.5}, "delta"), ({"gamma": -0.1}, "gamma"), ({"delta_mode": "x"}, "delta_mode"),
    ({"groups": 3}, "do not divide"), ({"per_class": 500}, "fewer than the 500")])
def test_mint_refuses_impossible_settings(known, options, message):
    model, x, y = known
    with pytest.raises(ValueError, match=message):
        mint_prune(model, x, y, progress=False, **options)


def test_snacs_with_given_gamma_keeps_true_connections_and_protects(known):
    model, x, y = known
    result = snacs_prune(model, x, y, per_class=150, gamma=0.5, phi="one", progress=False)
    assert kept_diagonal(result.masks) and result.masks["1"].float().mean() == 0.5
    eta = result.scores["1"]
    assert eta[0, 0] > np.delete(eta[0], 0).max()
    protected = SNACS(per_class=150, gamma={"1": 0.5, "3": 0.0}, protect=0.5,
                      progress=False).prune(model, x, y)
    layer = protected.report["layers"]["1"]
    assert layer["protected_filters"] == 1 and layer["gamma"] == 0.5
    top = int(torch.argmax(filter_sensitivity(model[3].weight)))
    assert protected.masks["1"][top].all()  # the sensitive filter keeps every input
    assert protected.masks["1"][1 - top].sum() == 0  # half the layer = the other row
    assert protected.masks["3"].all()  # gamma 0: untouched

# tau matching on data whose labels depend on the inputs: test_review_fixes.py


def test_phi_shrinks_with_the_scaled_weight(known):
    from thrifty.pruning.groups import layer_pairs, pair_groups

    model, _, _ = known
    groups = pair_groups(layer_pairs(model)[0], None)
    phi = phi_matrix(model[1].weight, groups, "exp_weight")
    assert phi[0, 0] == pytest.approx(np.exp(-0.5)) and phi[0, 1] == pytest.approx(1.0)
    assert np.all(phi_matrix(model[1].weight, groups, "one") == 1)


@pytest.mark.parametrize("options,message", [
    ({"tau": 1.2}, "tau"), ({"phi": "norm"}, "phi"), ({"protect": 2}, "protect"),
    ({"gamma": {"1": 0.5}}, "no gamma for layer '3'"), ({"tau": 0.99}, "cannot be reached"),
    ({"gamma": {"1": 0.5, "3": 0.1, "0": 0.2}}, "gamma names 0"),
    ({"groups": {"fc": 2}}, "groups names fc")])
def test_snacs_refuses_impossible_settings(known, options, message):
    model, x, y = known
    with pytest.raises(ValueError, match=message):
        snacs_prune(model, x, y, per_class=50, svm_step=50, progress=False, **options)


def test_magnitude_and_random_baselines_prune_the_same_layers(known):
    model, _, _ = known
    magnitude = baseline_prune(model, "magnitude", sparsity=0.75)
    assert magnitude.masks["1"].sum() == 2 and kept_diagonal(magnitude.masks)
    assert magnitude.report["layers"]["3"]["pruned_share"] == 0.75
    match = {"layers": {"1": {"pruned_share": 0.5}}}
    rand = baseline_prune(model, "random", match=match, seed=1)
    assert set(rand.masks) == {"1"} and rand.masks["1"].float().mean() == 0.5
    assert torch.equal(rand.masks["1"], baseline_prune(model, "random", match=match,
                                                       seed=1).masks["1"])
    with pytest.raises(ValueError, match="exactly one of"):
        baseline_prune(model, "magnitude")
    with pytest.raises(ValueError, match="another model"):
        baseline_prune(model, "random", match={"layers": {"fc9": {"pruned_share": 0.1}}})
    pruned = apply_masks(nn.Sequential(*[m for m in model]), magnitude.masks)
    assert pruned_share(pruned) == pytest.approx(magnitude.report["total_pruned_share"])


@pytest.mark.parametrize("method", ["mint", "snacs"])
def test_conv_layers_lose_whole_kernels_and_flatten_column_blocks(method):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3),
                          nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 3))
    x, y = torch.randn(90, 1, 6, 6), torch.arange(90) % 3
    prune = mint_prune if method == "mint" else snacs_prune
    result = prune(model, x, y, per_class=30, gamma=0.5, groups=2, progress=False)
    conv, linear = result.masks["2"], result.masks["5"]
    assert conv.shape == (6, 4, 3, 3) and linear.shape == (3, 96)
    per_kernel = conv.flatten(2).float().mean(2)
    assert set(per_kernel.unique().tolist()) <= {0.0, 1.0}  # kernels kept or cut whole
    blocks = linear.view(3, 6, 16).float().mean(2)
    assert set(blocks.unique().tolist()) <= {0.0, 1.0}  # a channel's 16 columns together
    assert conv.float().mean() == 0.5 and result.report["layers"]["5"]["groups"] == [3, 2]
