import math

import pytest
import torch

from thrifty.methods import build_method
from thrifty.offline import RPC, RPD, random_per_class, random_per_dataset


def test_rpc_keeps_ceil_alpha_per_class_and_is_seeded():
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 1)
    kept = random_per_class(labels, 0.5, seed=1)
    counts = torch.bincount(labels[kept], minlength=3).tolist()
    assert counts == [5, math.ceil(2.5), 1]
    assert torch.equal(kept, random_per_class(labels, 0.5, seed=1))
    assert not torch.equal(kept, random_per_class(labels, 0.5, seed=2))
    assert torch.equal(kept, kept.sort().values) and len(kept.unique()) == len(kept)


def test_rpd_keeps_ceil_alpha_of_dataset():
    kept = random_per_dataset(101, 0.8, seed=0)
    assert len(kept) == math.ceil(0.8 * 101) and kept.max() < 101
    assert torch.equal(random_per_dataset(10, 1.0), torch.arange(10))


@pytest.mark.parametrize("alpha", [0, -0.1, 1.5, True, "0.5"])
def test_refuse_impossible_ratio(alpha):
    with pytest.raises(ValueError, match=r"alpha .* must be in \(0, 1\]"):
        RPC(alpha)
    with pytest.raises(ValueError, match=r"must be in \(0, 1\]"):
        RPD(alpha)
    with pytest.raises(ValueError, match=r"must be in \(0, 1\]"):
        random_per_class(torch.tensor([0, 1]), alpha)
    with pytest.raises(ValueError, match=r"must be in \(0, 1\]"):
        random_per_dataset(2, alpha)


def test_rpc_refuses_unlabeled_multi_label_and_empty_data_rpd_does_not_need_labels():
    labels = torch.tensor([0, 1, -1, 1, -1, 0])
    with pytest.raises(ValueError, match=r"2 sample\(s\) are unlabeled \(label < 0, first: "
                                         r"sample 2\).*use rpd"):
        RPC(0.5).fit(labels)
    assert len(RPD(0.5).fit(labels).indices_) == 3  # RPD ignores the classes
    with pytest.raises(ValueError, match=r"multi-label data.*use rpd"):
        random_per_class(torch.tensor([[1, 0], [0, 1]]), 0.5)
    with pytest.raises(ValueError, match="empty dataset"):
        random_per_class(torch.tensor([], dtype=torch.long), 0.5)
    kept = random_per_class(torch.tensor([[0], [1], [1]]), 0.5)  # (N, 1): one label each
    assert len(kept) == 2 and kept[0] == 0


def test_reducers_by_name_use_run_seed_unless_given():
    labels = torch.arange(100) % 4
    a = build_method("rpc", {"alpha": 0.3}).fit(labels, seed=5).indices_
    b = RPC(0.3).fit(labels, seed=5).indices_
    c = RPC(0.3, seed=7).fit(labels, seed=5).indices_
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="has no hyper-parameter beta.*accepts: alpha, seed"):
        build_method("rpc", {"beta": 1})
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        build_method("nope", {})


def test_ratio_rounding_ignores_float_noise():
    assert len(random_per_dataset(100, 0.55)) == 55  # math.ceil(0.55 * 100) would give 56
    assert len(random_per_class(torch.zeros(100, dtype=torch.long), 0.07)) == 7
