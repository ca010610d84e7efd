import pytest
import torch
import torchvision
from torch import nn

from thrifty.data import TensorData
from thrifty.engine import make_config
from thrifty.engine.loop import Trainer
from thrifty.models import SmallCNN
from thrifty.offline import PixelPCAEmbedder, SnapshotEmbedder, TorchvisionEmbedder
from thrifty.offline.embedders import cache_dir_default, penultimate_fn, strip_classifier


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(0)
    return TensorData(torch.randn(6, 3, 32, 32, generator=g), torch.tensor([0, 1, 0, 1, 0, 1]),
                      2, "tiny-images")


@pytest.fixture
def resnet_weights(tmp_path):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pt"
    torch.save(model.state_dict(), path)
    return path, model


def _count_forwards(embedder, monkeypatch):
    calls = []
    build = embedder.build_model

    def counting_build():
        model = build()
        model.register_forward_pre_hook(lambda m, inp: calls.append(len(inp[0])))
        return model

    monkeypatch.setattr(embedder, "build_model", counting_build)
    return calls


def test_torchvision_embedder_gives_resnet18_penultimate_features(images, resnet_weights,
                                                                  monkeypatch):
    path, model = resnet_weights
    emb = TorchvisionEmbedder("resnet18", path, size=None, progress=False, batch_size=4)
    calls = _count_forwards(emb, monkeypatch)
    z = emb.embed(images)
    assert z.shape == (6, 512) and calls == [4, 2]
    model.fc = nn.Identity()
    with torch.no_grad():
        direct = model.eval()(images.x)
    assert torch.allclose(z, direct, atol=1e-5)
    # second build: from the cache, no forward pass at all
    again = TorchvisionEmbedder("resnet18", path, size=None, progress=False, batch_size=4)
    calls2 = _count_forwards(again, monkeypatch)
    assert torch.equal(again.embed(images), z) and calls2 == []
    assert again.info["cache_hit"] == 1.0 and again.info["compute_time"] > 0
    assert again.cache_file.parent == cache_dir_default() and again.cache_file.is_file()


def test_grayscale_is_repeated_to_three_channels_and_resized(resnet_weights):
    path, model = resnet_weights
    gray = TensorData(torch.randn(3, 1, 28, 28), torch.tensor([0, 1, 2]), 3, "gray")
    emb = TorchvisionEmbedder("resnet18", path, size=48, progress=False, cache=False)
    built = emb.build_model()
    seen = []
    built.register_forward_pre_hook(lambda m, inp: seen.append(tuple(inp[0].shape)))
    emb.build_model = lambda: built
    z = emb.embed(gray)
    assert z.shape == (3, 512) and seen == [(3, 3, 48, 48)]
    model.fc = nn.Identity()
    rgb = gray.x.repeat(1, 3, 1, 1)
    resized = torch.nn.functional.interpolate(rgb, size=(48, 48), mode="bilinear")
    with torch.no_grad():
        assert torch.allclose(z, model.eval()(resized), atol=1e-5)
    with pytest.raises(ValueError, match="needs images"):
        emb.embed(TensorData(torch.randn(3, 5), torch.tensor([0, 1, 2]), 3))


def test_torchvision_embedder_refuses_missing_or_foreign_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights=PATH.*embedder=snapshot.*embedder=pixels"):
        TorchvisionEmbedder("resnet18", None)
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        TorchvisionEmbedder("resnet18", tmp_path / "nope.pt")
    other = tmp_path / "mobilenet.pt"
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), other)
    with pytest.raises(ValueError, match="does not fit torchvision resnet18"):
        TorchvisionEmbedder("resnet18", other).build_model()


def test_cache_key_follows_data_weights_and_settings(images, resnet_weights, tmp_path,
                                                     monkeypatch):
    path, _ = resnet_weights
    kw = dict(size=None, progress=False)
    first = TorchvisionEmbedder("resnet18", path, **kw)
    first.embed(images)
    changed = TensorData(images.x, torch.tensor([1, 1, 0, 1, 0, 1]), 2, "tiny-images")
    for emb, data in [(TorchvisionEmbedder("resnet18", path, **kw), changed),
                      (TorchvisionEmbedder("resnet18", path, size=40, progress=False), images)]:
        emb.embed(data)
        assert emb.info["cache_hit"] == 0.0 and emb.cache_file != first.cache_file
    torch.manual_seed(1)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)  # new weights
    renewed = TorchvisionEmbedder("resnet18", path, **kw)
    renewed.embed(images)
    assert renewed.info["cache_hit"] == 0.0
    # an explicit cache_dir wins over THRIFTY_CACHE; cache=False writes nothing
    own = PixelPCAEmbedder(4, cache_dir=tmp_path / "mine", progress=False)
    own.embed(images)
    assert own.cache_file.parent == tmp_path / "mine" and own.cache_file.is_file()
    off = PixelPCAEmbedder(5, cache=False)
    off.embed(images)
    assert off.cache_file is None
    assert not list(cache_dir_default().glob("*pixels*"))


