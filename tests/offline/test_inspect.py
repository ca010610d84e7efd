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


def _captured_figures(monkeypatch):
    from matplotlib.figure import Figure

    figures = []
    real = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: figures.append(self)
                        or real(self, *a, **k))
    return figures


def test_plot_draws_every_class_in_rows(tmp_path, monkeypatch):
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(360) % 120  # 120 classes: more than one row of 50
    reg = IDSRegistry.build(torch.randn(360, 3, generator=g), labels, num_classes=120)
    figures = _captured_figures(monkeypatch)
    plot_distances(reg, tmp_path / "all.png")
    axes = figures[-1].axes
    ticks = [t.get_text() for ax in axes for t in ax.get_xticklabels()]
    assert len(axes) == 3 and ticks == [str(c) for c in range(120)]
    assert axes[0].get_title().endswith(", 120 classes")
    plot_distances(reg, tmp_path / "some.png", max_groups=30)
    axes = figures[-1].axes
    assert len(axes) == 1 and len(axes[0].get_xticklabels()) == 30
    assert axes[0].get_title().endswith("first 30 of 120 classes")
    with pytest.raises(ValueError, match="per_row must be at least 1"):
        plot_distances(reg, tmp_path / "x.png", per_row=0)


def test_build_registry_checks_labels_before_embedding():
    from thrifty.data import TensorData
    from thrifty.offline import PixelPCAEmbedder

    calls = []
    emb = PixelPCAEmbedder(2, cache=False, progress=False)
    emb.compute = lambda *a: calls.append(1)
    gap = TensorData(torch.randn(6, 1, 2, 2), torch.tensor([0, 0, 1, 1, 3, 3]), 4, "gap")
    with pytest.raises(ValueError, match=r"class\(es\) \[2\] have no sample"):
        build_registry(gap, emb)
    multi = TensorData(torch.randn(4, 1, 2, 2), torch.tensor([[1, 0], [0, 1], [1, 1], [1, 0]]),
                       2, "multi")
    with pytest.raises(ValueError, match="multi-label data.*per_class=False"):
        build_registry(multi, emb)
    assert calls == []
    reg = build_registry(multi, "pixels", per_class=False, components=2, progress=False)
    assert reg.groups.tolist() == [-1] and reg.num_samples == 4
