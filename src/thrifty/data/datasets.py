"""Loaders for the datasets thrifty knows by name.

Every loader returns ``(train, test)``. Small datasets come back as in-memory
:class:`~thrifty.data.tensor.TensorData`; an ImageNet-style folder comes back as torchvision
``ImageFolder`` datasets. A missing dataset raises :class:`DatasetNotFoundError`, whose
message lists every place that was searched and the command or flag that fixes it.
"""

from __future__ import annotations

import gzip
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thrifty.data.tasks import load_sequences, load_tabular
from thrifty.data.tensor import TensorData, random_crop_flip

FMNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530
FMNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                  "Sneaker", "Bag", "Ankle boot"]
CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class DatasetNotFoundError(FileNotFoundError):
    """A dataset could not be found; the message says where we looked and how to fix it."""


def _data_env_root() -> Path | None:
    env = os.environ.get("THRIFTY_DATA")
    return Path(env) if env else None


# ---------------------------------------------------------------- Fashion-MNIST
_FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped), the format of (Fashion-)MNIST."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def fashion_mnist_candidates(root: str | Path | None) -> list[Path]:
    """Folders searched for the Fashion-MNIST IDX files, in order. A ``root`` given is the
    only place searched: a run that names its data folder never reads another copy."""
    if root:
        base = Path(root)
        return [base, base / "fashion-mnist", base / "FashionMNIST" / "raw"]
    folders: list[Path] = []
    env = _data_env_root()
    if env is not None:
        folders += [env, env / "fashion-mnist", env / "FashionMNIST" / "raw"]
    folders.append(FMNIST_SYSTEM_DIR)
    return folders


def load_fashion_mnist(root: str | Path | None = None, download: bool = False,
                       augment: bool = False) -> tuple[TensorData, TensorData]:
    """Fashion-MNIST (60k train / 10k test, 1x28x28), normalised, in memory.

    Looks in ``root``, ``$THRIFTY_DATA``, then ``/usr/share/datasets/fashion-mnist`` (the
    Debian package ``dataset-fashion-mnist``). With ``download=True`` and no local copy,
    torchvision downloads it into ``root`` (default ``./.data``).

    Args:
        root: folder holding the four ``*-ubyte[.gz]`` files. Default ``None``.
        download: allow a download through torchvision. Default ``False``.
        augment: random crop (padding 2) + flip on training batches. Default ``False``.
    """
    for folder in fashion_mnist_candidates(root):
        files = {split: [_find_idx(folder, s) for s in stems]
                 for split, stems in _FMNIST_FILES.items()}
        if all(p is not None for ps in files.values() for p in ps):
            break
    else:
        if not download:
            looked = "\n  ".join(str(p) for p in fashion_mnist_candidates(root))
            raise DatasetNotFoundError(
                "Fashion-MNIST not found. Looked for train-images-idx3-ubyte[.gz] in:\n  "
                f"{looked}\n"
                + (f"(a --data-root given is the only place searched; without it thrifty "
                   f"also looks in $THRIFTY_DATA and {FMNIST_SYSTEM_DIR})\n" if root else "")
                + "Fix: `sudo apt-get install -y dataset-fashion-mnist` (Debian), "
                "or pass --data-root to a folder with the four *-ubyte.gz files, "
                "or add --download where the internet is reachable.")
        from torchvision.datasets import FashionMNIST

        dl_root = Path(root) if root else Path(".data")
        FashionMNIST(str(dl_root), train=True, download=True)
        FashionMNIST(str(dl_root), train=False, download=True)
        return load_fashion_mnist(dl_root, download=False, augment=augment)

    out = []
    for split in ("train", "test"):
        img_path, lbl_path = files[split]
        images = torch.from_numpy(_read_idx(img_path).copy()).float().div_(255.0)
        x = images.unsqueeze(1).sub_(FMNIST_MEAN).div_(FMNIST_STD)
        y = torch.from_numpy(_read_idx(lbl_path).astype(np.int64))
        aug = random_crop_flip(padding=2) if (augment and split == "train") else None
        out.append(TensorData(x, y, 10, "fashion-mnist", aug, list(FMNIST_CLASSES)))
    return out[0], out[1]


# ---------------------------------------------------------------- CIFAR
_CIFAR_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                b"labels", "batches.meta", b"label_names"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels", "meta",
                 b"fine_label_names"),
}


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles what a CIFAR batch holds (dicts, lists, strings, bytes, numbers and numpy
    arrays) and nothing else: an unpickled object of any other class could run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"),
               ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"holds a {module}.{name} object; a CIFAR batch holds only arrays, lists, "
                "dicts, strings and bytes, so it is refused (unpickling it could run code)")
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> Any:
    """One CIFAR batch or meta file, unpickled without running code (see
    :class:`_CifarUnpickler`); a refused or broken file is named in the error."""
    try:
        with open(path, "rb") as f:
            return _CifarUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a CIFAR batch: {exc}") from None


