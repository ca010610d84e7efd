"""In-memory datasets held as tensors, with batched augmentation and index-carrying batches.

Small datasets (Fashion-MNIST, CIFAR, digits, synthetic) live in memory as one float tensor,
so a batch is a single gather ``x[idx]`` instead of a per-sample Python loop: on a 2-core CPU
the data path is then never the bottleneck. Every batch carries the dataset indices of its
samples, so any method can keep per-sample state (see :class:`thrifty.engine.SampleRecord`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Subset

BatchTransform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class Batch(NamedTuple):
    """One mini-batch: inputs, integer targets and the dataset index of every sample."""

    x: torch.Tensor
    y: torch.Tensor
    idx: torch.Tensor


@dataclass
class TensorData:
    """A dataset held in memory.

    Args:
        x: inputs, already normalised, shape ``(N, ...)``.
        y: integer class labels, shape ``(N,)``.
        num_classes: number of classes.
        name: dataset name, recorded with results.
        augment: optional batched transform ``f(x_batch, generator) -> x_batch`` applied to
            training batches only (see :func:`random_crop_flip`). Default ``None``.
        classes: optional class names.
    """

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    name: str = "tensors"
    augment: BatchTransform | None = None
    classes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} samples but y has {len(self.y)}")
        self.y = integer_labels(self.y, f"TensorData {self.name!r}")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def labels(self) -> torch.Tensor:
        return self.y

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def subset(self, n: int | None, seed: int = 0) -> TensorData:
        """Return the first ``n`` samples of a fixed seeded permutation (all when ``None``)."""
        keep = seeded_keep(len(self), n, seed)
        if keep is None:
            return self
        return TensorData(self.x[keep], self.y[keep], self.num_classes, self.name,
                          self.augment, self.classes)


def random_crop_flip(padding: int = 4, flip: bool = True) -> BatchTransform:
    """Batched per-sample random crop (zero padding ``padding``) and horizontal flip.

    Every sample of the batch gets its own crop offset and flip decision, drawn from the
    given generator so that runs are reproducible and resumable.

    Args:
        padding: pixels of zero padding on each side before cropping back. Default 4.
        flip: flip each sample left-right with probability 0.5. Default ``True``.
    """

    def transform(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        if padding > 0:
            padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
            ox = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
            oy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
            rows = (oy[:, None] + torch.arange(h)[None, :])  # (n, h)
            cols = (ox[:, None] + torch.arange(w)[None, :])  # (n, w)
            b = torch.arange(n)[:, None, None]
            x = padded.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]
            x = x.permute(0, 3, 1, 2).contiguous()
        if flip:
            mask = torch.rand(n, generator=generator) < 0.5
            x = torch.where(mask[:, None, None, None], x.flip(-1), x)
        return x

    return transform


class IndexedDataset(Dataset):
    """Wrap any map-style dataset so that each item carries its dataset index: ``(x, y)``
    becomes ``(x, y, index)``; a dict sample gains ``index_key``. Other attributes
    (``targets``, ``classes``, ...) are those of the wrapped dataset.

    Args:
        dataset: the dataset.
        index_key: the key added to dict samples. Default ``"index"``.
    """

    def __init__(self, dataset: Dataset, index_key: str = "index") -> None:
        self.dataset = dataset
        self.index_key = index_key

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int):
        sample = self.dataset[index]
        if type(sample) is tuple and len(sample) == 2:  # the common case, without ABC checks
            return sample[0], sample[1], index
        return self._indexed(sample, index)

    def __getitems__(self, indices: list[int]) -> list[Any]:
        """A batch's samples in one call (``DataLoader`` fetches through it)."""
        ds = self.dataset
        inner = getattr(ds, "__getitems__", None)
        samples = inner(indices) if inner is not None else [ds[i] for i in indices]
        return [(s[0], s[1], i) if type(s) is tuple and len(s) == 2 else self._indexed(s, i)
                for s, i in zip(samples, indices)]

    def _indexed(self, sample: Any, index: int) -> Any:
        if isinstance(sample, Mapping):
            return {**sample, self.index_key: index}
        if isinstance(sample, Sequence) and len(sample) == 2:
            return sample[0], sample[1], index
        raise ValueError(f"sample {index} of {type(self.dataset).__name__} is a "
                         f"{type(sample).__name__}; thrifty needs (input, target) pairs or "
                         "dicts")

    def __getattr__(self, name: str):
        if name in ("dataset", "index_key"):  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)


