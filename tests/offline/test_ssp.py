import math

import pytest
import torch

from thrifty.engine import Trainer
from thrifty.methods import build_method
from thrifty.offline import SSP, ssp_scores, ssp_select
from thrifty.offline import ssp as ssp_module
from thrifty.offline.ssp import cosine_to_nearest


def _blobs(n=60, seed=0):
    """Three groups of directions in 3-D, with varying spread."""
    g = torch.Generator().manual_seed(seed)
    axes = torch.eye(3) * 5
    y = torch.arange(n) % 3
    return axes[y] + torch.randn(n, 3, generator=g) * torch.linspace(0.1, 2, n)[:, None], y


def test_cosine_distance_to_nearest_centroid_matches_a_direct_computation():
    z, _ = _blobs()
    scores, centroids, backend = ssp_scores(z, 3, seed=0, backend="sklearn")
    assert backend == "sklearn" and centroids.shape == (3, 3)
    direct = []
    for row in z.double():
        cos = [float(row @ c / (row.norm() * c.norm())) for c in centroids]
        direct.append(1 - max(cos))
    assert torch.allclose(scores, torch.tensor(direct, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(cosine_to_nearest(torch.tensor([[1., 0]]), torch.tensor([[0., 2],
                                                                                    [3, 3]])),
                          torch.tensor([1 - 1 / math.sqrt(2)], dtype=torch.float64))
    # k-means found the three directions (normalised embeddings -> centroids near the axes)
    nearest = torch.nn.functional.normalize(centroids, dim=1) @ torch.eye(3, dtype=torch.float64)
    assert sorted(nearest.argmax(0).tolist()) == [0, 1, 2] and nearest.max(0).values.min() > 0.9


def test_ssp_is_deterministic_under_a_seed():
    z, _ = _blobs(200)
    a = ssp_scores(z, 7, seed=4, backend="sklearn")[0]
    b = ssp_scores(z, 7, seed=4, backend="sklearn")[0]
    c = ssp_scores(z, 7, seed=5, backend="sklearn")[0]
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(ssp_select(a, 0.8), ssp_select(b, 0.8))


@pytest.mark.parametrize("mode", ["hard", "easy"])
def test_select_keeps_ceil_alpha_of_the_dataset_by_distance(mode):
    scores = torch.tensor([0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8], dtype=torch.float64)
    kept = ssp_select(scores, 0.4, mode)  # ceil(2.8) = 3
    expected = [2, 4, 6] if mode == "hard" else [1, 3, 5]
    assert kept.tolist() == expected


def test_ssp_by_name_in_the_engine(tiny_config, digits):
    train, test = digits
    cfg = tiny_config(epochs=1, method=["ssp"], method_args={"embedder": "pixels", "alpha": 0.6})
    trainer = Trainer(cfg, train=train, test=test, log=lambda s: None)
    result = trainer.fit()
    ssp = trainer.reducer
    assert isinstance(ssp, SSP) and ssp.info_["k"] == 10  # default: number of classes
    assert result["dataset"]["pool_size"] == math.ceil(0.6 * len(train))
    removed = torch.ones(len(train), dtype=torch.bool)
    removed[ssp.indices_] = False
    assert ssp.scores_[ssp.indices_].min() >= ssp.scores_[removed].max()  # hardest kept
    assert result["final"]["prep_time"] >= ssp.info_["kmeans_time"] > 0
    state = torch.load(trainer.run_dir / "checkpoint.pt", weights_only=True)["core"]["reducer"]
    assert torch.equal(state["scores_"], ssp.scores_)


def test_ssp_refusals(monkeypatch):
    z, _ = _blobs(10)
    with pytest.raises(ValueError, match=r"alpha .* must be in \(0, 1\]"):
        SSP(alpha=0, embedder="pixels")
    with pytest.raises(ValueError, match=r"k \(the number of clusters\) must be an integer in "
                                         r"\[1, 10\]"):
        ssp_scores(z, 11)
    with pytest.raises(ValueError, match="positive integer"):
        SSP(k=0, embedder="pixels")
    with pytest.raises(ValueError, match="backend must be one of"):
        SSP(backend="gpu", embedder="pixels")
    with pytest.raises(ValueError, match="mode must be 'easy'"):
        build_method("ssp", {"mode": "medium", "embedder": "pixels"})
    bad = z.clone()
    bad[2, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        ssp_scores(bad, 2)
    monkeypatch.setattr(ssp_module, "_faiss", lambda: None)
    with pytest.raises(ValueError, match="faiss is not installed: pip install faiss-cpu"):
        ssp_scores(z, 2, backend="faiss")
    assert ssp_scores(z, 2, backend="auto")[2] == "sklearn"  # falls back without faiss


def test_select_ties_keep_dataset_index_order_in_both_modes():
    scores = torch.tensor([0.5, 0.9, 0.5, 0.9, 0.1], dtype=torch.float64)
    assert ssp_select(scores, 0.2, "hard").tolist() == [1]        # 1 and 3 tie: index 1
    assert ssp_select(scores, 0.6, "hard").tolist() == [0, 1, 3]  # 0 and 2 tie: index 0
    assert ssp_select(scores, 0.4, "easy").tolist() == [0, 4]     # 0 and 2 tie: index 0
    assert ssp_select(scores, 0.6, "easy").tolist() == [0, 2, 4]


def test_ssp_fit_needs_the_dataset():
    with pytest.raises(ValueError, match=r"ssp embeds the training set and needs it"):
        SSP(embedder="pixels").fit(torch.tensor([0, 1, 0]))
