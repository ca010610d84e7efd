"""Inspect IDS before training: build a registry, summarise what a ratio keeps, plot the
distances. The functions behind a ``thrifty reduce`` command."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from thrifty.data import dataset_labels
from thrifty.offline.common import check_alpha, check_mode
from thrifty.offline.embedders import Embedder, data_fingerprint, make_embedder
from thrifty.offline.ids import IDSRegistry


def build_registry(dataset: Any, embedder: str | Embedder = "snapshot", *,
                   per_class: bool = True, path: str | Path | None = None,
                   **embedder_options: Any) -> IDSRegistry:
    """Embed ``dataset`` and build its IDS registry; optionally save it.

    Args:
        dataset: the training set.
        embedder: an embedder name (``snapshot``, ``pixels``, ``torchvision``) or object.
            Default ``"snapshot"`` (needs ``config=RunConfig(...)`` among the options).
        per_class: one prototype per class (default) or one for the dataset.
        path: where to save the registry (``None``: not saved). Default ``None``.
        **embedder_options: passed to :func:`~thrifty.offline.embedders.make_embedder`
            (weights, warmup_epochs, components, config, cache_dir, progress, ...).

    The registry's ``meta`` holds ``prep_time`` (seconds, embedding included),
    ``embed_time``, ``cache_hit`` and the embedder's name.
    """
    t0 = time.perf_counter()
    emb = embedder if isinstance(embedder, Embedder) else make_embedder(embedder,
                                                                        **embedder_options)
    z = emb.embed(dataset)
    labels = dataset_labels(dataset) if per_class else None
    registry = IDSRegistry.build(
        z, labels, per_class=per_class, num_classes=getattr(dataset, "num_classes", None),
        meta={"embedder": emb.name, "dim": int(z.shape[1]), "data": data_fingerprint(dataset),
              "dataset": str(getattr(dataset, "name", type(dataset).__name__)),
              "embed_time": float(emb.info.get("embed_time", 0.0)),
              "cache_hit": float(emb.info.get("cache_hit", 0.0))})
    registry.meta["prep_time"] = time.perf_counter() - t0
    if path is not None:
        registry.save(path)
    return registry


def describe(registry: IDSRegistry, labels: Any, alpha: float, mode: str = "hard"
             ) -> dict[str, Any]:
    """What ``alpha`` and ``mode`` keep: totals, per-class counts before/after, the share
    kept per class (min/max: the balance), and the registry's preparation time.

    Args:
        registry: an :class:`IDSRegistry`.
        labels: class of every sample (``None``: no per-class breakdown).
        alpha: kept share in (0, 1].
        mode: ``"easy"`` or ``"hard"``. Default ``"hard"``.
    """
    alpha, mode = check_alpha(alpha), check_mode(mode)
    kept = registry.select(alpha, mode)
    out: dict[str, Any] = {
        "alpha": alpha, "mode": mode, "total": registry.num_samples, "kept": len(kept),
        "share": len(kept) / registry.num_samples, "groups": len(registry.groups),
        "prep_time": float(registry.meta.get("prep_time", float("nan"))),
        "embedder": registry.meta.get("embedder"),
    }
    if labels is not None:
        labels = torch.as_tensor(labels).long()
        if len(labels) != registry.num_samples:
            raise ValueError(f"{len(labels)} labels for a registry of {registry.num_samples} "
                             "samples")
        out["per_class"] = {int(c): {"before": int((labels == c).sum()),
                                     "after": int((labels[kept] == c).sum())}
                            for c in torch.unique(labels).tolist() if c >= 0}
        shares = [v["after"] / v["before"] for v in out["per_class"].values() if v["before"]]
        out["class_share_min"], out["class_share_max"] = min(shares), max(shares)
    return out


def plot_distances(registry: IDSRegistry, path: str | Path, *, max_groups: int = 50) -> Path:
    """Save a PNG box plot of the distances to the centroid, one box per class (the first
    ``max_groups``), with each prototype's distance marked. Renders with matplotlib's Agg
    canvas (no pyplot, the global backend is left alone).

    Args:
        registry: an :class:`IDSRegistry`.
        path: the PNG file to write.
        max_groups: at most this many classes are drawn. Default 50.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    g = min(len(registry.groups), max_groups)
    data = [registry.group(i)[1].numpy() for i in range(g)]
    names = [str(int(c)) if c >= 0 else "all" for c in registry.groups[:g]]
    fig = Figure(figsize=(max(4.0, 0.4 * g + 2), 3.5))
    FigureCanvasAgg(fig)  # render with Agg; no pyplot, no global backend change
    ax = fig.subplots()
    ax.boxplot(data, showfliers=False)
    ax.scatter(range(1, g + 1), [d[0] for d in data], marker="^", color="black", zorder=3,
               label="prototype")
    ax.set_xticks(range(1, g + 1), names)
    ax.set_xlabel("class" if registry.per_class else "")
    ax.set_ylabel("Euclidean distance to centroid")
    ax.set_title(f"IDS registry ({registry.meta.get('embedder', '?')} embeddings)")
    ax.legend(loc="upper right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
