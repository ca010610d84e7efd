"""SSP, self-supervised prototypes (Sorscher et al. 2022, "Beyond neural scaling laws:
beating power law scaling via data pruning", arXiv:2206.14486), the offline baseline of the
IDS paper.

Embed every sample, run k-means over the **whole** dataset (labels unused), score each
sample by the **cosine** distance of its embedding to the nearest centroid, and keep the
hardest (largest distance; Sorscher et al.'s choice when data is abundant) or the easiest
share ``alpha``: ``ceil(alpha * N)`` samples, classes ignored.

Decisions:

- The paper uses a self-supervised SwAV embedding; here the embedder is chosen by name
  like IDS's (default: the download-free warm-up snapshot of the run's model).
- Embeddings are L2-normalised before k-means (``normalize=True``), so Euclidean k-means
  clusters by direction, matching the cosine score. "Nearest centroid" is the nearest by
  cosine distance (``1 - max_c cos(z, c)``), computed with torch.
- ``k`` defaults to the number of classes: one prototype per class on average, which
  isolates SSP's differences from IDS (unsupervised clusters, cosine distance, no per-class
  balance). Sorscher et al. treat k as a hyper-parameter.
- k-means: faiss when installed (``backend="auto"``), else scikit-learn ``KMeans``
  (``MiniBatchKMeans`` above 200,000 samples); all seeded with the run's seed.
- Ties (equal distances) keep dataset-index order in both modes, as in IDS: HARD is a
  stable sort of the negated distance.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from thrifty.engine.interfaces import TrainContext
from thrifty.methods import register_method
from thrifty.offline.base import EmbeddingReducer, num_classes_of
from thrifty.offline.common import (
    check_alpha,
    check_embeddings,
    check_mode,
    keep_count,
    mode_order,
)
from thrifty.offline.embedders import Embedder

BACKENDS = ("auto", "sklearn", "minibatch", "faiss")
MINIBATCH_ABOVE = 200_000


def _faiss():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def kmeans_centroids(x: np.ndarray, k: int, *, seed: int = 0, backend: str = "auto"
                     ) -> tuple[np.ndarray, str]:
    """``(k, Z)`` centroids of ``x`` and the backend used.

    Args:
        x: ``(N, Z)`` float array.
        k: number of clusters.
        seed: random state of the initialisation. Default 0.
        backend: ``"auto"`` (faiss if installed, else scikit-learn), ``"sklearn"``
            (``KMeans``, or ``MiniBatchKMeans`` above 200,000 samples), ``"minibatch"``,
            ``"faiss"`` (error when not installed: ``pip install faiss-cpu``). Default
            ``"auto"``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    faiss = _faiss() if backend in ("auto", "faiss") else None
    if backend == "faiss" and faiss is None:
        raise ValueError("backend='faiss' but faiss is not installed: pip install faiss-cpu "
                         "(or use backend=sklearn)")
    if faiss is not None:
        km = faiss.Kmeans(x.shape[1], k, niter=25, seed=seed, verbose=False)
        km.train(np.ascontiguousarray(x, dtype=np.float32))
        return km.centroids.astype(np.float64), "faiss"
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if backend == "minibatch" or len(x) > MINIBATCH_ABOVE:
        km = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096)
        return km.fit(x).cluster_centers_, "minibatch"
    return KMeans(n_clusters=k, random_state=seed, n_init=1).fit(x).cluster_centers_, "sklearn"