def take_rows(value: Any, positions: torch.Tensor) -> Any:
    """Rows ``positions`` (a long tensor) of a tensor, of every tensor of a (nested) dict,
    or of a list: how a sub-batch is taken whatever the batch holds."""
    if isinstance(value, torch.Tensor):
        return value[positions.to(value.device)]
    if isinstance(value, Mapping):
        return {k: take_rows(v, positions) for k, v in value.items()}
    if isinstance(value, list):
        return [value[i] for i in positions.tolist()]
    raise TypeError(f"cannot take samples from a {type(value).__name__} in a batch; batches "
                    "hold tensors, dicts of tensors or lists")


def to_device(value: Any, device: torch.device | str) -> Any:
    """``value`` with every tensor inside (dicts, lists, tuples) moved to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, Mapping):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    return value


def slice_rows(value: Any, start: int, stop: int | None) -> Any:
    """Rows ``start:stop`` of a tensor (a view), of every tensor of a dict, or of a list."""
    if isinstance(value, Mapping):
        return {k: slice_rows(v, start, stop) for k, v in value.items()}
    return value[start:stop]


def cat_rows(values: list[Any]) -> Any:
    """Concatenate batch parts along the samples (tensors, dicts of tensors, lists)."""
    if len(values) == 1:
        return values[0]
    if isinstance(values[0], torch.Tensor):
        return torch.cat(values)
    if isinstance(values[0], Mapping):
        return {k: cat_rows([v[k] for v in values]) for k in values[0]}
    return [item for v in values for item in v]


def index_batches(indices: Iterable[int], batch_size: int, merge_tail: bool = False
                  ) -> list[list[int]]:
    """``indices`` cut into batches of ``batch_size`` (the last may be short); with
    ``merge_tail`` a short last batch joins the one before it."""
    batches = list(BatchSampler(indices, batch_size, drop_last=False))  # type: ignore[arg-type]
    if merge_tail and len(batches) > 1 and len(batches[-1]) < batch_size:
        batches[-2:] = [batches[-2] + batches[-1]]
    return batches


def iterate_batches(
    data: TensorData | Dataset,
    indices: Iterable[int],
    batch_size: int,
    *,
    train: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    num_workers: int = 0,
    merge_tail: bool = False,
) -> Iterator[Batch]:
    """Yield :class:`Batch` objects over ``indices`` in the order given.

    ``indices`` is usually a :class:`torch.utils.data.Sampler`; batches are cut by
    :class:`torch.utils.data.BatchSampler` (last batch may be short). For a
    :class:`TensorData` a batch is one gather plus the batched augmentation (training only);
    any other map-style dataset goes through a ``DataLoader`` with an index-returning wrapper
    (its transform runs as the dataset defines it; see :func:`eval_view` for a deterministic
    view).

    Args:
        data: a :class:`TensorData` or any map-style dataset of ``(x, y)``.
        indices: dataset indices in the order to visit.
        batch_size: samples per batch (the last batch may be short).
        train: apply a :class:`TensorData`'s batched augmentation. Default ``False``.
        generator: random source of that augmentation, and of the ``DataLoader``'s worker
            base seed for other datasets; ``None`` draws the augmentation from the global RNG
            and gives the ``DataLoader`` a private generator (fixed default seed), so the
            global RNG is never consumed by a pass over a non-tensor dataset. Default
            ``None``.
        device: where batches go. Default ``"cpu"``.
        num_workers: ``DataLoader`` workers (non-tensor datasets only). Default 0.
        merge_tail: a short last batch joins the one before it (decided before anything
            is loaded, so the random streams advance as the batches are trained). Default
            ``False``.
    """
    batches = index_batches(indices, batch_size, merge_tail)
    device = torch.device(device)
    non_blocking = device.type == "cuda"
    if isinstance(data, TensorData):
        for chunk in batches:
            idx = torch.as_tensor(chunk, dtype=torch.long)
            x = data.x[idx]
            if train and data.augment is not None:
                x = data.augment(x, generator or torch.default_generator)
            yield Batch(x.to(device, non_blocking=non_blocking),
                        data.y[idx].to(device, non_blocking=non_blocking),
                        idx)
        return
    # The DataLoader draws its workers' base seed from `generator`; without one it would draw
    # from the global RNG, so that a pass (an evaluation, an embedding) changed the run's
    # random stream. A private generator (fixed default seed) leaves the global RNG alone.
    loader = DataLoader(IndexedDataset(data), batch_sampler=batches, num_workers=num_workers,
                        pin_memory=non_blocking,
                        generator=torch.Generator() if generator is None else generator)
    for x, y, idx in loader:
        yield Batch(x.to(device, non_blocking=non_blocking),
                    torch.as_tensor(y).long().to(device, non_blocking=non_blocking),
                    torch.as_tensor(idx).long())


def eval_view(data: TensorData | Dataset) -> TensorData | Dataset:
    """A deterministic (evaluation) view of a training dataset, for passes that must see
    every sample the same way each time: embeddings, fingerprints, scoring.

    - :class:`TensorData`: itself (its augmentation only runs in training batches).
    - A dataset with an ``eval_transform`` attribute (the training ``ImageFolder`` of
      :func:`~thrifty.data.datasets.load_image_folder`: resize + centre crop + normalise): a
      shallow copy whose ``transform`` is that deterministic transform. The original keeps
      its random training transform; the sample list is shared, not copied.
    - A :class:`torch.utils.data.Subset`: a shallow copy over the eval view of its dataset.
    - Any other dataset: itself (its transform is assumed deterministic).

    Args:
        data: the dataset.
    """
    if isinstance(data, TensorData):
        return data
    if isinstance(data, Subset):
        inner = eval_view(data.dataset)
        if inner is data.dataset:
            return data
        view = copy.copy(data)
        view.dataset = inner
        return view
    transform = getattr(data, "eval_transform", None)
    if transform is None or getattr(data, "transform", None) is transform:
        return data
    view = copy.copy(data)
    view.transform = transform
    if hasattr(view, "transforms"):  # torchvision VisionDataset keeps both
        from torchvision.datasets.vision import StandardTransform

        view.transforms = StandardTransform(transform, getattr(view, "target_transform", None))
    return view


def limited(data: TensorData | Dataset, n: int | None, seed: int = 0) -> TensorData | Dataset:
    """At most ``n`` samples of ``data``: the first ``n`` of a fixed seeded permutation, in
    dataset order (all when ``n`` is ``None`` or not below ``len(data)``).

    A :class:`TensorData` gives :meth:`TensorData.subset`; any other map-style dataset a
    :class:`torch.utils.data.Subset` that keeps its ``targets`` (the chosen ones) and
    ``classes``, so it is labelled like the dataset it comes from.
    """
    if isinstance(data, TensorData):
        return data.subset(n, seed=seed)
    keep = seeded_keep(len(data), n, seed)  # type: ignore[arg-type]  # map-style: has len
    if keep is None:
        return data
    part = Subset(data, keep.tolist())
    part.targets = dataset_labels(data)[keep].tolist()  # type: ignore[attr-defined]
    for name in ("classes", "num_classes"):
        if getattr(data, name, None) is not None:
            setattr(part, name, getattr(data, name))
    return part


def seeded_keep(total: int, n: int | None, seed: int) -> torch.Tensor | None:
    """The sorted indices of the first ``n`` of a seeded permutation of ``range(total)``;
    ``None`` when ``n`` is ``None`` or keeps everything.

    Raises:
        ValueError: ``n <= 0``.
    """
    if n is None or n >= total:
        return None
    if n <= 0:
        raise ValueError(f"subset size must be positive, got {n}")
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(total, generator=g)[:n].sort().values


def dataset_labels(data: TensorData | Dataset) -> torch.Tensor:
    """Integer labels of every sample, without loading the inputs where possible."""
    if isinstance(data, TensorData):
        return data.y
    targets = getattr(data, "targets", None)
    if targets is None:
        raise ValueError(
            f"{type(data).__name__} exposes no `targets`: give it a `targets` attribute "
            "(a list of integer labels) so per-class methods can see the labels")
    return integer_labels(torch.as_tensor(targets), f"the targets of {type(data).__name__}")


def integer_labels(labels: torch.Tensor, what: str) -> torch.Tensor:
    """``labels`` as a long tensor; float labels are refused (truncating 2.7 to 2 would
    train on another class), naming ``what`` and the first float value."""
    if labels.is_floating_point() or labels.is_complex():
        frac = labels != labels.round() if labels.is_floating_point() else labels.imag != 0
        where = f" (index {int(frac.nonzero()[0, 0])}: {labels[frac][0].item()})" \
            if bool(frac.any()) else ""
        raise ValueError(f"{what} are {labels.dtype} values{where}: class labels must be "
                         "integers 0..C-1; convert them with .long() where they are whole "
                         "numbers")
    if labels.dtype == torch.bool:
        raise ValueError(f"{what} are booleans: class labels must be integers 0..C-1")
    return labels.long()


def noisy_labels(labels: torch.Tensor, share: float, num_classes: int, seed: int = 0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace a seeded share of the labels by another class (uniform among the others).

    Args:
        labels: the true labels (long tensor).
        share: the share of samples relabelled, in [0, 1): ``round(share * n)`` of them.
        num_classes: the number of classes (at least 2).
        seed: the draw's seed. Default 0.

    Returns:
        ``(new_labels, flipped)``: the labels with noise and the sorted indices changed.
    """
    if not 0 <= share < 1:
        raise ValueError(f"label_noise is the share of training labels replaced, in [0, 1), "
                         f"got {share}")
    if num_classes < 2:
        raise ValueError("label noise needs at least two classes")
    g = torch.Generator().manual_seed(seed * 7919 + 17)
    n = round(share * len(labels))
    flipped = torch.randperm(len(labels), generator=g)[:n].sort().values
    shift = torch.randint(1, num_classes, (n,), generator=g)  # never the true class
    new = labels.clone()
    new[flipped] = (labels[flipped] + shift) % num_classes
    return new, flipped


def with_label_noise(data: Any, share: float, num_classes: int, seed: int = 0
                     ) -> tuple[Any, torch.Tensor]:
    """``data`` with :func:`noisy_labels` applied to its training labels; returns the new
    dataset (the original is left as it is) and the relabelled indices. In-memory
    :class:`TensorData` and image folders (``samples`` of ``(path, class)``) are supported."""
    if isinstance(data, TensorData):
        y, flipped = noisy_labels(data.y, share, num_classes, seed)
        return TensorData(data.x, y, data.num_classes, data.name, data.augment,
                          data.classes), flipped
    if isinstance(getattr(data, "samples", None), list) and hasattr(data, "targets"):
        y, flipped = noisy_labels(torch.as_tensor(data.targets), share, num_classes, seed)
        noisy = copy.copy(data)
        noisy.targets = y.tolist()
        noisy.samples = [(path, int(t)) for (path, _), t in zip(data.samples, y.tolist())]
        if hasattr(noisy, "imgs"):
            noisy.imgs = noisy.samples
        return noisy, flipped
    raise ValueError(f"label_noise works on in-memory datasets and image folders, not on "
                     f"{type(data).__name__}: relabel your dataset yourself")
