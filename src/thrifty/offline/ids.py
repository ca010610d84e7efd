"""IDS, Intellectual Data Selection (Demidovskij et al., Mathematics 2023, Algorithm 2).

Offline, before training: embed every sample, take each class's centroid (k-means with one
cluster, i.e. the class mean), measure the Euclidean distance of every sample to its class
centroid, and keep ``ceil(alpha * L_i)`` samples of class i in the order of the mode:

- ``easy``: closest to the centroid first; ``hard``: farthest first;
- the sample nearest the centroid (the class **prototype**) is always kept.

The per-class order is an :class:`IDSRegistry`: built once (the expensive part, reported
as preparation time), saved to a file, and any ``alpha``/mode is derived from it without
re-embedding. With ``gamma`` the run loads the EASY subset for the first epochs and the HARD
subset from epoch ``gamma`` on (the paper's switch; :class:`IDSSampler`).

Decisions (the paper leaves them open):

- Centroid = class mean (the optimum of one-cluster k-means; computing it directly avoids
  k-means' iterations and tolerance). Distances in float64.
- EASY = ascending distance, HARD = descending distance; equal distances keep dataset-index
  order in **both** modes (a stable sort of the distance, or of its negation for HARD), so
  HARD is the reverse of EASY except inside ties. The prototype is the nearest sample (the
  lowest index among equally near ones) and is added to the HARD subset (Algorithm 2 adds
  ``O_{L_i}``, the last sample of the descending order, i.e. the nearest).
- ``ceil(alpha * L_i)`` is computed on ``alpha * L_i`` rounded to 9 decimals, so binary
  float noise never adds a sample (``0.55 * 100`` keeps 55, not 56).
- ``per_class=False``: one prototype over the whole dataset (the paper's detection case,
  where a sample carries several labels); labels are then not needed.
- A registry given by path (``registry=PATH``) keeps the cost of its build in its ``meta``
  (``prep_time``, ``embed_time``); the run records only its own cost (loading and checking
  the file) as ``prep_time`` and adds ``load_time``/``loaded_from`` to the meta.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from thrifty.engine.checkpoint import save_checkpoint
from thrifty.engine.interfaces import EpochSampler, Pieces, TrainContext
from thrifty.methods import register_method
from thrifty.offline.base import EmbeddingReducer, num_classes_of
from thrifty.offline.common import (
    check_alpha,
    check_class_labels,
    check_embeddings,
    check_mode,
    keep_count,
    mode_order,
)
from thrifty.offline.embedders import Embedder, data_fingerprint

REGISTRY_FORMAT = "thrifty-ids-registry/1"
REGISTRY_FILE = "ids_registry.pt"


def check_labels(labels: Any, num_classes: int | None = None) -> torch.Tensor:
    """Validate per-class labels; return them as a CPU long tensor.

    Raises ``ValueError`` when labels are missing, multi-label (``(N, C)`` with ``C > 1``),
    negative (unlabeled), not below ``num_classes``, or when a class in
    ``[0, num_classes)`` has no sample.

    Args:
        labels: one class per sample (``(N,)``, or ``(N, 1)``).
        num_classes: when given, labels must be below it and every class in
            ``[0, num_classes)`` must have a sample. Default ``None``.
    """
    if labels is None:
        raise ValueError("IDS per class needs the labels of every sample; for unlabeled or "
                         "multi-label data use per_class=False (one prototype for the dataset)")
    labels = check_class_labels(labels, "IDS per class",
                                "use per_class=False (single-prototype mode; `thrifty "
                                "reduce --single-prototype`)")
    if num_classes is not None:
        if int(labels.max()) >= num_classes:
            raise ValueError(f"label {int(labels.max())} is not below num_classes="
                             f"{num_classes}; give the right number of classes")
        counts = torch.bincount(labels, minlength=num_classes)
        empty = torch.nonzero(counts == 0).flatten().tolist()
        if empty:
            raise ValueError(f"class(es) {empty} have no sample, so they have no prototype: "
                             "IDS keeps ceil(alpha*L_i) samples of every class. Use a training "
                             "subset that contains every class (a larger --train-limit), or "
                             "declare fewer classes")
    return labels


@dataclass
class IDSRegistry:
    """The sorted registry of IDS: every group's samples by ascending distance.

    A group is a class (``per_class``) or the whole dataset (``groups == [-1]``).

    Attributes:
        order: dataset indices, group after group, ascending distance inside each group.
        distances: Euclidean distance of ``order[j]`` to its group centroid (float64).
        groups: the class of each group (``-1``: the whole dataset).
        counts: samples per group.
        centroids: ``(G, Z)`` group centroids.
        meta: plain values (embedder name, data fingerprint, prep time, ...).
    """

    order: torch.Tensor
    distances: torch.Tensor
    groups: torch.Tensor
    counts: torch.Tensor
    centroids: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    # ---------------------------------------------------------------- views
    @property
    def num_samples(self) -> int:
        return int(self.counts.sum())

    @property
    def per_class(self) -> bool:
        return bool(self.groups[0] >= 0)

    @property
    def starts(self) -> torch.Tensor:
        """Offset of each group in ``order``."""
        return torch.cumsum(self.counts, 0) - self.counts

    @property
    def prototypes(self) -> torch.Tensor:
        """Dataset index of each group's prototype (its sample nearest the centroid)."""
        return self.order[self.starts]

    def group(self, g: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(indices, distances)`` of group ``g`` in EASY order."""
        s, n = int(self.starts[g]), int(self.counts[g])
        return self.order[s:s + n], self.distances[s:s + n]

    # ---------------------------------------------------------------- build and select
    @classmethod
    def build(cls, embeddings: torch.Tensor, labels: Any = None, *, per_class: bool = True,
              num_classes: int | None = None, meta: dict[str, Any] | None = None
              ) -> IDSRegistry:
        """Build the registry from ``(N, Z)`` embeddings.

        Args:
            embeddings: one row per sample, in dataset order (finite values).
            labels: class of each sample (required when ``per_class``).
            per_class: one prototype per class (``True``, default) or one for the whole
                dataset (``False``; labels ignored).
            num_classes: when given, every class in ``[0, num_classes)`` must have samples.
                Default ``None``.
            meta: plain values stored with the registry. Default ``None``.
        """
        emb = check_embeddings(embeddings)
        if per_class:
            labels = check_labels(labels, num_classes)
            if len(labels) != len(emb):
                raise ValueError(f"{len(emb)} embeddings for {len(labels)} labels")
            classes = torch.unique(labels)
            members = [torch.nonzero(labels == c).flatten() for c in classes]
        else:
            classes = torch.tensor([-1])
            members = [torch.arange(len(emb))]
        order, dist, centroids = [], [], []
        for idx in members:
            points = emb[idx]
            centroid = points.mean(0)  # one-cluster k-means
            d = torch.linalg.vector_norm(points - centroid, dim=1)
            d_sorted, pos = torch.sort(d, stable=True)
            order.append(idx[pos])
            dist.append(d_sorted)
            centroids.append(centroid)
        return cls(torch.cat(order), torch.cat(dist), classes.long(),
                   torch.tensor([len(m) for m in members]), torch.stack(centroids).float(),
                   {"per_class": bool(per_class), **(meta or {})})

    def select(self, alpha: float, mode: str = "hard") -> torch.Tensor:
        """Sorted dataset indices kept for share ``alpha`` and ``mode``: the first
        ``ceil(alpha * L_i)`` of every group in the mode's order (EASY ascending, HARD
        descending distance, ties in dataset-index order in both), plus every prototype.

        Args:
            alpha: kept share per group in (0, 1].
            mode: ``"easy"`` or ``"hard"``. Default ``"hard"``.
        """
        alpha, mode = check_alpha(alpha), check_mode(mode)
        kept = []
        for g in range(len(self.groups)):
            idx, dist = self.group(g)  # EASY order, ties in index order
            k = keep_count(alpha, len(idx))
            kept.append(idx[mode_order(dist, mode)[:k]])
            kept.append(idx[:1])  # the prototype
        return torch.unique(torch.cat(kept))

    # ---------------------------------------------------------------- files
    def to_dict(self) -> dict[str, Any]:
        """Tensors and plain values only (loadable with ``weights_only=True``)."""
        return {"format": REGISTRY_FORMAT, "order": self.order, "distances": self.distances,
                "groups": self.groups, "counts": self.counts, "centroids": self.centroids,
                "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> IDSRegistry:
        if not isinstance(state, dict) or state.get("format") != REGISTRY_FORMAT:
            found = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"not an IDS registry (format {found!r}, expected "
                             f"{REGISTRY_FORMAT!r})")
        return cls(state["order"], state["distances"], state["groups"], state["counts"],
                   state["centroids"], dict(state["meta"]))

    def save(self, path: str | Path) -> Path:
        """Write the registry atomically to ``path``; return the path."""
        save_checkpoint(path, self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> IDSRegistry:
        """Read a registry written by :meth:`save` (``weights_only=True``)."""
        path = Path(path)
        if path.is_dir():
            path = path / REGISTRY_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no IDS registry at {path}; build one with "
                                    "thrifty.offline.inspect.build_registry or a run with "
                                    "--method ids (it saves runs/NAME/ids_registry.pt)")
        return cls.from_dict(torch.load(path, map_location="cpu", weights_only=True))


def switch_epoch(gamma: float, epochs: int) -> int:
    """The 0-based epoch from which IDS loads the HARD subset.

    ``gamma`` in (0, 1) is a fraction of the run (``round(gamma * epochs)``, halves up);
    ``gamma >= 1`` is an epoch count (the first ``gamma`` epochs are EASY). The result must
    leave at least one EASY and one HARD epoch.
    """
    if 0 < gamma < 1:
        e = math.floor(gamma * epochs + 0.5)
        what = f"gamma={gamma} of {epochs} epochs gives switch epoch {e}"
    else:
        if gamma != int(gamma):
            raise ValueError(f"gamma={gamma}: use a fraction in (0, 1) or a whole epoch count")
        e = int(gamma)
        what = f"gamma={gamma} with {epochs} epochs"
    if not 1 <= e < epochs:
        raise ValueError(f"{what}: the switch must leave at least one EASY and one HARD epoch "
                         f"(1 <= switch < epochs). Use mode=easy or mode=hard without gamma for "
                         "a static subset, or change gamma")
    return e


@register_method("ids", "reducer", "IDS: share alpha of each class by distance to the class "
                 "prototype (offline; gamma: easy->hard switch)")
class IDS(EmbeddingReducer):
    """IDS (Demidovskij et al. 2023, Algorithm 2): keep ``ceil(alpha * L_i)`` samples of
    every class ordered by Euclidean distance to the class centroid, plus the prototype.

    Static (``gamma=None``): the subset of ``mode`` for the whole run. With ``gamma``: the
    pool is EASY ∪ HARD; the EASY subset is loaded before the switch epoch and the HARD one
    from it on, by :class:`IDSSampler` (``ids.sampler()``, added automatically when the
    method is built by name, see :meth:`companions`).

    Args:
        alpha: kept share per class in (0, 1]. Default 0.8 (the paper's).
        mode: ``"easy"`` or ``"hard"`` for a static subset; ``None`` means ``"hard"`` (the
            paper's text: descending distance) and must stay ``None`` with ``gamma``.
            Default ``None``.
        gamma: switch from EASY to HARD: a fraction of the run in (0, 1) (e.g. 0.6 = 120 of
            200 epochs, the paper's CIFAR-100 setting; 0.9 = CIFAR-10's 180) or an epoch
            count >= 1. ``None``: no switch. Default ``None``.
        per_class: one prototype per class (``True``, default) or one for the whole
            dataset (``False``, for multi-label data).
        registry: path of a saved :class:`IDSRegistry` to use instead of embedding.
            Default ``None``.
        embedder, weights, arch, size, warmup_epochs, components, cache, cache_dir,
            progress, batch_size: the embedder (see
            :class:`~thrifty.offline.base.EmbeddingReducer`). Default embedder
            ``"snapshot"`` (3 warm-up epochs of the run's model).

    After ``fit``: ``indices_`` (kept, sorted), ``registry_`` (the registry as a dict),
    ``easy_``/``hard_`` (with ``gamma``), ``info_`` (embed_time, registry_time, prep_time,
    cache_hit, compute_time, ...). Inside the engine the registry is also written to
    ``run_dir/ids_registry.pt``. ``prep_time`` is always this run's own cost: with
    ``registry=PATH`` that is loading and checking the file (``info_`` then holds
    ``registry_loaded``, ``load_time`` and ``registry_prep_time``, the build's cost), while
    the registry's ``meta`` keeps the build's ``prep_time``/``embed_time`` and gains
    ``load_time`` and ``loaded_from``.
    """

    name = "ids"

    @property
    def needs_labels(self) -> bool:  # one prototype per class
        return self.per_class
    _state_attrs = ("indices_", "registry_", "easy_", "hard_", "info_")

    def __init__(self, alpha: float = 0.8, mode: str | None = None,
                 gamma: float | None = None, per_class: bool = True,
                 registry: str | None = None, embedder: str | Embedder = "snapshot",
                 weights: str | None = None, arch: str = "resnet18", size: int | None = 224,
                 warmup_epochs: int = 3, components: int = 64, cache: bool = True,
                 cache_dir: str | None = None, progress: bool | None = None,
                 batch_size: int | None = None) -> None:
        super().__init__(embedder=embedder, weights=weights, arch=arch, size=size,
                         warmup_epochs=warmup_epochs, components=components, cache=cache,
                         cache_dir=cache_dir, progress=progress, batch_size=batch_size)
        self.alpha = check_alpha(alpha)
        if gamma is not None:
            if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or gamma <= 0:
                raise ValueError(f"gamma must be a positive fraction (0, 1) or epoch count, "
                                 f"got {gamma!r}; for HARD from the start use mode=hard")
            if mode is not None:
                raise ValueError("mode and gamma exclude each other: with gamma the run "
                                 "loads EASY before the switch and HARD after it; drop mode")
        self.mode = check_mode(mode or "hard")
        self.gamma = gamma
        self.per_class = bool(per_class)
        self.registry = registry
        self.registry_: dict[str, Any] = {}
        self.easy_: torch.Tensor | None = None
        self.hard_: torch.Tensor | None = None
        self._sampler: IDSSampler | None = None

    # ---------------------------------------------------------------- the γ switch
    def sampler(self) -> IDSSampler:
        """The epoch sampler that switches from EASY to HARD (one per reducer)."""
        if self.gamma is None:
            raise ValueError("IDS without gamma is a static subset and needs no sampler")
        if self._sampler is None:
            self._sampler = IDSSampler(self)
        return self._sampler

    def companions(self) -> dict[str, Any]:
        """Pieces this method adds to a run in other places: ``{"sampler": ...}`` with
        ``gamma``, else nothing."""
        return {} if self.gamma is None else {"sampler": self.sampler()}

    def check_composition(self, pieces: Pieces) -> None:
        """With ``gamma``, the run's sampler must be this reducer's own :meth:`sampler`."""
        s = pieces.sampler
        if self.gamma is not None and not (isinstance(s, IDSSampler) and s.source is self):
            raise ValueError(
                f"IDS with gamma={self.gamma} switches subsets per epoch through its own "
                f"sampler, but this run's sampler is {s.name!r}. In Python pass "
                "Trainer(..., reducer=ids, sampler=ids.sampler()); a run built by method name "
                "gets it from IDS.companions() (so 'ids' with gamma cannot be combined with "
                "another sampler method)")

    # ---------------------------------------------------------------- fitting
    def apply(self, registry: IDSRegistry) -> IDS:
        """Derive the kept indices from a registry (no embedding)."""
        self.registry_ = registry.to_dict()
        if self.gamma is None:
            self.indices_ = registry.select(self.alpha, self.mode)
        else:
            self.easy_ = registry.select(self.alpha, "easy")
            self.hard_ = registry.select(self.alpha, "hard")
            self.indices_ = torch.unique(torch.cat([self.easy_, self.hard_]))
        return self

    def fit(self, labels: torch.Tensor, *, seed: int = 0, dataset: Any = None,
            ctx: TrainContext | None = None) -> IDS:
        """Build (or load) the registry and keep the subset; see the class docstring.

        Labels are checked before any embedding (a bad label never costs a warm-up).

        Args:
            labels: class of every training sample (used when ``per_class``).
            seed: the run's seed (unused: the embedder carries its own). Default 0.
            dataset: the training set; needed unless ``registry`` is given. Default ``None``.
            ctx: the run's :class:`~thrifty.engine.TrainContext` inside a driver (the
                snapshot embedder trains through it; the registry is saved in its
                ``run_dir``). Default ``None``.
        """
        t0 = time.perf_counter()
        n_classes = num_classes_of(dataset, ctx)
        if self.per_class:  # refuse bad labels before the expensive embedding
            labels = check_labels(labels, n_classes)
        if self.registry is not None:
            registry = self._load_registry(labels, dataset)
            load_time = time.perf_counter() - t0
            # the build's cost stays in the registry's meta; this run paid only the load
            registry.meta.update(load_time=load_time, loaded_from=str(self.registry))
            self.info_ = {"registry_loaded": 1.0, "load_time": load_time}
            if "prep_time" in registry.meta:
                self.info_["registry_prep_time"] = float(registry.meta["prep_time"])
            self.info_["prep_time"] = time.perf_counter() - t0
        else:
            z = self.embed(dataset, ctx)
            t1 = time.perf_counter()
            registry = IDSRegistry.build(
                z, labels, per_class=self.per_class, num_classes=n_classes,
                meta={"embedder": self.embedder.name, "dim": int(z.shape[1]),
                      "data": data_fingerprint(dataset),
                      "dataset": str(getattr(dataset, "name", type(dataset).__name__))})
            self.info_["registry_time"] = time.perf_counter() - t1
            self.info_["prep_time"] = time.perf_counter() - t0
            registry.meta.update(prep_time=self.info_["prep_time"],
                                 embed_time=self.info_.get("embed_time", 0.0),
                                 cache_hit=self.info_.get("cache_hit", 0.0))
        self.apply(registry)
        if ctx is not None and ctx.run_dir is not None:
            registry.save(Path(ctx.run_dir) / REGISTRY_FILE)
        return self

    def _load_registry(self, labels: Any, dataset: Any) -> IDSRegistry:
        registry = IDSRegistry.load(self.registry)
        n = len(dataset) if dataset is not None else len(labels)
        if registry.num_samples != n:
            raise ValueError(f"the registry {self.registry} covers {registry.num_samples} "
                             f"samples but the training set has {n}; build it for this data")
        if registry.per_class != self.per_class:
            raise ValueError(f"the registry {self.registry} has per_class="
                             f"{registry.per_class}; set per_class to match or rebuild it")
        saved = registry.meta.get("data")
        if dataset is not None and saved and saved != data_fingerprint(dataset):
            raise ValueError(f"the registry {self.registry} was built for other data (its "
                             "fingerprint differs); rebuild it for this training set")
        return registry


class IDSSampler(EpochSampler):
    """IDS's γ switch: load the EASY subset before the switch epoch, the HARD one after.

    Built by :meth:`IDS.sampler`; reads the subsets from its reducer in :meth:`setup`
    (after the reducer's ``fit`` or, on resume, after its state is restored). Each epoch
    records ``ids_hard`` (0/1) and ``ids_active`` (samples loaded) in the run's diagnostics.

    Args:
        source: the fitted :class:`IDS` reducer with ``gamma`` set.
    """

    name = "ids-switch"
    _state_attrs = ("switch_epoch",)

    def __init__(self, source: IDS) -> None:
        super().__init__()
        self.source = source
        self.switch_epoch = 0
        self.easy = self.hard = self.pool

    def setup(self, pool: torch.Tensor, ctx: TrainContext) -> None:
        super().setup(pool, ctx)
        src = self.source
        if src.easy_ is None or src.hard_ is None or src.gamma is None:
            raise ValueError("IDSSampler needs an IDS reducer with gamma, fitted before "
                             "training (the engine fits the reducer first)")
        self.switch_epoch = switch_epoch(src.gamma, ctx.epochs)
        self.easy, self.hard = src.easy_, src.hard_
        if not torch.isin(torch.cat([self.easy, self.hard]), pool).all():
            raise ValueError("the IDS subsets are not in the run's pool: use the IDS reducer "
                             "that owns this sampler as the run's reducer")
        self.active = self.easy

    def begin_epoch(self, ctx: TrainContext) -> None:
        self.active = self.hard if ctx.epoch >= self.switch_epoch else self.easy

    def epoch_diagnostics(self) -> dict[str, float]:
        return {"ids_hard": float(self.epoch >= self.switch_epoch),
                "ids_active": float(len(self.active))}
