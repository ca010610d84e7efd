"""CIFAR variants of torchvision architectures (32x32 inputs).

The ImageNet stem downsamples 4x before the first block, which wastes a 32x32 image; the
usual CIFAR adaptation replaces it with a stride-1 3x3 convolution and no max-pool
(ResNets), or removes the first two stride-2 steps (MobileNetV2).
"""

from __future__ import annotations

from torch import nn
from torchvision import models as tvm


def cifar_resnet(depth: int = 18, num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """CIFAR ResNet-18/34/50: torchvision ResNet with a 3x3 stride-1 stem and no max-pool.

    Args:
        depth: 18, 34 or 50. Default 18.
        num_classes: output classes. Default 10.
        in_channels: input channels. Default 3.
    """
    builders = {18: tvm.resnet18, 34: tvm.resnet34, 50: tvm.resnet50}
    if depth not in builders:
        raise ValueError(f"CIFAR ResNet depth must be one of {sorted(builders)}, got {depth}")
    model = builders[depth](weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def cifar_mobilenet_v2(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """CIFAR MobileNetV2: torchvision MobileNetV2 with the stem and the first stride-2
    inverted residual set to stride 1 (total downsampling 8x instead of 32x).

    Args:
        num_classes: output classes. Default 10.
        in_channels: input channels. Default 3.
    """
    model = tvm.mobilenet_v2(weights=None, num_classes=num_classes)
    stem = model.features[0][0]
    model.features[0][0] = nn.Conv2d(in_channels, stem.out_channels, 3, stride=1, padding=1,
                                     bias=False)
    model.features[2].conv[1][0].stride = (1, 1)
    return model