def test_unreadable_cache_file_is_recomputed(images):
    emb = PixelPCAEmbedder(3)
    z = emb.embed(images)
    emb.cache_file.write_bytes(b"not a torch file")
    again = PixelPCAEmbedder(3)
    with pytest.warns(UserWarning, match="unreadable embedding cache"):
        assert torch.allclose(again.embed(images), z)
    assert again.info["cache_hit"] == 0.0


def test_pixel_pca_is_deterministic_and_reduces_dimensions(digits):
    train = digits[0]
    a = PixelPCAEmbedder(16, seed=3, cache=False).embed(train)
    b = PixelPCAEmbedder(16, seed=3, cache=False).embed(train)
    assert a.shape == (len(train), 16) and torch.equal(a, b)
    # the components are PCA's: uncorrelated, variance decreasing
    var = a.var(0)
    assert torch.all(var[:-1] >= var[1:] - 1e-4)
    cov = torch.cov(a.T)
    assert (cov - torch.diag(torch.diag(cov))).abs().max() < 1e-3 * var[0]
    with pytest.raises(ValueError, match="components must be at least 1"):
        PixelPCAEmbedder(0)


def test_penultimate_uses_the_model_method_or_the_last_linear_input():
    cnn = SmallCNN(3, in_channels=1).eval()
    x = torch.randn(2, 1, 8, 8)
    assert penultimate_fn(cnn) == cnn.penultimate
    seq = nn.Sequential(nn.Flatten(), nn.Linear(64, 7), nn.ReLU(), nn.Linear(7, 3)).eval()
    feats = penultimate_fn(seq)(x)
    assert torch.allclose(feats, seq[:3](x)) and feats.shape == (2, 7)
    assert not seq[3]._forward_hooks  # the hook is removed again
    with pytest.raises(ValueError, match="neither a penultimate"):
        penultimate_fn(nn.Sequential(nn.Flatten()))
    stripped = strip_classifier(torchvision.models.resnet18(weights=None))
    assert isinstance(stripped.fc, nn.Identity)


def test_snapshot_outside_the_engine_trains_once_then_hits_the_cache(digits, tmp_path,
                                                                     monkeypatch):
    train, test = digits
    cfg = make_config({"workload": "digits-mlp", "epochs": 50, "out_dir": str(tmp_path),
                       "progress": False})
    fits = []
    real_fit = Trainer.fit
    monkeypatch.setattr(Trainer, "fit", lambda self: fits.append(self.config.epochs)
                        or real_fit(self))
    rng = torch.get_rng_state()
    logged = []
    emb = SnapshotEmbedder(1, config=cfg, test_data=test, progress=False)
    monkeypatch.setattr("builtins.print", logged.append)
    z = emb.embed(train)
    assert fits == [1] and z.shape == (len(train), 128)  # one warm-up epoch; MLP width
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's RNG is untouched
    assert emb.info["warmup_accuracy"] > 0.5 and logged[0].startswith("snapshot warm-up:")
    again = SnapshotEmbedder(1, config=cfg, test_data=test, progress=False)
    assert torch.equal(again.embed(train), z) and fits == [1]
    assert again.info["cache_hit"] == 1.0 and again.info["warmup_accuracy"] > 0.5
    longer = SnapshotEmbedder(2, config=cfg, test_data=test, progress=False)
    longer.embed(train)
    assert fits == [1, 2]  # another recipe, another snapshot
    with pytest.raises(ValueError, match="give config=RunConfig"):
        SnapshotEmbedder(1).embed(train)
    with pytest.raises(ValueError, match="warmup_epochs must be a positive integer"):
        SnapshotEmbedder(0)


