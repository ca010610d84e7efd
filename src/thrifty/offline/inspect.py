"""Inspect IDS before training: build a registry, summarise what a ratio keeps, plot the
distances. The functions behind a ``thrifty reduce`` command."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from thrifty.data import dataset_labels
from thrifty.offline.base import num_classes_of
from thrifty.offline.common import check_alpha, check_mode
from thrifty.offline.embedders import Embedder, data_fingerprint, make_embedder
from thrifty.offline.ids import IDSRegistry, check_labels


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
    ``embed_time``, ``cache_hit`` and the embedder's name. With ``per_class`` the labels are
    checked (multi-label, unlabeled, out of range, empty classes) before anything is
    embedded.
    """
    t0 = time.perf_counter()
    num_classes = num_classes_of(dataset, None)
    # refuse bad labels before the expensive part (a snapshot trains epochs first)
    labels = check_labels(dataset_labels(dataset), num_classes) if per_class else None
    emb = embedder if isinstance(embedder, Embedder) else make_embedder(embedder,
                                                                        **embedder_options)
    z = emb.embed(dataset)
    registry = IDSRegistry.build(
        z, labels, per_class=per_class, num_classes=num_classes,
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
        labels: class of every sample (``None``: no per-class breakdown; negative labels,
            i.e. unlabeled samples, are left out of it). Also meaningful for a
            single-prototype registry: the breakdown shows how the balance shifts.
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
        if shares:  # none when every sample is unlabeled
            out["class_share_min"], out["class_share_max"] = min(shares), max(shares)
    return out


def plot_distances(registry: IDSRegistry, path: str | Path, *, per_row: int = 50,
                   max_groups: int | None = None) -> Path:
    """Save a PNG box plot of the distances to the centroid, one box per class, with each
    prototype's distance marked. Every class is drawn: beyond ``per_row`` classes the boxes
    wrap onto further rows (CIFAR-100: two rows of 50). Renders with matplotlib's Agg canvas
    (no pyplot, the global backend is left alone).

    Args:
        registry: an :class:`IDSRegistry`.
        path: the PNG file to write.
        per_row: boxes per row. Default 50.
        max_groups: draw only the first this many classes (the title then says "first N of
            M classes"); ``None`` draws all. Default ``None``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if per_row < 1:
        raise ValueError(f"per_row must be at least 1, got {per_row}")
    total = len(registry.groups)
    g = total if max_groups is None else max(1, min(total, int(max_groups)))
    data = [registry.group(i)[1].numpy() for i in range(g)]
    names = [str(int(c)) if c >= 0 else "all" for c in registry.groups[:g]]
    rows = -(-g // per_row)
    width = min(g, per_row)
    fig = Figure(figsize=(max(4.0, 0.4 * width + 2), 1.0 + 2.8 * rows))
    FigureCanvasAgg(fig)  # render with Agg; no pyplot, no global backend change
    axes = fig.subplots(rows, 1, squeeze=False, sharey=True)[:, 0]
    for r, ax in enumerate(axes):
        part = range(r * per_row, min(g, (r + 1) * per_row))
        pos = range(1, len(part) + 1)
        ax.boxplot([data[i] for i in part], showfliers=False)
        ax.scatter(pos, [data[i][0] for i in part], marker="^", color="black", zorder=3,
                   label="prototype")
        ax.set_xticks(pos, [names[i] for i in part], fontsize=8 if len(part) > 25 else None)
        ax.set_xlabel("class" if registry.per_class else "")
        ax.set_ylabel("Euclidean distance to centroid")
    axes[0].legend(loc="upper right")
    shown = f"{total} classes" if g == total else f"first {g} of {total} classes"
    title = f"IDS registry ({registry.meta.get('embedder', '?')} embeddings)"
    axes[0].set_title(f"{title}, {shown}" if registry.per_class else title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