def cosine_to_nearest(embeddings: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """``1 - max_c cos(z_j, c)`` for every row ``z_j``: the cosine distance to the nearest
    centroid (float64)."""
    z = F.normalize(embeddings.double(), dim=1)
    c = F.normalize(centroids.double(), dim=1)
    return 1.0 - (z @ c.T).max(dim=1).values


def ssp_scores(embeddings: torch.Tensor, k: int, *, seed: int = 0, backend: str = "auto",
               normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor, str]:
    """SSP difficulty of every sample: ``(distances, centroids, backend used)``.

    Args:
        embeddings: ``(N, Z)`` finite embeddings.
        k: number of k-means clusters (1 <= k <= N).
        seed: k-means seed. Default 0.
        backend: see :func:`kmeans_centroids`. Default ``"auto"``.
        normalize: L2-normalise the embeddings before k-means. Default ``True``.
    """
    emb = check_embeddings(embeddings)
    if isinstance(k, bool) or int(k) != k or not 1 <= k <= len(emb):
        raise ValueError(f"k (the number of clusters) must be an integer in [1, {len(emb)}], "
                         f"got {k!r}")
    x = F.normalize(emb, dim=1) if normalize else emb
    centroids, used = kmeans_centroids(x.numpy(), int(k), seed=seed, backend=backend)
    c = torch.from_numpy(np.asarray(centroids, dtype=np.float64))
    return cosine_to_nearest(emb, c), c, used


def ssp_select(distances: torch.Tensor, alpha: float, mode: str = "hard") -> torch.Tensor:
    """Sorted indices of the ``ceil(alpha * N)`` hardest (largest distance) or easiest
    samples. Equal distances keep dataset-index order in both modes (as in IDS): at the cut,
    the lower index is kept.

    Args:
        distances: ``(N,)`` SSP distances (:func:`ssp_scores`).
        alpha: kept share in (0, 1].
        mode: ``"hard"`` (largest distance first) or ``"easy"``. Default ``"hard"``.
    """
    alpha, mode = check_alpha(alpha), check_mode(mode)
    order = mode_order(distances, mode)
    return order[:keep_count(alpha, len(distances))].sort().values


@register_method("ssp", "reducer", "SSP: k-means over the dataset, keep share alpha by cosine "
                 "distance to the nearest centroid (offline)")
class SSP(EmbeddingReducer):
    """SSP (Sorscher et al. 2022): k-means over the whole dataset, difficulty = cosine
    distance to the nearest centroid; keep ``ceil(alpha * N)`` samples.

    Args:
        alpha: kept share of the dataset in (0, 1]. Default 0.8 (the IDS paper's setting).
        mode: ``"hard"`` keeps the farthest samples (default; for abundant data),
            ``"easy"`` the closest (for scarce data).
        k: number of clusters; ``None`` uses the number of classes. Default ``None``.
        backend: k-means implementation, see :func:`kmeans_centroids`. Default ``"auto"``.
        normalize: L2-normalise embeddings before k-means. Default ``True``.
        seed: k-means seed; ``None`` uses the run's seed. Default ``None``.
        embedder, weights, arch, size, warmup_epochs, components, cache, cache_dir,
            progress, batch_size: the embedder (see
            :class:`~thrifty.offline.base.EmbeddingReducer`). Default ``"snapshot"``.

    After ``fit``: ``indices_``, ``scores_`` (distance of every sample), ``info_``
    (embed_time, kmeans_time, prep_time, k, cache_hit, ...).
    """

    name = "ssp"

    @property
    def needs_labels(self) -> bool:  # the default k is the number of classes
        return self.k is None
    _state_attrs = ("indices_", "scores_", "info_")

    def __init__(self, alpha: float = 0.8, mode: str = "hard", k: int | None = None,
                 backend: str = "auto", normalize: bool = True, seed: int | None = None,
                 embedder: str | Embedder = "snapshot", weights: str | None = None,
                 arch: str = "resnet18", size: int | None = 224, warmup_epochs: int = 3,
                 components: int = 64, cache: bool = True, cache_dir: str | None = None,
                 progress: bool | None = None, batch_size: int | None = None) -> None:
        super().__init__(embedder=embedder, weights=weights, arch=arch, size=size,
                         warmup_epochs=warmup_epochs, components=components, cache=cache,
                         cache_dir=cache_dir, progress=progress, batch_size=batch_size)
        self.alpha = check_alpha(alpha)
        self.mode = check_mode(mode)
        if k is not None and (isinstance(k, bool) or int(k) != k or k < 1):
            raise ValueError(f"k (the number of clusters) must be a positive integer, got {k!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self.k, self.backend, self.normalize, self.seed = k, backend, bool(normalize), seed
        self.scores_ = torch.empty(0)

    def fit(self, labels: torch.Tensor, *, seed: int = 0, dataset: Any = None,
            ctx: TrainContext | None = None) -> SSP:
        """Embed, cluster, score and keep; see the class docstring.

        Args:
            labels: class of every sample (only counted for the default ``k``).
            seed: the run's seed, the k-means seed unless ``seed`` was given. Default 0.
            dataset: the training set to embed (required). Default ``None``.
            ctx: the run's :class:`~thrifty.engine.TrainContext` inside a driver (the
                snapshot embedder trains through it). Default ``None``.
        """
        t0 = time.perf_counter()
        k = self.k or num_classes_of(dataset, ctx) or len(torch.unique(torch.as_tensor(labels)))
        z = self.embed(dataset, ctx)
        t1 = time.perf_counter()
        self.scores_, _, used = ssp_scores(z, k, seed=seed if self.seed is None else self.seed,
                                           backend=self.backend, normalize=self.normalize)
        self.indices_ = ssp_select(self.scores_, self.alpha, self.mode)
        self.info_.update(kmeans_time=time.perf_counter() - t1, k=float(k),
                          prep_time=time.perf_counter() - t0, faiss=float(used == "faiss"))
        return self
