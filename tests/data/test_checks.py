"""A user's datasets are checked before training: integer labels in [0, classes) in both
sets, targets that agree with the samples and with the length, one input shape; each
refusal names the dataset and the first bad index."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from thrifty import Thrift
from thrifty.data import TensorData
from thrifty.engine import Trainer, make_config

QUIET = {"log": lambda s: None}


def _cfg(tmp_path):
    return make_config({"workload": "digits-mlp", "epochs": 1, "out_dir": str(tmp_path),
                        "progress": False})


def _user_set(x, y, targets=None):
    data = TensorDataset(x, y)
    data.targets = y if targets is None else targets
    return data


def test_float_labels_are_refused_not_truncated(digits):
    train, _ = digits
    with pytest.raises(ValueError, match=r"float32 values \(index 0: 0.5\).*integers"):
        TensorData(train.x[:4], torch.tensor([0.5, 1.0, 2.0, 3.0]), 10, "f")
    floats = _user_set(train.x, train.y.float())
    with pytest.raises(ValueError, match="targets of TensorDataset are torch.float32"):
        Thrift("infobatch", floats, epochs=1, **QUIET)


def test_ignored_and_out_of_range_labels_are_refused_with_the_first_index(tmp_path, digits):
    train, test = digits
    y = train.y.clone()
    y[7] = -100  # cross-entropy would silently skip it
    with pytest.raises(ValueError, match="label -100 at index 7"):
        Trainer(_cfg(tmp_path), train=TensorData(train.x, y, 10, "t"), test=test, **QUIET)
    bad_test = test.y.clone()
    bad_test[3] = -1
    with pytest.raises(ValueError, match="the test set has label -1 at index 3"):
        Trainer(_cfg(tmp_path), train=train, test=TensorData(test.x, bad_test, 10, "t"),
                **QUIET)
    with pytest.raises(ValueError, match="label -100 at index 7"):
        Thrift("infobatch", _user_set(train.x, y), epochs=1, **QUIET)


def test_targets_that_disagree_with_the_samples_or_the_length_are_refused(tmp_path, digits):
    train, test = digits
    shuffled = _user_set(train.x, train.y, targets=train.y.roll(1))
    with pytest.raises(ValueError, match=r"sample \d+ has label \d+ but its `targets` say"):
        Thrift("infobatch", shuffled, epochs=1, **QUIET)
    short = _user_set(train.x, train.y, targets=train.y[:100])
    with pytest.raises(ValueError, match="1347 samples but \\(100,\\)-shaped targets"):
        Trainer(_cfg(tmp_path), train=short, test=test, **QUIET)


def test_test_inputs_of_another_shape_are_refused(tmp_path, digits):
    train, test = digits
    other = TensorData(torch.zeros(len(test), 1, 4, 4), test.y, 10, "small")
    with pytest.raises(ValueError, match=r"training inputs are \(1, 8, 8\)-shaped but the "
                                         r"test inputs \(1, 4, 4\)"):
        Trainer(_cfg(tmp_path), train=train, test=other, **QUIET)


def test_limits_on_a_dataset_read_from_disk_are_refused_not_ignored(tmp_path, digits):
    train, test = digits
    cfg = _cfg(tmp_path)
    cfg.train_limit = 100
    with pytest.raises(ValueError, match="--train-limit subsets in-memory datasets"):
        Trainer(cfg, train=_user_set(train.x, train.y), test=test, **QUIET)
