"""Generated workloads that differ from fmnist-cnn in data, model and optimizer, made on the
spot (no download, no files), identical on every machine for a given seed of the split.

- ``tabular``: a 6-class tabular task with **controlled redundancy**: 10,000 distinct
  samples (scikit-learn's ``make_classification``: 32 features, 12 informative, 8 linear
  combinations of them, 2 clusters per class, 3 % of labels flipped) and 10,000 near-copies
  of them (jittered by 5 % of a feature's spread), so half the training set repeats the
  other half; 4,000 distinct test samples. Features standardised with the training set's
  statistics.
- ``sequences``: 6-class token sequences (length 32, 12 tokens): each sequence is random
  background with its class's 4-token motif planted at a random place, each motif token
  replaced by a random one with probability 0.3, a decoy (another class's motif
  with two tokens replaced) elsewhere, and 5 % of training labels replaced by
  another class (**label noise**); 6,000 training and 2,000 test sequences.
"""

from __future__ import annotations

import numpy as np
import torch

from thrifty.data.tensor import TensorData

#: The generator's fixed seed: the task is the same for every run; ``seed`` only varies
#: what each run does with it.
TASK_SEED = 20261206


def load_tabular(n_distinct: int = 10_000, n_copies: int = 10_000, n_test: int = 4_000,
                 seed: int = TASK_SEED) -> tuple[TensorData, TensorData]:
    """The ``tabular`` task (see the module docstring); ``(train, test)``."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=n_distinct + n_test, n_features=32,
                               n_informative=12, n_redundant=8, n_classes=6,
                               n_clusters_per_class=2, class_sep=1.0, flip_y=0.03,
                               random_state=seed)
    rng = np.random.default_rng(seed)
    x_tr, y_tr, x_te, y_te = x[:n_distinct], y[:n_distinct], x[n_distinct:], y[n_distinct:]
    src = rng.integers(0, n_distinct, n_copies)
    copies = x_tr[src] + 0.05 * x_tr.std(0) * rng.standard_normal((n_copies, x.shape[1]))
    x_tr, y_tr = np.concatenate([x_tr, copies]), np.concatenate([y_tr, y_tr[src]])
    order = rng.permutation(len(y_tr))
    x_tr, y_tr = x_tr[order], y_tr[order]
    mean, std = x_tr.mean(0), x_tr.std(0) + 1e-8
    mk = lambda a, b: TensorData(torch.tensor((a - mean) / std, dtype=torch.float32),  # noqa: E731
                                 torch.tensor(b, dtype=torch.long), 6, "tabular")
    return mk(x_tr, y_tr), mk(x_te, y_te)


def load_sequences(n_train: int = 6_000, n_test: int = 2_000, length: int = 32,
                   vocab: int = 12, classes: int = 6, mutate: float = 0.3,
                   label_noise: float = 0.05, seed: int = TASK_SEED
                   ) -> tuple[TensorData, TensorData]:
    """The ``sequences`` task (see the module docstring); ``(train, test)``, inputs are
    ``(length,)`` long tensors of token ids."""
    g = torch.Generator().manual_seed(seed)
    motifs = torch.randint(0, vocab, (classes, 4), generator=g)

    def make(n: int, noise: float) -> TensorData:
        y = torch.arange(n) % classes
        y = y[torch.randperm(n, generator=g)]
        x = torch.randint(0, vocab, (n, length), generator=g)
        start = torch.randint(0, length - 4, (n,), generator=g)
        motif = motifs[y].clone()
        flip = torch.rand(n, 4, generator=g) < mutate
        motif[flip] = torch.randint(0, vocab, (int(flip.sum()),), generator=g)
        cols = start[:, None] + torch.arange(4)
        x.scatter_(1, cols, motif)
        # a distractor: another class's motif, two of its tokens replaced, elsewhere
        other = (y + torch.randint(1, classes, (n,), generator=g)) % classes
        decoy = motifs[other].clone()
        decoy[:, torch.randperm(4, generator=g)[:2]] = torch.randint(
            0, vocab, (n, 2), generator=g)
        at = (start + 4 + torch.randint(0, length - 8, (n,), generator=g)) % (length - 4)
        keep = (at + 4 <= start) | (at >= start + 4)
        dcols = at[keep, None] + torch.arange(4)
        x[keep] = x[keep].scatter(1, dcols, decoy[keep])
        if noise:
            wrong = torch.rand(n, generator=g) < noise
            shift = torch.randint(1, classes, (n,), generator=g)
            y = torch.where(wrong, (y + shift) % classes, y)
        return TensorData(x, y, classes, "sequences")

    return make(n_train, label_noise), make(n_test, 0.0)
