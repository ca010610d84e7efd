"""Embedders: one batched no-grad pass mapping every training sample to a feature vector,
with an on-disk cache.

Three embedders, chosen by name (:func:`make_embedder`, ``--method-arg embedder=NAME``):

- ``snapshot`` (:class:`SnapshotEmbedder`, the download-free **default**): train a fresh copy
  of the run's own model for a few warm-up epochs, then take its penultimate features. The
  IDS paper (Table A3, Appendix C) compared ImageNet ResNet-18, SwAV, DINOv2 and snapshots of
  the model being trained after 5, 10 and 15 epochs; the epoch-15 snapshot "negligibly
  outperforms" the others. Cost: ``warmup_epochs`` epochs of ordinary training plus one
  forward pass over the training set, all counted as preparation time.
- ``torchvision`` (:class:`TorchvisionEmbedder`): a torchvision architecture (ResNet-18 by
  default, 512-d penultimate layer, as in the paper) with weights read from a file the user
  gives; nothing is downloaded.
- ``pixels`` (:class:`PixelPCAEmbedder`): flattened pixels reduced by scikit-learn PCA; the
  cheapest fallback (seconds), with no notion of semantics.

Every embedder reads the data through :func:`~thrifty.data.tensor.eval_view`: an on-disk
image folder is embedded with its deterministic resize + centre crop, never with its random
training crop, so embeddings (and the data fingerprint of the cache key) are the same on
every call.

Cache: embeddings are saved under ``cache_dir`` (default ``$THRIFTY_CACHE/embeddings``, or
``~/.cache/thrifty/embeddings`` when ``THRIFTY_CACHE`` is unset), one file per key. The key is
the dataset name, its size, a SHA-256 over a strided sample of the inputs and all labels,
the embedder name and the embedder's identity (the weights file's SHA-256, the PCA settings,
or for a snapshot the warm-up recipe plus a hash of the initial weights). Files are written
atomically and read with ``weights_only=True``; a file whose stored key differs, or that
cannot be read, is recomputed.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import re
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from thrifty.data import TensorData, dataset_labels, iterate_batches
from thrifty.data.tensor import eval_view
from thrifty.engine.checkpoint import save_checkpoint
from thrifty.engine.interfaces import TrainContext
from thrifty.engine.runtime import resolve_device
from thrifty.engine.warmup import TrainingInterrupted, warm_up
from thrifty.models.registry import fitting_tensors, read_state_dict

CACHE_FORMAT = "thrifty-embeddings/1"
EMBEDDERS = ("snapshot", "pixels", "torchvision")
FeatureFn = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------- hashing and the cache
def cache_dir_default() -> Path:
    """``$THRIFTY_CACHE/embeddings`` when the variable is set, else
    ``~/.cache/thrifty/embeddings``."""
    env = os.environ.get("THRIFTY_CACHE")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "thrifty"
    return root / "embeddings"


def _sha(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy().tobytes()


def data_fingerprint(dataset: Any, samples: int = 512) -> str:
    """SHA-256 over the dataset's size, input shape, a strided sample of about ``samples``
    inputs and all labels. Cheap (no full pass over the inputs) yet changes when the data do.

    Inputs are read through :func:`~thrifty.data.tensor.eval_view` (no random training
    transform), so the same data give the same fingerprint on every call.

    Args:
        dataset: a :class:`~thrifty.data.TensorData` or any map-style dataset of ``(x, y)``.
        samples: inputs hashed (every ``len // samples``-th one). Default 512.
    """
    n = len(dataset)
    stride = max(1, n // samples)
    if isinstance(dataset, TensorData):
        xs, y = dataset.x[::stride], dataset.y
    else:
        view = eval_view(dataset)
        xs = torch.stack([torch.as_tensor(view[i][0]) for i in range(0, n, stride)])
        y = dataset_labels(dataset)
    return _sha(f"{n}:{tuple(xs.shape[1:])}:{xs.dtype}".encode(), _tensor_bytes(xs),
                _tensor_bytes(y.long()))


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def state_dict_hash(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, shapes and values of a state dict."""
    h = hashlib.sha256()
    for k in sorted(state):
        v = state[k]
        h.update(k.encode())
        if isinstance(v, torch.Tensor):
            h.update(str(tuple(v.shape)).encode())
            h.update(_tensor_bytes(v))
    return h.hexdigest()


# ---------------------------------------------------------------- features of a model
def strip_classifier(model: nn.Module) -> nn.Module:
    """Replace the model's last ``nn.Linear`` (in registration order) by ``nn.Identity``,
    so that the model outputs its penultimate features (e.g. 512-d for ResNet-18)."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier to remove")
    parent_name, _, child = last.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, nn.Identity())
    return model


def penultimate_fn(model: nn.Module) -> FeatureFn:
    """A function ``x -> features``: ``model.penultimate(x)`` when the model has it (the small
    models do), else the input of the model's last ``nn.Linear``, captured by a forward hook
    (the classifier of torchvision models)."""
    own = getattr(model, "penultimate", None)
    if callable(own):
        return own
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    if last is None:
        raise ValueError(f"{type(model).__name__} has neither a penultimate() method nor an "
                         "nn.Linear classifier whose input could be taken as features")

    def features(x: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []
        handle = last.register_forward_hook(lambda m, inp, out: captured.append(inp[0]))
        try:
            model(x)
        finally:
            handle.remove()
        return torch.flatten(captured[-1], 1)

    return features


@torch.no_grad()
def embed_dataset(fn: FeatureFn, dataset: Any, *, batch_size: int = 256,
                  device: torch.device | str = "cpu", progress: bool = True,
                  desc: str = "embedding", num_workers: int = 0) -> torch.Tensor:
    """Run ``fn`` over the whole dataset in order (no augmentation, no gradient) and return
    the ``(N, Z)`` float32 CPU tensor of features.

    The dataset is read through :func:`~thrifty.data.tensor.eval_view` (an image folder's
    deterministic resize + centre crop instead of its random training crop), and the pass
    leaves the global RNG untouched.

    Args:
        fn: ``x_batch -> (B, Z)`` features (already on ``device``).
        dataset: the dataset to embed.
        batch_size: samples per forward pass. Default 256.
        device: where batches go. Default ``"cpu"``.
        progress: show a tqdm progress bar. Default ``True``.
        desc: the bar's label. Default ``"embedding"``.
        num_workers: DataLoader workers for on-disk datasets. Default 0.
    """
    out: list[torch.Tensor] = []
    dataset = eval_view(dataset)
    total = math.ceil(len(dataset) / batch_size)
    with tqdm(total=total, desc=desc, disable=not progress, leave=False,
              dynamic_ncols=True) as bar:
        for b in iterate_batches(dataset, range(len(dataset)), batch_size, device=device,
                                 num_workers=num_workers):
            out.append(torch.flatten(fn(b.x), 1).float().cpu())
            bar.update(1)
    return torch.cat(out)


# ---------------------------------------------------------------- the embedders
class Embedder(ABC):
    """Base class: :meth:`embed` handles the cache; subclasses implement :meth:`identity`
    (what, besides the data, determines the embeddings) and :meth:`compute`.

    Args:
        batch_size: samples per forward pass; ``None`` takes the run's ``eval_batch_size``
            inside the engine, else 256. Default ``None``.
        device: torch device; ``None`` takes the run's device inside the engine, else CPU.
            Default ``None``.
        progress: show progress bars; ``None`` follows the run's ``progress`` setting inside
            the engine, else ``True``. Default ``None``.
        cache: read and write the on-disk cache. Default ``True``.
        cache_dir: cache folder; ``None`` uses :func:`cache_dir_default`. Default ``None``.

    After :meth:`embed`, ``info`` holds ``cache_hit`` (1.0/0.0), ``compute_time`` (seconds
    the embeddings took when they were computed, also on a cache hit), ``embed_time`` (this
    call) and the embedder's own numbers (e.g. the warm-up accuracy of a snapshot).
    """

    name = "base"

    def __init__(self, *, batch_size: int | None = None, device: str | None = None,
                 progress: bool | None = None, cache: bool = True,
                 cache_dir: str | Path | None = None) -> None:
        self.batch_size = batch_size
        self.device = device
        self.progress = progress
        self.cache = cache
        self.cache_dir = cache_dir
        self.info: dict[str, float] = {}
        self.cache_file: Path | None = None

    # -- settings resolved against the run
    def _batch_size(self, ctx: TrainContext | None) -> int:
        if self.batch_size is not None:
            return self.batch_size
        return ctx.eval_batch_size if ctx is not None else 256

    def _device(self, ctx: TrainContext | None) -> torch.device:
        if self.device is not None:
            return torch.device(self.device)
        return ctx.device if ctx is not None else torch.device("cpu")

    def _progress(self, ctx: TrainContext | None) -> bool:
        if self.progress is not None:
            return self.progress
        return bool(ctx.progress) if ctx is not None else True

    # -- to implement
    @abstractmethod
    def identity(self, dataset: Any, ctx: TrainContext | None) -> str:
        """A string that, with the data fingerprint, determines the embeddings."""

    @abstractmethod
    def compute(self, dataset: Any, ctx: TrainContext | None) -> torch.Tensor:
        """The ``(N, Z)`` embeddings of ``dataset`` (no cache)."""

    # -- the cached entry point
    def cache_key(self, dataset: Any, ctx: TrainContext | None = None) -> dict[str, str]:
        """The parts of the cache key (all strings)."""
        return {"format": CACHE_FORMAT,
                "dataset": str(getattr(dataset, "name", type(dataset).__name__)),
                "size": str(len(dataset)), "data": data_fingerprint(dataset),
                "embedder": self.name, "identity": self.identity(dataset, ctx)}

    def cache_path(self, key: dict[str, str]) -> Path:
        folder = Path(self.cache_dir).expanduser() if self.cache_dir else cache_dir_default()
        digest = _sha(json.dumps(key, sort_keys=True).encode())[:24]
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", key["dataset"])[:40]
        return folder / f"{safe}-n{key['size']}-{self.name}-{digest}.pt"

    def _read_cache(self, path: Path, key: dict[str, str]) -> dict[str, Any] | None:
        if not path.is_file():
            return None
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated or foreign file: recompute and overwrite
            warnings.warn(f"ignoring unreadable embedding cache {path}: {exc}", stacklevel=3)
            return None
        if not isinstance(saved, dict) or saved.get("key") != key:
            return None
        return saved

    def embed(self, dataset: Any, ctx: TrainContext | None = None) -> torch.Tensor:
        """The ``(N, Z)`` float32 embeddings of ``dataset``, from the cache when possible.

        Args:
            dataset: the training set (in index order).
            ctx: the run's :class:`~thrifty.engine.TrainContext` inside a driver, else
                ``None``.
        """
        t0 = time.perf_counter()
        key = self.cache_key(dataset, ctx) if self.cache else None
        path = self.cache_path(key) if key is not None else None
        self.cache_file = path
        saved = self._read_cache(path, key) if path is not None else None
        if saved is not None:
            z = saved["embeddings"]
            self.info = {**saved.get("info", {}), "cache_hit": 1.0}
        else:
            c0 = time.perf_counter()
            self.info = {}
            z = self.compute(dataset, ctx).detach().float().cpu()
            if z.dim() != 2 or len(z) != len(dataset):
                raise ValueError(f"embedder {self.name!r} returned shape {tuple(z.shape)} for "
                                 f"{len(dataset)} samples; expected (N, Z)")
            self.info.update(compute_time=time.perf_counter() - c0, dim=float(z.shape[1]))
            if path is not None:
                save_checkpoint(path, {"key": key, "embeddings": z,
                                       "info": {k: float(v) for k, v in self.info.items()}})
            self.info["cache_hit"] = 0.0
        self.info["embed_time"] = time.perf_counter() - t0
        return z


class PixelPCAEmbedder(Embedder):
    """Flattened inputs reduced by scikit-learn PCA: the cheap, semantics-free fallback.

    Args:
        components: PCA dimensions Z (capped at the number of samples and pixels).
            Default 64.
        seed: PCA's ``random_state`` (used by the randomized solver). Default 0.
        **kwargs: the :class:`Embedder` options.
    """

    name = "pixels"

    def __init__(self, components: int = 64, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if components < 1:
            raise ValueError(f"components must be at least 1, got {components}")
        self.components = int(components)
        self.seed = int(seed)

    def identity(self, dataset: Any, ctx: TrainContext | None) -> str:
        return f"pca{self.components}-seed{self.seed}"

    def compute(self, dataset: Any, ctx: TrainContext | None) -> torch.Tensor:
        from sklearn.decomposition import PCA

        if isinstance(dataset, TensorData):
            flat = dataset.x.reshape(len(dataset), -1).float()
        else:
            flat = embed_dataset(lambda x: x, dataset, batch_size=self._batch_size(ctx),
                                 progress=self._progress(ctx), desc="reading pixels")
        k = min(self.components, flat.shape[0], flat.shape[1])
        pca = PCA(n_components=k, random_state=self.seed)
        return torch.from_numpy(pca.fit_transform(flat.numpy())).float()


class TorchvisionEmbedder(Embedder):
    """A torchvision architecture with user-supplied weights; penultimate features.

    The last ``nn.Linear`` (``fc`` of a ResNet) is replaced by ``nn.Identity``, so
    ResNet-18 gives 512-d features, as in the IDS paper. Inputs are used as the dataset
    delivers them (already normalised with the dataset's own statistics, not ImageNet's);
    1-channel images are repeated to 3 channels; images are resized (bilinear) to
    ``size x size``. The resize dominates the cost: ResNet-18 at 224x224 is about
    1.8 GFLOPs per image, roughly 50x the cost at 32x32.

    Args:
        arch: a torchvision model name (``torchvision.models.list_models()``). Default
            ``"resnet18"``.
        weights: path of a state dict for ``arch`` (``torch.save(model.state_dict(), path)``
            or a checkpoint with a ``model``/``state_dict`` entry). Required: nothing is
            downloaded.
        size: side of the square input after resizing; ``None`` keeps the native size.
            Default 224 (the resolution ImageNet weights were trained at).
        **kwargs: the :class:`Embedder` options.
    """

    name = "torchvision"

    def __init__(self, arch: str = "resnet18", weights: str | Path | None = None,
                 size: int | None = 224, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if weights is None or not Path(weights).expanduser().is_file():
            where = "no weights file was given" if weights is None else \
                f"weights file not found: {weights}"
            raise FileNotFoundError(
                f"the torchvision embedder needs pretrained weights and {where}. Save them once "
                f"with torch.save(torchvision.models.{arch}(weights=...).state_dict(), PATH) "
                "and pass weights=PATH (--method-arg weights=PATH); nothing is downloaded. "
                "Download-free alternatives: embedder=snapshot (a short warm-up of the run's "
                "own model, the default) or embedder=pixels (PCA of the pixels)")
        from torchvision import models as tvm

        if arch not in tvm.list_models():
            raise ValueError(f"unknown torchvision architecture {arch!r}")
        if size is not None and size < 1:
            raise ValueError(f"size must be positive or None, got {size}")
        self.arch = arch
        self.weights = Path(weights).expanduser()
        self.size = size

    def identity(self, dataset: Any, ctx: TrainContext | None) -> str:
        return f"{self.arch}-size{self.size}-weights{file_sha256(self.weights)}"

    def build_model(self) -> nn.Module:
        """The architecture with the weights loaded and the classifier removed."""
        from torchvision import models as tvm

        model = strip_classifier(tvm.get_model(self.arch, weights=None))
        fitting = fitting_tensors(model, read_state_dict(self.weights))
        missing = sorted(set(model.state_dict()) - set(fitting))
        if missing:
            raise ValueError(f"{self.weights} does not fit torchvision {self.arch}: "
                             f"{len(missing)} tensor(s) missing or of another shape, e.g. "
                             f"{missing[:3]}. Give weights saved from the same architecture "
                             "(or set arch=...)")
        model.load_state_dict(fitting)
        return model.eval()

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"the torchvision embedder needs images (B, 1 or 3, H, W), got "
                             f"{tuple(x.shape)}; use embedder=pixels or snapshot instead")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            x = torch.nn.functional.interpolate(x.float(), size=(self.size, self.size),
                                                mode="bilinear", align_corners=False)
        return x

    def compute(self, dataset: Any, ctx: TrainContext | None) -> torch.Tensor:
        device = self._device(ctx)
        model = self.build_model().to(device)
        return embed_dataset(lambda x: model(self._prepare(x)), dataset,
                             batch_size=self._batch_size(ctx), device=device,
                             progress=self._progress(ctx), desc=f"embedding ({self.arch})")


# Config fields that do not change the weights a warm-up produces.
_NOT_RECIPE = {"out_dir", "run_name", "progress", "method", "method_args", "checkpoint_every",
               "train_stats_every", "num_workers", "threads", "workload", "train_limit",
               "test_limit", "eval_batch_size", "device", "epochs", "download", "data_root"}


class SnapshotEmbedder(Embedder):
    """Download-free default: a warm-up snapshot of the run's own model.

    A fresh copy of the run's model (same architecture and initial weights) is trained for
    ``warmup_epochs`` epochs by the engine's :func:`~thrifty.engine.warmup.warm_up` (inside a
    run: ``ctx.warmup``) with the run's config (``epochs=warmup_epochs``, no methods, no
    periodic checkpoints, output in a temporary folder that is deleted afterwards) on the
    run's training data, evaluated on at most 2,000 test samples (the warm-up accuracy is
    informational only); its penultimate features (``model.penultimate(x)``, else the
    input of the last ``nn.Linear``) are the embeddings. The global RNG state is restored
    afterwards, so the run itself is the same whether the snapshot came from the cache or
    was trained.
    The IDS paper's Table A3 found a snapshot after 15 epochs (of 200) "negligibly" better
    than ImageNet ResNet-18, SwAV and DINOv2; on short runs a few epochs suffice.

    Outside the engine give ``config`` (a :class:`~thrifty.engine.RunConfig`) and optionally
    ``model_factory`` (a zero-argument function returning a fresh model; default: the
    config's model) and ``test_data`` (default: the data being embedded).

    Args:
        warmup_epochs: warm-up training epochs. Default 3.
        config: the run config to train with outside the engine. Default ``None``.
        model_factory: builds the model outside the engine. Default ``None``.
        test_data: evaluation data of the warm-up outside the engine. Default ``None``.
        **kwargs: the :class:`Embedder` options.

    ``info`` gains ``warmup_accuracy`` and ``warmup_train_time``.
    """

    name = "snapshot"

    def __init__(self, warmup_epochs: int = 3, *, config: Any = None,
                 model_factory: Callable[[], nn.Module] | None = None, test_data: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(warmup_epochs, bool) or int(warmup_epochs) != warmup_epochs \
                or warmup_epochs < 1:
            raise ValueError(f"warmup_epochs must be a positive integer, got {warmup_epochs!r}")
        self.warmup_epochs = int(warmup_epochs)
        self.config = config
        self.model_factory = model_factory
        self.test_data = test_data

    def _device(self, ctx: TrainContext | None) -> torch.device:
        if self.device is None and ctx is None and self.config is not None:
            return resolve_device(self.config.device)
        return super()._device(ctx)

    def _initial_model(self, dataset: Any, ctx: TrainContext | None) -> nn.Module:
        """The model before training: the run's model inside the engine (``fit`` of a
        reducer runs before the first step), else a new one built under the config's seed
        (so that building it twice gives the same weights)."""
        if ctx is not None and ctx.model is not None:
            return ctx.model
        if self.config is None:
            raise ValueError("the snapshot embedder trains the run's model for a few epochs; "
                             "outside a Trainer give config=RunConfig(...) "
                             "(SnapshotEmbedder(config=...) or build_registry(..., config=...), "
                             "optionally model_factory=...), or use embedder=pixels")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            if self.model_factory is not None:
                return self.model_factory()
            from thrifty.engine.assembly import infer_classes, new_model

            num_classes = infer_classes(dataset, dataset_labels(dataset))[0]
            return new_model(self.config, eval_view(dataset), num_classes,
                             weights=self.config.weights)

    def identity(self, dataset: Any, ctx: TrainContext | None) -> str:
        config = ctx.config if ctx is not None and ctx.config is not None else self.config
        model = self._initial_model(dataset, ctx)
        recipe = {k: v for k, v in dataclasses.asdict(config).items() if k not in _NOT_RECIPE}
        recipe.update(warmup_epochs=self.warmup_epochs, model_class=type(model).__name__,
                      device_type=self._device(ctx).type)
        return _sha(json.dumps(recipe, sort_keys=True, default=str).encode(),
                    state_dict_hash(model.state_dict()).encode())

    def compute(self, dataset: Any, ctx: TrainContext | None) -> torch.Tensor:
        model = copy.deepcopy(self._initial_model(dataset, ctx))
        device = self._device(ctx)
        try:
            if ctx is not None and ctx.config is not None:  # the engine trains it
                warm, result = ctx.warmup(model, self.warmup_epochs)
                config = ctx.config
            else:
                config = self.config
                test = self.test_data if self.test_data is not None else eval_view(dataset)
                warm, result = warm_up(config, model, dataset, test, self.warmup_epochs,
                                       device=device, progress=self._progress(ctx))
        except TrainingInterrupted as exc:
            raise KeyboardInterrupt("interrupted during the snapshot warm-up (preparation "
                                    "of the offline reduction); nothing to resume, "
                                    "start the run again") from exc
        self.info.update(warmup_accuracy=float(result["final"]["test_accuracy"]),
                         warmup_train_time=float(result["final"]["train_time"]))
        warm = warm.eval()
        return embed_dataset(penultimate_fn(warm), dataset, batch_size=self._batch_size(ctx),
                             device=device, progress=self._progress(ctx),
                             desc="embedding (snapshot)", num_workers=config.num_workers)


def make_embedder(name: str = "snapshot", *, weights: str | Path | None = None,
                  arch: str = "resnet18", size: int | None = 224, warmup_epochs: int = 3,
                  components: int = 64, **kwargs: Any) -> Embedder:
    """Build an embedder by name: ``snapshot`` (default), ``pixels`` or ``torchvision``.

    Args:
        name: the embedder. Default ``"snapshot"``.
        weights: weights file of the torchvision embedder (refused for the others, so that
            a forgotten ``embedder=torchvision`` is not silently ignored). Default ``None``.
        arch: torchvision architecture. Default ``"resnet18"``.
        size: torchvision input size. Default 224.
        warmup_epochs: snapshot warm-up epochs. Default 3.
        components: PCA dimensions of ``pixels``. Default 64.
        **kwargs: the :class:`Embedder` options (batch_size, device, progress, cache,
            cache_dir) and, for ``snapshot``, config/model_factory/test_data.
    """
    if name == "torchvision":
        return TorchvisionEmbedder(arch, weights, size, **kwargs)
    if weights is not None:
        raise ValueError(f"weights={weights} is only used by the torchvision embedder; add "
                         "embedder=torchvision (or drop weights)")
    if name == "snapshot":
        return SnapshotEmbedder(warmup_epochs, **kwargs)
    if name == "pixels":
        for k in ("config", "model_factory", "test_data"):
            kwargs.pop(k, None)
        return PixelPCAEmbedder(components, **kwargs)
    raise ValueError(f"unknown embedder {name!r}; choose one of {', '.join(EMBEDDERS)}")

