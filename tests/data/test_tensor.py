"""`limited`: a seeded subset of any dataset, labelled like the dataset it comes from."""

import torch
from torch.utils.data import Dataset

from thrifty.data import TensorData, dataset_labels
from thrifty.data.tensor import limited


class Items(Dataset):
    """A plain map-style dataset with targets and class names."""

    classes = ["a", "b", "c"]

    def __init__(self, n):
        self.targets = [i % 3 for i in range(n)]

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return torch.full((2,), float(i)), self.targets[i]


def test_a_plain_dataset_gives_the_same_samples_as_tensor_data_with_its_labels():
    items = Items(40)
    tensors = TensorData(torch.stack([items[i][0] for i in range(40)]),
                         torch.tensor(items.targets), 3)
    part, same = limited(items, 10, seed=3), limited(tensors, 10, seed=3)
    assert len(part) == 10 and part.classes == items.classes
    assert torch.equal(torch.stack([part[i][0] for i in range(10)]), same.x)
    assert torch.equal(dataset_labels(part), same.y)  # the chosen samples' targets
    assert [part[i][1] for i in range(10)] == part.targets


def test_no_limit_or_a_large_one_keeps_the_dataset():
    items = Items(5)
    assert limited(items, None) is items and limited(items, 5) is items


def test_a_limit_of_zero_is_refused():
    import pytest

    with pytest.raises(ValueError, match="subset size must be positive, got 0"):
        limited(Items(5), 0)
