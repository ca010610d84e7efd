import gzip
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from thrifty.data import (
    DatasetNotFoundError,
    IndexedDataset,
    TensorData,
    dataset_labels,
    iterate_batches,
    load_cifar,
    load_dataset,
    load_fashion_mnist,
    load_image_folder,
    load_synthetic,
    random_crop_flip,
)
from thrifty.data import datasets as ds
from thrifty.data.tensor import eval_view


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fake_fmnist(folder: Path, n_train: int = 20, n_test: int = 10) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", np.arange(n) % 10)


def test_fashion_mnist_reads_idx_files_and_normalises(tmp_path):
    fake_fmnist(tmp_path / "fm")
    train, test = load_fashion_mnist(tmp_path / "fm")
    assert train.x.shape == (20, 1, 28, 28) and test.x.shape == (10, 1, 28, 28)
    assert train.y.tolist() == [i % 10 for i in range(20)]
    # pixel 0 maps to (0 - mean) / std
    assert train.x.min().item() >= (0 - ds.FMNIST_MEAN) / ds.FMNIST_STD - 1e-6
    assert train.num_classes == 10 and train.augment is None


def test_fashion_mnist_missing_names_places_and_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(ds, "FMNIST_SYSTEM_DIR", tmp_path / "nowhere")
    monkeypatch.delenv("THRIFTY_DATA", raising=False)
    with pytest.raises(DatasetNotFoundError) as err:
        load_fashion_mnist(tmp_path / "empty")
    msg = str(err.value)
    assert str(tmp_path / "empty") in msg and "nowhere" in msg
    assert "apt-get install -y dataset-fashion-mnist" in msg and "--data-root" in msg


def test_fashion_mnist_found_through_env(tmp_path, monkeypatch):
    fake_fmnist(tmp_path / "fashion-mnist")
    monkeypatch.setattr(ds, "FMNIST_SYSTEM_DIR", tmp_path / "nowhere")
    monkeypatch.setenv("THRIFTY_DATA", str(tmp_path))
    train, _ = load_dataset("fmnist")
    assert len(train) == 20


