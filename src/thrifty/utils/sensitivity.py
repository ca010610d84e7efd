"""Filter sensitivity from the next layer's weights (seed 003, SNACS §4.2.5; reused by CAPER).

For the filters ``i`` of a layer, with the next layer's weight ``W`` of shape
``[N_next, N, kh, kw]`` (or ``[N_next, N]``, or ``[N_next, N*h*w]`` after a flatten):

- ``W~(c, p) = mean_{h,w} W[c, p, h, w]``;
- ``C(c) = sum_p W~(c, p)``;
- ``lambda(i) = sum_c W~(c, i) / C(c)``: the share of each next-layer filter's input weight
  that filter ``i`` carries, summed over the next layer.

The thesis uses signed weights; signed means can make ``C(c)`` zero or negative, so the
default takes ``|W|`` (``absolute=True``; the spec's recommendation, ambiguity 8).
"""

from __future__ import annotations

import torch

from thrifty.utils.params import Interval, validate_params


def filter_sensitivity(next_weight: torch.Tensor, num_filters: int | None = None, *,
                       absolute: bool = True) -> torch.Tensor:
    """Sensitivity ``lambda`` of each filter of a layer from the next layer's weight.

    Args:
        next_weight: weight of the layer that consumes this layer's output:
            ``[N_next, N, kh, kw]`` (conv), ``[N_next, N]`` (linear), or ``[N_next, N*h*w]``
            (linear after flattening a conv output; give ``num_filters``).
        num_filters: ``N``, the filters of this layer (default: ``next_weight.shape[1]``).
        absolute: use ``|W|`` (default ``True``); ``False`` is the thesis's signed form.

    Returns:
        A float tensor of length ``N``; higher = more sensitive (protect first).

    Raises:
        ValueError: the weight does not divide into ``num_filters`` inputs, or a next-layer
            filter's total ``C(c)`` is zero (the message names the filter ``c``).
    """
    w = next_weight.detach().float()
    w = w.abs() if absolute else w
    n = num_filters or w.shape[1]
    if w.dim() == 2 and w.shape[1] != n:
        if w.shape[1] % n:
            raise ValueError(f"the next layer has {w.shape[1]} inputs, not a multiple of "
                             f"{n} filters")
        w = w.reshape(w.shape[0], n, -1)
    if w.dim() > 2:
        w = w.flatten(2).mean(2)
    if w.shape[1] != n:
        raise ValueError(f"the next layer's weight has {w.shape[1]} input channels, expected {n}")
    total = w.sum(1, keepdim=True)
    if (total == 0).any():
        c = int(torch.nonzero(total.flatten() == 0)[0])
        if absolute:
            raise ValueError(f"next-layer filter {c} has zero total weight: its weights are "
                             "all zero, so the sensitivity of this layer's filters is "
                             "undefined; skip the layer (or do not protect: protect=0)")
        raise ValueError(f"next-layer filter {c} has zero total weight: its signed weights "
                         "sum to zero, so the sensitivity is undefined; use absolute=True")
    return (w / total).sum(0)


def protected_filters(sensitivity: torch.Tensor, share: float) -> torch.Tensor:
    """Indices of the top ``share`` of filters by sensitivity, highest first: the
    ``round(share * N)`` most sensitive filters.

    Args:
        sensitivity: ``lambda`` of each filter (:func:`filter_sensitivity`).
        share: the protected share, in [0, 1].
    """
    share = validate_params("protected_filters", {"share": share},
                            {"share": Interval(float, 0, 1)})["share"]
    k = round(share * len(sensitivity))
    return torch.argsort(sensitivity, descending=True, stable=True)[:k]
