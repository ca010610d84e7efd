"""A user's datasets checked before a run trains on them: integer labels in
``[0, classes)`` for training and test, ``targets`` that agree with the samples (spot
checks) and with the length, and the same input shape in both sets. Each refusal names the
dataset, the first bad index and the fix."""

from __future__ import annotations

from typing import Any

import torch

from thrifty.data.tensor import TensorData, dataset_labels

#: Samples read to check that a dataset's ``targets`` agree with its items.
SPOT_CHECKS = 8


def _label_of(sample: Any) -> Any:
    if isinstance(sample, dict):
        return sample.get("labels", sample.get("label"))
    return sample[1] if isinstance(sample, (tuple, list)) and len(sample) >= 2 else None


def check_labels(labels: torch.Tensor, num_classes: int, what: str) -> None:
    """Refuse labels outside ``[0, num_classes)`` (-100, cross-entropy's ignored label,
    included), naming the first bad index."""
    bad = (labels < 0) | (labels >= num_classes)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(f"{what} has label {int(labels[i])} at index {i} ({int(bad.sum())} "
                         f"bad in all) but {num_classes} classes: labels must be "
                         f"0..{num_classes - 1} (no ignored labels such as -100)")


def check_dataset(data: Any, num_classes: int, what: str, seed: int = 0) -> torch.Tensor:
    """The dataset's labels, checked: integers (:func:`~thrifty.data.tensor.integer_labels`),
    one per sample, in ``[0, num_classes)``, and (for a dataset with ``targets``) equal to
    the labels of :data:`SPOT_CHECKS` seeded samples."""
    labels = dataset_labels(data)
    if labels.dim() != 1 or len(labels) != len(data):
        raise ValueError(f"{what} has {len(data)} samples but {tuple(labels.shape)}-shaped "
                         "targets: give one integer label per sample")
    check_labels(labels, num_classes, what)
    if isinstance(data, TensorData) or not len(data):
        return labels
    g = torch.Generator().manual_seed(seed)
    for i in torch.randperm(len(data), generator=g)[:SPOT_CHECKS].tolist():
        y = _label_of(data[i])
        if y is not None and int(torch.as_tensor(y)) != int(labels[i]):
            raise ValueError(f"{what}: sample {i} has label {int(torch.as_tensor(y))} but its "
                             f"`targets` say {int(labels[i])}: make `targets` list each "
                             "sample's own label, in order")
    return labels


def input_shape(data: Any) -> tuple[int, ...]:
    """The shape of one input of ``data``."""
    if isinstance(data, TensorData):
        return tuple(data.x.shape[1:])
    x = data[0][0] if not isinstance(data[0], dict) else None
    return tuple(torch.as_tensor(x).shape) if x is not None else ()


def check_pair(train: Any, test: Any, num_classes: int) -> None:
    """The training and test sets of one run: the test labels in range, spot-checked, and
    the same input shape as the training set's."""
    check_dataset(test, num_classes, "the test set")
    a, b = input_shape(train), input_shape(test)
    if a and b and a != b:
        raise ValueError(f"the training inputs are {a}-shaped but the test inputs {b}: "
                         "evaluate on data of the training set's shape")