@pytest.mark.skipif(not (ds.FMNIST_SYSTEM_DIR / "t10k-labels-idx1-ubyte.gz").exists(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_slice():
    train, test = load_fashion_mnist()
    assert len(train) == 60000 and len(test) == 10000
    counts = torch.bincount(train.y, minlength=10)
    assert counts.tolist() == [6000] * 10
    assert abs(train.x.mean().item()) < 0.05 and abs(train.x.std().item() - 1) < 0.05


def fake_cifar(root: Path, name: str, n: int = 12) -> None:
    rng = np.random.default_rng(1)
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        files, key = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], b"labels"
        meta = ("batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]})
    else:
        folder = root / "cifar-100-python"
        files, key = ["train", "test"], b"fine_labels"
        meta = ("meta", {b"fine_label_names": [f"c{i}".encode() for i in range(100)]})
    folder.mkdir(parents=True)
    for f in files:
        entry = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 key: list(range(n))}
        with open(folder / f, "wb") as fh:
            pickle.dump(entry, fh)
    with open(folder / meta[0], "wb") as fh:
        pickle.dump(meta[1], fh)


@pytest.mark.parametrize("name,n_train,classes", [("cifar10", 60, 10), ("cifar100", 12, 100)])
def test_cifar_from_torchvision_layout(tmp_path, name, n_train, classes):
    fake_cifar(tmp_path, name)
    train, test = load_cifar(name, tmp_path)
    assert train.x.shape == (n_train, 3, 32, 32) and len(test) == 12
    assert train.num_classes == classes and train.classes[1] == "c1"
    assert train.augment is not None and test.augment is None


def test_cifar_missing_says_where(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="(?s)cifar-10-batches-py.*--data-root"):
        load_cifar("cifar10", tmp_path)


def test_image_folder(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for c in ("cat", "dog"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(2):
                img = Image.new("RGB", (40, 30), (i * 100, 50, 50))
                img.save(tmp_path / split / c / f"{i}.png")
    train, val = load_image_folder(tmp_path, image_size=32)
    assert len(train) == 4 and train.classes == ["cat", "dog"]
    batch = next(iterate_batches(train, [3, 0], 2, train=True))
    assert batch.x.shape == (2, 3, 32, 32) and batch.idx.tolist() == [3, 0]
    assert batch.y.tolist() == [1, 0]
    assert dataset_labels(val).tolist() == [0, 0, 1, 1]


def fake_image_folder(root: Path, per_class: int = 3, side: int = 8) -> Path:
    """train/ and val/ with two classes of random-noise ``side x side`` PNGs."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{i}.png")
    return root


def test_eval_view_of_an_augmented_image_folder_is_deterministic(tmp_path):
    train, val = load_image_folder(fake_image_folder(tmp_path), image_size=8)
    view = eval_view(train)
    assert view is not train and view.transform is train.eval_transform
    assert train.transform is not train.eval_transform  # training keeps its random crop
    assert view.samples is train.samples and view.targets == train.targets
    assert torch.equal(view[0][0], view[0][0]) and view[0][0].shape == (3, 8, 8)
    torch.manual_seed(0)
    crops = [train[0][0] for _ in range(5)]
    assert any(not torch.equal(crops[0], c) for c in crops[1:])  # the training view is random
    # same pixels as the validation transform applied to the same file
    plain, _ = load_image_folder(tmp_path, image_size=8, augment=False)
    assert torch.equal(view[2][0], plain[2][0])
    assert eval_view(view) is view
    sub = torch.utils.data.Subset(train, [1, 2])
    assert torch.equal(eval_view(sub)[0][0], view[1][0]) and sub.dataset is train
    tensors, _ = load_synthetic(n_train=4, n_test=2)
    assert eval_view(tensors) is tensors and eval_view(val) is val


def test_a_dataloader_pass_leaves_the_global_rng_alone(tmp_path):
    train, _ = load_image_folder(fake_image_folder(tmp_path), image_size=8)
    base = torch.utils.data.TensorDataset(torch.randn(5, 2), torch.tensor([0, 1, 0, 1, 0]))
    for data in (eval_view(train), base):
        state = torch.get_rng_state()
        batches = list(iterate_batches(data, range(len(data)), 2))
        assert len(batches) == 3 and torch.equal(torch.get_rng_state(), state)
    # a given generator is the one the DataLoader draws its base seed from
    g = torch.Generator().manual_seed(3)
    before, state = g.get_state(), torch.get_rng_state()
    list(iterate_batches(base, range(5), 2, generator=g))
    assert not torch.equal(g.get_state(), before) and torch.equal(torch.get_rng_state(), state)


def test_image_folder_missing(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="train"):
        load_image_folder(tmp_path)


def test_batches_carry_indices_in_sampler_order():
    train, _ = load_synthetic(n_train=10, n_test=4)
    order = [9, 3, 5, 0, 1]
    batches = list(iterate_batches(train, order, 2))
    assert [b.idx.tolist() for b in batches] == [[9, 3], [5, 0], [1]]
    assert torch.equal(batches[0].x, train.x[[9, 3]])
    assert torch.equal(batches[0].y, train.y[[9, 3]])


def test_random_crop_flip_is_per_sample_and_seeded():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float).reshape(2, 1, 6, 6).repeat(16, 1, 1, 1)
    aug = random_crop_flip(padding=2)
    a = aug(x, torch.Generator().manual_seed(0))
    b = aug(x, torch.Generator().manual_seed(0))
    c = aug(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    # samples 0, 2, 4, ... are identical inputs; their augmented views must differ somewhere
    assert len({tuple(a[i].flatten().tolist()) for i in range(0, 32, 2)}) > 1
    # a crop with offset == padding and no flip is the identity: check one exists or all
    # views are shifted copies (values are a subset of the original plus zero padding)
    assert set(a.unique().tolist()) <= set(x.unique().tolist()) | {0.0}


def test_indexed_dataset_returns_index():
    base = torch.utils.data.TensorDataset(torch.zeros(3, 2), torch.tensor([0, 1, 2]))
    assert IndexedDataset(base)[2][2] == 2


def test_subset_is_seeded_and_validated():
    train, _ = load_synthetic(n_train=50)
    a, b = train.subset(10, seed=3), train.subset(10, seed=3)
    assert len(a) == 10 and torch.equal(a.x, b.x)
    with pytest.raises(ValueError, match="positive"):
        train.subset(0)


def test_tensor_data_length_mismatch():
    with pytest.raises(ValueError, match="3 samples but y has 2"):
        TensorData(torch.zeros(3, 1), torch.zeros(2), 2)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'mnist3'.*fashion-mnist"):
        load_dataset("mnist3")


def test_image_folder_whose_val_classes_differ_is_refused(tmp_path):
    root = fake_image_folder(tmp_path)
    extra = root / "val" / "zebra"
    shutil.copytree(next(p for p in (root / "val").iterdir() if p.is_dir()), extra)
    with pytest.raises(ValueError, match=r"only in val/: \['zebra'\]"):
        load_image_folder(root, image_size=8)


class _Payload:
    """What a crafted file holds: unpickling it would call os.system."""

    def __reduce__(self):
        import os

        return os.system, ("touch PWNED",)


def test_a_crafted_cifar_batch_is_refused_without_running_it(tmp_path, monkeypatch):
    import pickle

    fake_cifar(tmp_path, "cifar10")
    folder = tmp_path / "cifar-10-batches-py"
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": _Payload(), b"labels": [0]}, f)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as err:
        load_cifar("cifar10", tmp_path)
    message = str(err.value)
    assert "data_batch_1" in message and "posix.system" in message and "refused" in message
    assert len(message.splitlines()) == 1
    assert not (tmp_path / "PWNED").exists()  # the payload never ran
    (folder / "data_batch_1").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="data_batch_1: not a CIFAR batch"):
        load_cifar("cifar10", tmp_path)
