"""The small models of the standard workloads: the fmnist-cnn CNN and an MLP."""

from __future__ import annotations

import math

import torch
from torch import nn


class SmallCNN(nn.Module):
    """The standard small CNN of BENCHMARK.md: three conv blocks (32-64-128 channels, each
    conv3x3 + BatchNorm + ReLU + 2x2 max-pool) and one linear classifier.

    Args:
        num_classes: output classes. Default 10.
        in_channels: input channels. Default 1.
        widths: channels of the three blocks. Default ``(32, 64, 128)``.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1,
                 widths: tuple[int, int, int] = (32, 64, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """Features before the classifier (used by embedders)."""
        return torch.flatten(self.pool(self.features(x)), 1)


class MLP(nn.Module):
    """A multi-layer perceptron over flattened inputs.

    Args:
        num_classes: output classes. Default 10.
        input_shape: shape of one input sample. Default ``(1, 8, 8)``.
        hidden: widths of the hidden layers. Default ``(128,)``.
    """

    def __init__(self, num_classes: int = 10, input_shape: tuple[int, ...] = (1, 8, 8),
                 hidden: tuple[int, ...] = (128,)) -> None:
        super().__init__()
        dims = [math.prod(input_shape), *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(dims[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x))

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SequenceCNN(nn.Module):
    """A 1-D convolutional classifier of token sequences: an embedding, two conv1d blocks
    (kernel 5, BatchNorm, ReLU) and a global max-pool before the linear classifier.

    Args:
        num_classes: output classes. Default 6.
        vocab: token ids are ``0..vocab-1``. Default 12.
        width: embedding and conv channels. Default 64.
    """

    def __init__(self, num_classes: int = 6, vocab: int = 12, width: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.features = nn.Sequential(
            nn.Conv1d(width, width, 5, padding=2, bias=False), nn.BatchNorm1d(width),
            nn.ReLU(inplace=True),
            nn.Conv1d(width, width, 5, padding=2, bias=False), nn.BatchNorm1d(width),
            nn.ReLU(inplace=True))
        self.classifier = nn.Linear(width, num_classes)

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(self.embed(x.long()).transpose(1, 2))
        return h.amax(dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.penultimate(x))
