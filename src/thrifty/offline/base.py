"""The shared part of the embedding-based reducers (IDS, SSP): choose an embedder by name,
embed the training set (or reuse the cache), and keep the timing of that step."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from thrifty.engine.interfaces import Reducer, TrainContext
from thrifty.offline.embedders import Embedder, make_embedder


class EmbeddingReducer(Reducer):
    """A reducer that embeds the training set with an :class:`Embedder` first.

    Args:
        embedder: ``"snapshot"`` (default: warm-up of the run's own model), ``"pixels"``
            (PCA of the pixels) or ``"torchvision"`` (needs ``weights``), or an
            :class:`Embedder` object.
        weights: weights file of the torchvision embedder. Default ``None``.
        arch: torchvision architecture. Default ``"resnet18"``.
        size: torchvision input side after resizing (``None``: native). Default 224.
        warmup_epochs: snapshot warm-up epochs. Default 3.
        components: PCA dimensions of the pixels embedder. Default 64.
        cache: use the on-disk embedding cache. Default ``True``.
        cache_dir: cache folder (default ``$THRIFTY_CACHE/embeddings`` or
            ``~/.cache/thrifty/embeddings``). Default ``None``.
        progress: progress bars; ``None`` follows the run. Default ``None``.
        batch_size: embedding batch size; ``None`` uses the run's ``eval_batch_size``.
            Default ``None``.
    """

    def __init__(self, *, embedder: str | Embedder = "snapshot", weights: str | None = None,
                 arch: str = "resnet18", size: int | None = 224, warmup_epochs: int = 3,
                 components: int = 64, cache: bool = True, cache_dir: str | Path | None = None,
                 progress: bool | None = None, batch_size: int | None = None) -> None:
        if isinstance(embedder, Embedder):
            self.embedder = embedder
        else:
            self.embedder = make_embedder(embedder, weights=weights, arch=arch, size=size,
                                          warmup_epochs=warmup_epochs, components=components,
                                          cache=cache, cache_dir=cache_dir, progress=progress,
                                          batch_size=batch_size)
        self.info_: dict[str, float] = {}

    def embed(self, dataset: Any, ctx: TrainContext | None = None) -> torch.Tensor:
        """Embed ``dataset``; record ``embed_time`` and the embedder's numbers in ``info_``."""
        if dataset is None:
            raise ValueError(f"{self.name} embeds the training set and needs it: call "
                             "fit(labels, dataset=...) (the engine passes it)")
        t0 = time.perf_counter()
        z = self.embedder.embed(dataset, ctx)
        self.info_ = {**{k: float(v) for k, v in self.embedder.info.items()},
                      "embed_time": time.perf_counter() - t0}
        return z


def num_classes_of(dataset: Any, ctx: TrainContext | None) -> int | None:
    """The number of classes from the run's context, the dataset, or ``None`` when
    unknown."""
    if ctx is not None and ctx.num_classes:
        return int(ctx.num_classes)
    n = getattr(dataset, "num_classes", None)
    if n:
        return int(n)
    classes = getattr(dataset, "classes", None)
    return len(classes) if classes else None
