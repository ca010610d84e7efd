"""Layer pairs, sequential groups and group decisions -> weight masks."""

import numpy as np
import pytest
import torch
from torch import nn

from thrifty.models.small import MLP, SmallCNN
from thrifty.pruning.groups import (
    connection_mask,
    default_groups,
    expand_mask,
    group_labels,
    layer_pairs,
    pair_groups,
)


def flat_cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3),
                         nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 3))


def test_pairs_chain_consecutive_layers_and_never_prune_the_first():
    pairs = layer_pairs(flat_cnn())
    assert [(p.parent, p.child, p.last) for p in pairs] == [("0", "2", False), ("2", "5", True)]
    assert [p.child for p in layer_pairs(SmallCNN())] == ["features.4", "features.8",
                                                         "classifier"]
    mlp = layer_pairs(MLP(10, (1, 8, 8), hidden=(32, 16)))
    assert [(p.parent_width, p.child_width) for p in mlp] == [(32, 16), (16, 10)]
    assert [p.child for p in layer_pairs(flat_cnn(), skip=["2"])] == ["5"]
    with pytest.raises(ValueError, match="not a prunable layer"):
        layer_pairs(flat_cnn(), skip=["nope"])


def test_a_layer_that_does_not_read_its_predecessor_starts_a_new_chain():
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 1))
    assert [(p.parent, p.child) for p in layer_pairs(model)] == [("1", "2")]


def test_groups_are_consecutive_and_must_divide_the_width():
    assert group_labels(6, 3).tolist() == [0, 0, 1, 1, 2, 2]
    assert default_groups(128) == 16 and default_groups(500) == 20 and default_groups(7) == 7
    with pytest.raises(ValueError, match=r"fc1 has 10 filters.*\[1, 2, 5, 10\]"):
        group_labels(10, 3, "fc1")
    pairs = layer_pairs(MLP(10, (1, 8, 8), hidden=(32, 16)))
    assert pair_groups(pairs[0], 4).shape == (4, 4)
    assert pair_groups(pairs[1], 4).shape == (10, 4)  # last layer: one group per class
    assert pair_groups(pairs[0], {"body.3": 8}).shape == (8, default_groups(32))


def test_group_cuts_become_kernel_column_and_entry_masks():
    pair = layer_pairs(flat_cnn())[0]  # conv 4 -> conv 6
    groups = pair_groups(pair, 2)
    cut = np.array([[True, False], [False, False]])
    kept = connection_mask(groups, cut)
    assert kept.shape == (6, 4) and not kept[:3, :2].any() and kept[3:].all()
    assert kept[:3, 2:].all()
    conv = expand_mask(kept, (6, 4, 3, 3))
    assert conv.shape == (6, 4, 3, 3) and not conv[0, 0].any() and conv[0, 3].all()
    flat = expand_mask(kept[:, :2].T.contiguous(), (2, 6 * 16))  # linear after a flatten
    assert flat.shape == (2, 96) and not flat[0, :16].any() and flat[0, 48:].all()
    protected = np.array([True, False, False, False, False, False])
    assert connection_mask(groups, cut, protected)[0].all()
    assert torch.equal(expand_mask(kept, (6, 4)), kept)