def _read_cifar_files(folder: Path, names: list[str], label_key: bytes):
    xs, ys = [], []
    for name in names:
        entry = read_cifar_batch(folder / name)
        if not isinstance(entry, dict) or b"data" not in entry or label_key not in entry:
            raise ValueError(f"{folder / name}: not a CIFAR batch (no data and "
                             f"{label_key.decode()} entries)")
        xs.append(np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(entry[label_key], dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def load_cifar(name: str = "cifar10", root: str | Path | None = None, download: bool = False,
               augment: bool = True) -> tuple[TensorData, TensorData]:
    """CIFAR-10 or CIFAR-100 from torchvision's on-disk format, normalised, in memory.

    Expects ``root/cifar-10-batches-py`` (or ``root/cifar-100-python``), the layout that
    ``torchvision.datasets.CIFAR10(root, download=True)`` creates.

    Args:
        name: ``"cifar10"`` or ``"cifar100"``. Default ``"cifar10"``.
        root: parent folder of the extracted archive; ``$THRIFTY_DATA`` or ``./.data`` when
            ``None``.
        download: download through torchvision when missing. Default ``False``.
        augment: random crop 32 (padding 4) + horizontal flip on training batches.
            Default ``True``.
    """
    if name not in _CIFAR_LAYOUT:
        raise ValueError(f"unknown CIFAR variant {name!r}; use 'cifar10' or 'cifar100'")
    sub, train_files, test_files, label_key, meta_file, names_key = _CIFAR_LAYOUT[name]
    base = Path(root) if root else (_data_env_root() or Path(".data"))
    folder = base / sub
    if not (folder / train_files[0]).is_file():
        if not download:
            raise DatasetNotFoundError(
                f"{name} not found: expected {folder / train_files[0]}.\nFix: pass "
                f"--data-root to the folder that holds {sub}/, or add --download where the "
                "internet is reachable.")
        from torchvision import datasets

        cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
        cls(str(base), train=True, download=True)
        cls(str(base), train=False, download=True)
    mean, std = CIFAR_STATS[name]
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    classes: list[str] = []
    if (folder / meta_file).is_file():
        classes = [c.decode() for c in read_cifar_batch(folder / meta_file)[names_key]]
    num_classes = 10 if name == "cifar10" else 100
    out = []
    for split, files in (("train", train_files), ("test", test_files)):
        x_np, y_np = _read_cifar_files(folder, files, label_key)
        x = torch.from_numpy(x_np).float().div_(255.0).sub_(m).div_(s)
        aug = random_crop_flip(padding=4) if (augment and split == "train") else None
        out.append(TensorData(x, torch.from_numpy(y_np), num_classes, name, aug, classes))
    return out[0], out[1]


# ---------------------------------------------------------------- image folders
def load_image_folder(root: str | Path, image_size: int = 224, augment: bool = True):
    """An ImageNet-style folder: ``root/train/<class>/*.jpg`` and ``root/val/<class>/*.jpg``.

    Returns torchvision ``ImageFolder`` datasets (read from disk by a DataLoader). The
    training set also carries ``eval_transform`` (resize + centre crop + normalise, the
    validation transform): :func:`~thrifty.data.tensor.eval_view` uses it for passes that
    must be deterministic (embedding, fingerprinting) while training keeps its random
    transform.

    Args:
        root: folder with ``train/`` and ``val/`` subfolders.
        image_size: side of the square crop fed to the model. Default 224.
        augment: RandomResizedCrop + flip for training (else resize + centre crop).
            Default ``True``.
    """
    from torchvision import datasets, transforms

    root = Path(root)
    missing = [str(root / s) for s in ("train", "val") if not (root / s).is_dir()]
    if missing:
        raise DatasetNotFoundError(
            f"image folder dataset not found: missing {', '.join(missing)}.\nFix: pass "
            "--data-root to a folder holding train/<class>/*.jpg and val/<class>/*.jpg.")
    norm = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    resize = int(round(image_size / 0.875))
    train_tf = transforms.Compose(
        [transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip(),
         transforms.ToTensor(), norm] if augment else
        [transforms.Resize(resize), transforms.CenterCrop(image_size), transforms.ToTensor(),
         norm])
    test_tf = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(image_size),
                                  transforms.ToTensor(), norm])
    train = datasets.ImageFolder(str(root / "train"), train_tf)
    train.eval_transform = test_tf  # the deterministic view (see thrifty.data.tensor.eval_view)
    val = datasets.ImageFolder(str(root / "val"), test_tf)
    if val.classes != train.classes:
        only_train = sorted(set(train.classes) - set(val.classes))
        only_val = sorted(set(val.classes) - set(train.classes))
        raise ValueError(
            f"{root}: the class folders of train/ and val/ differ (only in train/: "
            f"{only_train or 'none'}; only in val/: {only_val or 'none'}), so the labels would "
            "mean different classes: give both the same class folders")
    return train, val


