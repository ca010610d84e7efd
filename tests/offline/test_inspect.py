import math

import pytest
import torch

from thrifty.engine import make_config
from thrifty.offline import IDSRegistry
from thrifty.offline.inspect import build_registry, describe, plot_distances


def test_build_describe_and_plot(digits, tmp_path):
    train = digits[0]
    reg = build_registry(train, "pixels", components=8, path=tmp_path / "reg.pt")
    assert reg.meta["prep_time"] >= reg.meta["embed_time"] > 0
    assert reg.meta["embedder"] == "pixels" and reg.meta["cache_hit"] == 0.0
    assert torch.equal(IDSRegistry.load(tmp_path / "reg.pt").order, reg.order)
    info = describe(reg, train.y, 0.5, "easy")
    counts = torch.bincount(train.y).tolist()
    assert info["total"] == len(train) and info["groups"] == 10
    assert [v["before"] for v in info["per_class"].values()] == counts
    assert [v["after"] for v in info["per_class"].values()] == [math.ceil(c / 2) for c in counts]
    assert info["kept"] == sum(math.ceil(c / 2) for c in counts)
    assert 0.5 <= info["class_share_min"] <= info["class_share_max"] < 0.52
    assert info["prep_time"] == reg.meta["prep_time"]
    png = plot_distances(reg, tmp_path / "plots" / "distances.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    with pytest.raises(ValueError, match="labels for a registry"):
        describe(reg, train.y[:5], 0.5)


def test_build_registry_with_the_snapshot_embedder_needs_a_config(digits, tmp_path):
    train, test = digits
    with pytest.raises(ValueError, match="give config=RunConfig"):
        build_registry(train)
    cfg = make_config({"workload": "digits-mlp", "out_dir": str(tmp_path), "progress": False})
    reg = build_registry(train, config=cfg, test_data=test, warmup_epochs=1, progress=False)
    assert reg.centroids.shape == (10, 128) and reg.per_class
