"""Layer pairs of a model, sequential filter groups, and group decisions -> weight masks.

Seed 003, §0.2 and §0.7. A *layer pair* ``(parent, child)`` is two consecutive prunable
layers (``Conv2d``/``Linear`` in module order) where the child reads the parent's output: its
input channels equal the parent's output channels, or (a ``Linear`` after a flattened conv)
its input features are a multiple of them. Pruning a pair zeroes connections of the
*child's* weight ``W[child filters, parent filters, ...]``. The first prunable layer is never
a child, so it is never pruned; a layer whose input does not match the previous layer's
output (a shortcut conv of a ResNet, a depthwise conv) starts a new chain and is not a child
either.

Residual blocks (torchvision ``BasicBlock``/``Bottleneck``, which the project's ResNets use,
``InvertedResidual`` with its skip connection, and any module with a ``downsample`` or
``shortcut`` submodule) are respected by default: a pair is formed only between convs of the
same block, or from a layer outside every residual block into the first conv of a block.
The last conv of a block (or its downsample conv) is never the parent of the next block's
first conv or of the classifier, because those read the residual *sum*, not that conv's
output; a downsample/shortcut conv is never a child. ``cross_residual=True`` restores the
plain chain rule. Other branching models are only handled as far as the chain rule sees them.

Groups are built from consecutive filter indices, ``G`` groups of equal size; the last
layer's child groups are its outputs (one group per class).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from thrifty.utils.masks import prunable_layers

#: default upper bound on the number of groups of a layer (the spec's MNIST-MLP value)
MAX_DEFAULT_GROUPS = 20


@dataclass(frozen=True)
class LayerPair:
    """Two consecutive prunable layers; pruning acts on ``child``'s weight.

    Attributes:
        parent: module name of the parent layer (nearer the input).
        child: module name of the child layer.
        parent_width: output filters/neurons of the parent (``N^(l)``).
        child_width: output filters/neurons of the child (``N^(l+1)``).
        last: the child is the model's last prunable layer (its groups are the classes).
    """

    parent: str
    child: str
    parent_width: int
    child_width: int
    last: bool


def out_width(module: nn.Module) -> int:
    """Output channels of a ``Conv2d`` or output features of a ``Linear``."""
    return module.out_channels if isinstance(module, nn.Conv2d) else module.out_features


def _reads(child: nn.Module, parent: nn.Module) -> bool:
    width = out_width(parent)
    if isinstance(child, nn.Conv2d):
        return child.groups == 1 and child.in_channels == width
    return child.in_features == width or (isinstance(parent, nn.Conv2d)
                                          and child.in_features % width == 0)


_SHORTCUTS = ("downsample", "shortcut")


def residual_blocks(model: nn.Module) -> list[str]:
    """Names of the modules whose output is a residual sum (see the module docstring)."""
    from torchvision.models.mobilenetv2 import InvertedResidual
    from torchvision.models.resnet import BasicBlock, Bottleneck

    out = []
    for name, module in model.named_modules():
        if name and (isinstance(module, (BasicBlock, Bottleneck))
                     or (isinstance(module, InvertedResidual)
                         and getattr(module, "use_res_connect", False))
                     or any(isinstance(getattr(module, a, None), nn.Module)
                            for a in _SHORTCUTS)):
            out.append(name)
    return out


def _block_of(name: str, blocks: list[str]) -> str | None:
    """The innermost residual block holding layer ``name`` (``None``: outside all)."""
    inside = [b for b in blocks if name.startswith(b + ".")]
    return max(inside, key=len) if inside else None


def _in_shortcut(name: str, block: str | None) -> bool:
    rest = name[len(block) + 1:] if block else name
    return rest.split(".")[0] in _SHORTCUTS


def _respects_residuals(parent: str, child: str, blocks: list[str]) -> bool:
    bp, bc = _block_of(parent, blocks), _block_of(child, blocks)
    if _in_shortcut(child, bc):
        return False
    if bp is not None:  # only inside the same block, from a conv of the main path
        return bp == bc and not _in_shortcut(parent, bp)
    return True  # a plain layer into a block's first conv (or a plain layer)


def layer_pairs(model: nn.Module, skip: Iterable[str] | str = (),
                cross_residual: bool = False) -> list[LayerPair]:
    """The adjacent prunable layer pairs of ``model`` in module order.

    Args:
        model: the network.
        skip: child layer names never to prune (default none); one name or several.
        cross_residual: also pair layers across residual-block boundaries (default
            ``False``: the child of such a pair reads a residual sum, not the parent).

    Returns:
        One :class:`LayerPair` per child layer that reads its predecessor's output.
    """
    layers = list(prunable_layers(model).items())
    skipped = {skip} if isinstance(skip, str) else set(skip)
    blocks = [] if cross_residual else residual_blocks(model)
    unknown = skipped - {name for name, _ in layers}
    if unknown:
        raise ValueError(f"cannot skip {', '.join(sorted(unknown))}: not a prunable layer "
                         f"(those are {', '.join(n for n, _ in layers)})")
    pairs = []
    for (pname, parent), (cname, child) in zip(layers[:-1], layers[1:]):
        if (cname not in skipped and _reads(child, parent)
                and _respects_residuals(pname, cname, blocks)):
            pairs.append(LayerPair(pname, cname, out_width(parent), out_width(child),
                                   last=cname == layers[-1][0]))
    return pairs


def default_groups(width: int, limit: int = MAX_DEFAULT_GROUPS) -> int:
    """The largest divisor of ``width`` that is at most ``limit`` (default 20)."""
    return max(g for g in range(1, min(width, limit) + 1) if width % g == 0)


def group_labels(width: int, groups: int, layer: str = "layer") -> np.ndarray:
    """Group id of each of ``width`` filters: ``groups`` runs of consecutive indices.

    Raises:
        ValueError: ``groups`` is not in ``[1, width]`` or does not divide ``width``.
    """
    if not 1 <= groups <= width or width % groups:
        divisors = [g for g in range(1, width + 1) if width % g == 0]
        raise ValueError(f"{layer} has {width} filters, which {groups} groups do not divide "
                         f"into equal sizes; choose one of {divisors}")
    return np.repeat(np.arange(groups), width // groups)


def groups_of(layer: str, width: int, groups: int | Mapping[str, int] | None) -> int:
    """The number of groups of ``layer`` from an int (all layers), a per-layer mapping or
    ``None`` (:func:`default_groups`)."""
    if isinstance(groups, Mapping):
        groups = groups.get(layer)
    return default_groups(width) if groups is None else int(groups)


@dataclass(frozen=True)
class PairGroups:
    """The grouping of one layer pair: a group id for each child and each parent filter."""

    pair: LayerPair
    child: np.ndarray
    parent: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """``(child groups, parent groups)``."""
        return int(self.child.max()) + 1, int(self.parent.max()) + 1


def pair_groups(pair: LayerPair, groups: int | Mapping[str, int] | None) -> PairGroups:
    """Group ids of a pair; the last layer's children are one group per output (class)."""
    child_g = pair.child_width if pair.last else groups_of(pair.child, pair.child_width, groups)
    parent_g = groups_of(pair.parent, pair.parent_width, groups)
    return PairGroups(pair, group_labels(pair.child_width, child_g, pair.child),
                      group_labels(pair.parent_width, parent_g, pair.parent))


def expand_mask(kept: torch.Tensor, weight_shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """A ``[N_child, N_parent]`` connection mask shaped like the child's weight.

    Conv weights get whole kernels; a ``Linear`` after a flattened conv gets the column block
    of each parent channel (channel-major flatten order); a plain ``Linear`` the entries.
    """
    n_child, n_parent = kept.shape
    if len(weight_shape) == 4:
        return kept[:, :, None, None].expand(*weight_shape).clone()
    per_channel = weight_shape[1] // n_parent
    return kept.repeat_interleave(per_channel, dim=1) if per_channel > 1 else kept.clone()


def connection_mask(groups: PairGroups, pruned: np.ndarray,
                    protected: np.ndarray | None = None) -> torch.Tensor:
    """``[N_child, N_parent]`` bool mask (True = kept) from a ``[Gc, Gp]`` pruned matrix.

    Args:
        groups: the pair's grouping.
        pruned: bool matrix, True where the connection (child group, parent group) is cut.
        protected: optional bool vector over child filters whose rows are always kept.
    """
    kept = ~pruned[groups.child[:, None], groups.parent[None, :]]
    if protected is not None:
        kept[protected] = True
    return torch.from_numpy(kept)