# ---------------------------------------------------------------- small and synthetic
def load_digits(test_fraction: float = 0.25, seed: int = 0) -> tuple[TensorData, TensorData]:
    """scikit-learn's 8x8 digits (1,797 samples), split with a seeded stratified split."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    x = bunch.images.astype(np.float32) / 16.0
    x = (x - 0.3) / 0.4
    x_tr, x_te, y_tr, y_te = train_test_split(x, bunch.target, test_size=test_fraction,
                                              random_state=seed, stratify=bunch.target)
    mk = lambda a, b: TensorData(torch.from_numpy(a).unsqueeze(1), torch.from_numpy(b), 10,  # noqa: E731
                                 "digits")
    return mk(x_tr, y_tr), mk(x_te, y_te)


def load_synthetic(n_train: int = 512, n_test: int = 256, num_classes: int = 4,
                   shape: tuple[int, ...] = (1, 8, 8), noise: float = 1.0,
                   seed: int = 0) -> tuple[TensorData, TensorData]:
    """Gaussian class clusters of any input shape: tiny, fast, learnable; for tests."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, *shape, generator=g)

    def make(n: int) -> TensorData:
        y = torch.arange(n) % num_classes
        y = y[torch.randperm(n, generator=g)]
        x = centres[y] + noise * torch.randn(n, *shape, generator=g)
        return TensorData(x, y, num_classes, "synthetic")

    return make(n_train), make(n_test)


DATASETS: dict[str, Callable[..., tuple]] = {
    "fashion-mnist": load_fashion_mnist,
    "cifar10": lambda **kw: load_cifar("cifar10", **kw),
    "cifar100": lambda **kw: load_cifar("cifar100", **kw),
    "imagefolder": load_image_folder,
    "digits": load_digits,
    "synthetic": load_synthetic,
    "tabular": load_tabular,
    "sequences": load_sequences,
}
ALIASES = {"fmnist": "fashion-mnist", "fashion_mnist": "fashion-mnist", "cifar-10": "cifar10",
           "cifar-100": "cifar100", "imagenet": "imagefolder"}


def load_dataset(name: str, root: str | Path | None = None, download: bool = False,
                 augment: bool | None = None, seed: int = 0):
    """Load a dataset by name; returns ``(train, test)``.

    Args:
        name: one of ``fashion-mnist`` (``fmnist``), ``cifar10``, ``cifar100``,
            ``imagefolder`` (``imagenet``), ``digits``, ``synthetic``, ``tabular``,
            ``sequences`` (the last two generated: :mod:`thrifty.data.tasks`).
        root: data folder (required for ``imagefolder``). Default ``None``.
        download: allow torchvision downloads where the internet exists. Default ``False``.
        augment: training augmentation; ``None`` uses the dataset's default (on for CIFAR
            and image folders, off otherwise).
        seed: seed for the split of ``digits`` and the draw of ``synthetic``. Default 0.
    """
    key = ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    if key == "fashion-mnist":
        return load_fashion_mnist(root, download, bool(augment))
    if key in ("cifar10", "cifar100"):
        return load_cifar(key, root, download, True if augment is None else augment)
    if key == "imagefolder":
        if root is None:
            raise DatasetNotFoundError("the imagefolder dataset needs --data-root pointing at "
                                       "a folder with train/ and val/ subfolders")
        return load_image_folder(root, augment=True if augment is None else augment)
    if key in ("tabular", "sequences"):
        if root is not None:
            raise ValueError(f"the {key} dataset is generated (no files): --data-root {root} "
                             "would not be read; leave it out")
        return load_tabular() if key == "tabular" else load_sequences()
    if root is not None and key in ("digits", "synthetic"):
        raise ValueError(f"the {key} dataset is built in (no files): --data-root {root} "
                         "would not be read; leave it out")
    if key == "digits":
        return load_digits(seed=seed)
    return load_synthetic(seed=seed)