@pytest.fixture
def image_folder(tmp_path):
    """A tiny on-disk ImageFolder: 2 classes x 4 random-noise 8x8 PNGs (train and val)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for split in ("train", "val"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(4):
                pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{i}.png")
    return root


def test_augmented_image_folder_is_embedded_and_fingerprinted_without_random_crops(
        image_folder, tmp_path):
    from thrifty.data import dataset_labels, load_image_folder
    from thrifty.offline import IDS
    from thrifty.offline.embedders import data_fingerprint
    from thrifty.offline.inspect import build_registry

    train, _ = load_image_folder(image_folder, image_size=8)  # augment on (the default)
    plain, _ = load_image_folder(image_folder, image_size=8, augment=False)
    torch.manual_seed(0)
    assert data_fingerprint(train) == data_fingerprint(train) == data_fingerprint(plain)
    a = PixelPCAEmbedder(4, cache=False, progress=False).embed(train)
    b = PixelPCAEmbedder(4, cache=False, progress=False).embed(train)
    assert a.shape == (8, 4) and torch.equal(a, b)
    assert torch.equal(a, PixelPCAEmbedder(4, cache=False, progress=False).embed(plain))
    # the cache hits on the second build, and neither build touches the global RNG
    state = torch.get_rng_state()
    first = PixelPCAEmbedder(4, progress=False)
    z = first.embed(train)
    assert first.info["cache_hit"] == 0.0 and torch.equal(torch.get_rng_state(), state)
    second = PixelPCAEmbedder(4, progress=False)
    assert torch.equal(second.embed(train), z) and second.info["cache_hit"] == 1.0
    assert torch.equal(torch.get_rng_state(), state)
    # a saved registry is accepted for the same (augmented) training set
    path = tmp_path / "reg.pt"
    build_registry(train, "pixels", components=4, progress=False, path=path)
    ids = IDS(alpha=0.5, mode="easy", registry=str(path))
    assert len(ids.fit(dataset_labels(train), dataset=train).indices_) == 4


def _snapshot_embeddings(digits, seed, tmp_path):
    train, test = digits
    cfg = make_config({"workload": "digits-mlp", "seed": seed, "out_dir": str(tmp_path),
                       "progress": False})
    emb = SnapshotEmbedder(1, config=cfg, test_data=test.subset(100), progress=False,
                           cache=False)
    return emb.embed(train.subset(300, seed=0))


def test_snapshot_embedder_is_deterministic_under_a_seed(digits, tmp_path):
    from thrifty.offline import IDSRegistry

    sub = digits[0].subset(300, seed=0)
    a = _snapshot_embeddings(digits, 0, tmp_path)
    b = _snapshot_embeddings(digits, 0, tmp_path)  # uncached: a second warm-up
    assert a.shape == (300, 128) and torch.equal(a, b)
    reg_a, reg_b = IDSRegistry.build(a, sub.y), IDSRegistry.build(b, sub.y)
    assert torch.equal(reg_a.order, reg_b.order)
    assert torch.equal(reg_a.select(0.5, "hard"), reg_b.select(0.5, "hard"))
    c = _snapshot_embeddings(digits, 1, tmp_path)  # another seed: another initial model
    assert not torch.equal(a, c)


def test_the_snapshot_warm_up_of_your_own_workload_evaluates_a_subset_of_its_test_set(
        tmp_path, monkeypatch):
    """A factory's test set is a plain Dataset: the warm-up's evaluation limit picks a
    labelled subset of it instead of refusing the limit (IDS with the snapshot embedder)."""
    from pathlib import Path

    seen = []
    real = __import__("thrifty.data.tensor", fromlist=["limited"]).limited

    def spy(data, n, seed=0):
        part = real(data, n, seed)
        seen.append((len(data), len(part)))
        return part

    monkeypatch.setenv("THRIFTY_CACHE", str(tmp_path / "cache"))  # no cached embedding
    monkeypatch.setattr("thrifty.engine.snapshot.WARMUP_TEST_LIMIT", 50)
    monkeypatch.setattr("thrifty.engine.snapshot.limited", spy)
    factory = Path(__file__).parents[1] / "bench" / "user_workload.py"
    cfg = make_config({"workload": f"{factory}:tiny", "epochs": 1, "method": ["ids"],
                       "out_dir": str(tmp_path), "progress": False})
    result = Trainer(cfg).fit()
    assert result["status"] == "finished" and seen == [(160, 50)]
