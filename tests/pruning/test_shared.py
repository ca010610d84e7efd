"""Masks, sensitivity and activation taps shared by MINT, SNACS and CAPER."""

import pytest
import torch
from torch import nn

from thrifty.pruning import (
    apply_masks,
    balanced_subset,
    collect_activations,
    filter_sensitivity,
    load_masks,
    protected_filters,
    pruned_share,
    remove_masks,
    save_masks,
)


def small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3),
                         nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 3))


def test_masks_round_trip_and_stay_zero_while_training(tmp_path):
    model = small_cnn()
    mask = torch.ones(6, 4, 3, 3, dtype=torch.bool)
    mask[0, 1] = False  # one whole kernel: connection 1 -> 0
    path = save_masks(tmp_path / "m.pt", {"2": mask}, {"method": "test"})
    apply_masks(model, load_masks(path))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(8, 1, 6, 6)).pow(2).mean().backward()
        opt.step()
    assert torch.all(model[2].weight[0, 1] == 0)
    assert model[2].weight[1].abs().sum() > 0
    total = sum(m.weight.numel() for m in (model[0], model[2], model[5]))
    assert pruned_share(model) == pytest.approx(9 / total)
    remove_masks(model)
    assert not hasattr(model[2], "weight_mask") and torch.all(model[2].weight[0, 1] == 0)


def test_mask_errors_name_the_problem(tmp_path):
    model = small_cnn()
    with pytest.raises(ValueError, match="does not have"):
        apply_masks(model, {"9": torch.ones(1, dtype=torch.bool)})
    with pytest.raises(ValueError, match="shape"):
        apply_masks(model, {"2": torch.ones(6, 4, dtype=torch.bool)})
    with pytest.raises(FileNotFoundError, match="thrifty prune"):
        load_masks(tmp_path / "none.pt")
    torch.save({"x": 1}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a thrifty mask file"):
        load_masks(tmp_path / "bad.pt")
    halves = tmp_path / "half.pt"  # written by hand: save_masks only writes bool masks
    torch.save({"format": "thrifty-masks/1", "masks": {"2": torch.full((6, 4, 3, 3), 0.5)}},
               halves)
    with pytest.raises(ValueError, match="half.pt: the mask of layer '2' is not all 0s and 1s"):
        load_masks(halves)
    (tmp_path / "cut.pt").write_bytes(halves.read_bytes()[:100])  # truncated
    with pytest.raises(ValueError, match="cut.pt is not a readable mask file"):
        load_masks(tmp_path / "cut.pt")


def test_sensitivity_matches_the_closed_form():
    # next layer: 2 filters reading 3 inputs, 1x1 kernels
    w = torch.tensor([[1.0, 1.0, 2.0], [3.0, 1.0, 0.0]]).view(2, 3, 1, 1)
    lam = filter_sensitivity(w)
    expected = torch.tensor([1 / 4 + 3 / 4, 1 / 4 + 1 / 4, 2 / 4 + 0])
    assert torch.allclose(lam, expected)
    assert lam.sum() == pytest.approx(2.0)  # one unit per next-layer filter
    assert protected_filters(lam, 1 / 3).tolist() == [0]
    # a linear layer after a flatten of 3 channels x 2 positions
    lin = torch.tensor([[1.0, 1.0, 2.0, 2.0, 0.0, 0.0]])
    assert torch.allclose(filter_sensitivity(lin, 3), torch.tensor([1 / 3, 2 / 3, 0.0]))
    with pytest.raises(ValueError, match="zero total weight"):
        filter_sensitivity(torch.tensor([[1.0, -1.0]]), absolute=False)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        protected_filters(lam, 1.5)


def test_collect_activations_spatial_means_and_restores_mode():
    model = small_cnn().train()
    x = torch.randn(10, 1, 6, 6)
    acts = collect_activations(model, x, ["0", "5"], batch_size=4)
    assert acts["0"].shape == (10, 4) and acts["5"].shape == (10, 3)
    assert torch.allclose(acts["0"], model[0](x).mean((2, 3)), atol=1e-6)
    assert model.training
    with pytest.raises(ValueError, match="no layer named"):
        collect_activations(model, x, ["fc9"])


def test_balanced_subset():
    labels = torch.tensor([0] * 5 + [1] * 3)
    idx = balanced_subset(labels, 2, seed=1)
    assert len(idx) == 4 and (labels[idx] == 0).sum() == 2
    assert torch.equal(idx, balanced_subset(labels, 2, seed=1))
    with pytest.raises(ValueError, match="class 1 has 3"):
        balanced_subset(labels, 4)
