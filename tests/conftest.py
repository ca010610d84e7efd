"""Shared fixtures: tiny data and configs that train in well under a second."""

from __future__ import annotations

import pytest
import torch

from thrifty.data import TensorData, load_digits, random_crop_flip
from thrifty.engine import make_config

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits() -> tuple[TensorData, TensorData]:
    return load_digits()


@pytest.fixture
def digits_aug(digits) -> tuple[TensorData, TensorData]:
    train, test = digits
    return (TensorData(train.x, train.y, 10, "digits", random_crop_flip(padding=1)), test)


@pytest.fixture
def tiny_config(tmp_path):
    """``tiny_config(**overrides)``: a quiet digits config writing under tmp_path."""

    def make(**overrides):
        base = {"workload": "digits-mlp", "epochs": 2, "out_dir": str(tmp_path / "runs"),
                "progress": False, "batch_size": 64}
        base.update(overrides)
        return make_config(base)

    return make
