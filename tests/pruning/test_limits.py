"""SVM-derived upper pruning limits gamma and the tau-matching search (SNACS §4.2.4)."""

import numpy as np
import pytest
import torch
from torch import nn

from thrifty.pruning.limits import (
    compression_levels,
    gammas_at,
    layer_inputs,
    masked_output,
    match_sparsity,
    svm_accuracy_curve,
)


def test_levels_follow_the_reference_and_coarse_grids():
    assert compression_levels(2)[:3].tolist() == [0.01, 0.03, 0.05]
    assert compression_levels(2)[-1] == pytest.approx(0.99)
    assert compression_levels(10).tolist() == pytest.approx([0.05 + 0.1 * i for i in range(10)])
    with pytest.raises(ValueError, match="svm_step"):
        compression_levels(0)


def test_gamma_is_the_latest_level_above_theta_and_tau_is_matched():
    levels = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    curves = {"a": np.array([1.0, 0.95, 0.9, 0.95, 0.5]),  # noisy: the latest crossing wins
              "b": np.array([1.0, 0.8, 0.6, 0.4, 0.2])}
    assert gammas_at(curves, levels, 0.9) == {"a": 0.7, "b": 0.1}
    assert gammas_at(curves, levels, 1.01) == {"a": 0.0, "b": 0.0}
    betas = {"a": 0.5, "b": 0.5}
    theta, gammas = match_sparsity(curves, levels, betas, tau=0.5)
    assert (theta, gammas) == (0.8, {"a": 0.7, "b": 0.3})  # 0.5 exactly
    theta, gammas = match_sparsity(curves, levels, {"a": 0.9, "b": 0.1}, tau=0.1)
    assert gammas == {"a": 0.1, "b": 0.1} and theta == 1.0
    with pytest.raises(ValueError, match="cannot be reached"):
        match_sparsity(curves, levels, betas, tau=0.95)


def test_svm_accuracy_falls_as_a_layer_loses_its_inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 6, generator=g)
    labels = (x[:, :3].sum(1) > 0).long().numpy()
    layer = nn.Linear(6, 6)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(6))
        layer.bias.fill_(5.0)  # positive outputs survive the ReLU clamp
    assert np.allclose(masked_output(layer, x, torch.ones(6, 6, dtype=torch.bool)),
                       (x + 5).numpy())

    def mask_at(c):  # cut the first round(c * 6) diagonal entries
        mask = torch.ones(6, 6, dtype=torch.bool)
        idx = torch.arange(round(c * 6))
        mask[idx, idx] = False
        return mask

    acc = svm_accuracy_curve(layer, x, labels, mask_at, np.array([0.0, 0.5, 1.0]))
    assert acc[0] > 0.9 and acc[2] < 0.75 and acc[0] > acc[1]


def test_layer_inputs_are_what_the_module_receives():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).train()
    x = torch.randn(7, 3)
    feeds = layer_inputs(model, x, ["2"], batch_size=3)
    assert torch.allclose(feeds["2"], torch.relu(model[0](x)))
    assert model.training
