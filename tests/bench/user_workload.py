"""A user's workload as a factory file, benchmarked by tests/bench/test_user_workload.py
(``--workload tests/bench/user_workload.py:tiny``): a plain Dataset class, not thrifty's."""

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import Dataset

import thrifty


class Digits(Dataset):
    """scikit-learn digits as a map-style dataset with ``targets`` (a user's own class)."""

    def __init__(self, part: str, size: int):
        d = load_digits()
        perm = torch.randperm(len(d.target), generator=torch.Generator().manual_seed(0))
        keep = perm[:size] if part == "train" else perm[-size // 2:]
        self.x = torch.tensor(d.data, dtype=torch.float32)[keep] / 16.0
        self.targets = torch.tensor(d.target)[keep].tolist()

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.x[i], self.targets[i]


def tiny():
    return thrifty.Workload(
        train=Digits("train", 320), test=Digits("test", 320),
        model=lambda: nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)),
        options={"lr": 0.1, "batch_size": 32, "epochs": 4, "progress": False})


def wrong_type():
    return {"train": None}


def no_targets():
    w = tiny()
    del w.train.targets
    return thrifty.Workload(w.train, w.test, w.model)


def bad_model():
    return thrifty.Workload(Digits("train", 64), Digits("test", 64),
                            model=lambda: nn.Linear(10, 10))


def bad_option():
    return thrifty.Workload(Digits("train", 64), Digits("test", 64),
                            model=lambda: nn.Linear(64, 10), options={"lr": "fast"})


def raises():
    raise OSError("the data folder is not mounted")
