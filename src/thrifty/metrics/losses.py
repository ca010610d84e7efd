"""Loss statistics of seed 004 (ASSIST thesis, Sec. 4.1) over a whole dataset."""

from __future__ import annotations

import math

import torch

QUANTILES = (0.5, 0.9, 0.99)


def loss_statistics(losses: torch.Tensor, correct: torch.Tensor | None = None) -> dict[str, float]:
    """Mean, worst (max), best (min) and the 0.5/0.9/0.99 quantiles of per-sample losses.

    Args:
        losses: per-sample losses (any shape; flattened).
        correct: optional per-sample correctness; adds ``accuracy``.
    """
    flat = losses.detach().flatten().double().cpu()
    if flat.numel() == 0:
        raise ValueError("loss statistics need at least one loss")
    q = torch.quantile(flat, torch.tensor(QUANTILES, dtype=torch.double))
    out = {"mean": flat.mean().item(), "worst": flat.max().item(), "best": flat.min().item()}
    out.update({f"q{p:g}": v for p, v in zip(QUANTILES, q.tolist())})
    if correct is not None:
        out["accuracy"] = correct.float().mean().item()
    return out


def loss_ratios(test: dict[str, float], train: dict[str, float]) -> dict[str, float]:
    """``test / train`` for accuracy, mean, q0.9 and worst (NaN when train is 0)."""
    out = {}
    for key in ("accuracy", "mean", "q0.9", "worst"):
        if key in test and key in train:
            out[key] = test[key] / train[key] if train[key] != 0 else math.nan
    return out
