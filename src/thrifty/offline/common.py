"""Checks and counts shared by the embedding-based offline reducers (IDS, SSP).

- :data:`CONSTRAINTS`: what ``alpha`` and ``mode`` accept (:mod:`thrifty.utils.params`).
- :func:`check_alpha`: the kept share must lie in (0, 1].
- :func:`keep_count`: ``ceil(alpha * n)``, robust to float noise (``0.55 * 100`` is
  ``55.00000000000001`` in binary floating point and must give 55, not 56):
  :func:`~thrifty.utils.shares.share_count`.
- :func:`check_mode`: ``"easy"`` or ``"hard"`` (case-insensitive).
- :func:`mode_order`: positions by ascending (EASY) or descending (HARD) distance, ties in
  index order in both modes.
- :func:`check_embeddings`: a finite ``(N, Z)`` float matrix.
"""

from __future__ import annotations

from typing import Any

import torch

from thrifty.utils.params import Interval, Options, Param, validate_params
from thrifty.utils.shares import share_count

MODES = ("easy", "hard")

#: the reducers' shared hyper-parameters
CONSTRAINTS = {
    "alpha": Param(Interval(float, 0, 1, closed="right"), label="the kept share",
                   hint="1 keeps everything, 0.8 is the paper's default"),
    "mode": Param(Options(str, MODES, ignore_case=True),
                  hint="'easy' takes the samples closest to the prototype first, 'hard' the "
                       "farthest first"),
}

#: who the messages of :func:`check_alpha` and :func:`check_mode` name by default
OWNER = "offline reducer"


def check_alpha(alpha: float, owner: str = OWNER) -> float:
    """Return ``alpha`` as a float; raise ``ValueError`` unless ``0 < alpha <= 1``.

    Args:
        alpha: the kept share.
        owner: who checks, the message's prefix. Default ``"offline reducer"``.
    """
    return validate_params(owner, {"alpha": alpha}, CONSTRAINTS)["alpha"]


def keep_count(alpha: float, n: int) -> int:
    """``ceil(alpha * n)`` (at least 1, at most ``n``), rounding ``alpha * n`` to 9 decimals
    first so that binary float noise never adds a sample
    (:func:`~thrifty.utils.shares.share_count`).

    Args:
        alpha: the kept share, in [0, 1].
        n: the number of samples.
    """
    return share_count(alpha, n)


def check_mode(mode: str, owner: str = OWNER) -> str:
    """Normalise a selection mode to ``"easy"`` or ``"hard"`` (case-insensitive); raise
    ``ValueError`` otherwise.

    Args:
        mode: the mode.
        owner: who checks, the message's prefix. Default ``"offline reducer"``.
    """
    return validate_params(owner, {"mode": mode}, CONSTRAINTS)["mode"]


def mode_order(distances: torch.Tensor, mode: str) -> torch.Tensor:
    """Positions of ``distances`` in the order of ``mode``: ``"easy"`` ascending, ``"hard"``
    descending; equal distances keep their position order in both modes (a stable sort of
    the distances, or of their negation for HARD). HARD is therefore the reverse of EASY
    except inside ties.

    Args:
        distances: a 1-D tensor of finite distances.
        mode: ``"easy"`` or ``"hard"`` (case-insensitive).
    """
    key = distances if check_mode(mode) == "easy" else -distances
    return torch.sort(key, stable=True).indices


def check_embeddings(embeddings: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """Validate an ``(N, Z)`` embedding matrix; return it as float64 on the CPU.

    Raises ``ValueError`` for a wrong shape, a row count different from ``n``, an empty
    matrix, or NaN/infinite values (naming the first bad row and the fix).
    """
    if not isinstance(embeddings, torch.Tensor) or embeddings.dim() != 2:
        shape = tuple(embeddings.shape) if isinstance(embeddings, torch.Tensor) else None
        raise ValueError(f"embeddings must be an (N, Z) tensor, got shape {shape}")
    if len(embeddings) == 0:
        raise ValueError("cannot reduce an empty dataset: the embeddings have no rows")
    if n is not None and len(embeddings) != n:
        raise ValueError(f"{len(embeddings)} embeddings for {n} samples; embed the same "
                         "dataset the labels come from")
    emb = embeddings.detach().to("cpu", torch.float64)
    bad = ~torch.isfinite(emb).all(dim=1)
    if bad.any():
        first = int(torch.nonzero(bad)[0])
        raise ValueError(f"embeddings contain NaN or infinite values in {int(bad.sum())} "
                         f"row(s) (first: sample {first}). Check the inputs for NaN, or use "
                         "another embedder (e.g. embedder=pixels); a diverged warm-up snapshot "
                         "needs a lower --lr")
    return emb


def check_class_labels(labels: Any, who: str, way_out: str) -> torch.Tensor:
    """Labels of a per-class method as a CPU long tensor: one class per sample, none
    negative, not empty.

    Raises ``ValueError`` for an empty, multi-label (``(N, C)``, ``C > 1``) or unlabeled
    (label < 0) set; the message names ``who`` needs the classes and ``way_out``.

    Args:
        labels: class of every sample, ``(N,)`` (or ``(N, 1)``).
        who: the method, e.g. ``"IDS per class"``.
        way_out: what to use instead, e.g. ``"use per_class=False"``.
    """
    labels = torch.as_tensor(labels)
    if labels.dim() > 1 and labels[0].numel() > 1:
        raise ValueError(f"multi-label data (labels of shape {tuple(labels.shape)}, several "
                         f"per sample): {who} needs one class per sample; {way_out}")
    labels = labels.flatten().long().cpu()
    if len(labels) == 0:
        raise ValueError("cannot reduce an empty dataset")
    negative = labels < 0
    if negative.any():
        first = int(torch.nonzero(negative)[0])
        raise ValueError(f"{int(negative.sum())} sample(s) are unlabeled (label < 0, first: "
                         f"sample {first}); {who} needs a class for every sample: drop them, "
                         f"or {way_out}")
    return labels
