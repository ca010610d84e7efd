import math

import pytest
import torch

from thrifty.data import TensorData
from thrifty.engine import EpochSampler, TrainContext, Trainer
from thrifty.engine.record import SampleRecord
from thrifty.methods import build_method
from thrifty.offline import IDS, IDSRegistry, IDSSampler
from thrifty.offline.ids import check_labels, switch_epoch

# Seven 2-D points, classes interleaved in dataset order (hand-computed below).
#   class 0: x = 0, 1, 3, 8 at indices 0, 2, 4, 6 -> mean 3, distances 3, 2, 0, 5
#   class 1: y = 0, 3, 9 at indices 1, 3, 5      -> mean 4, distances 4, 1, 5
POINTS = torch.tensor([[0., 0], [10, 0], [1, 0], [10, 3], [3, 0], [10, 9], [8, 0]])
LABELS = torch.tensor([0, 1, 0, 1, 0, 1, 0])


def _registry():
    return IDSRegistry.build(POINTS, LABELS, num_classes=2)


def test_registry_matches_hand_computed_order_distances_and_prototypes():
    reg = _registry()
    assert reg.groups.tolist() == [0, 1] and reg.counts.tolist() == [4, 3]
    assert reg.order.tolist() == [4, 2, 0, 6, 3, 1, 5]
    assert torch.allclose(reg.distances, torch.tensor([0., 2, 3, 5, 1, 4, 5], dtype=torch.float64))
    assert reg.prototypes.tolist() == [4, 3]
    assert torch.allclose(reg.centroids, torch.tensor([[3., 0], [10, 4]]))


@pytest.mark.parametrize(("alpha", "mode", "expected"), [
    (0.5, "easy", [1, 2, 3, 4]),            # 2 nearest of class 0, ceil(1.5)=2 of class 1
    (0.5, "hard", [0, 1, 3, 4, 5, 6]),      # 2 farthest of each + both prototypes (4, 3)
    (0.25, "easy", [3, 4]),                 # ceil(1)=1, ceil(0.75)=1: the prototypes
    (0.25, "HARD", [3, 4, 5, 6]),           # farthest one of each + prototypes
    (1.0, "hard", list(range(7))),
])
def test_select_keeps_ceil_alpha_per_class_in_mode_order_plus_prototype(alpha, mode, expected):
    assert _registry().select(alpha, mode).tolist() == expected


def test_keep_count_is_not_fooled_by_float_noise():
    assert 0.55 * 100 > 55  # binary floating point: 55.00000000000001
    emb = torch.arange(100.0)[:, None]
    kept = IDSRegistry.build(emb, torch.zeros(100, dtype=torch.long)).select(0.55, "easy")
    assert len(kept) == 55


def test_registry_file_round_trip_derives_any_ratio_without_embedding(tmp_path):
    reg = _registry()
    reg.meta["prep_time"] = 1.5
    path = reg.save(tmp_path / "reg.pt")
    loaded = IDSRegistry.load(path)
    assert torch.load(path, weights_only=True)["format"] == "thrifty-ids-registry/1"
    for alpha in (0.25, 0.5, 0.9):
        for mode in ("easy", "hard"):
            assert torch.equal(loaded.select(alpha, mode), reg.select(alpha, mode))
    assert loaded.meta["prep_time"] == 1.5
    # a reducer reads the file instead of embedding
    data = TensorData(POINTS[:, :, None, None].expand(-1, -1, 1, 1).clone(), LABELS, 2)
    ids = IDS(alpha=0.5, mode="easy", registry=str(path), embedder="pixels")
    assert ids.fit(LABELS, dataset=data).indices_.tolist() == [1, 2, 3, 4]
    assert ids.info_["registry_loaded"] == 1.0
    with pytest.raises(ValueError, match="not an IDS registry"):
        torch.save({"format": "other"}, tmp_path / "bad.pt")
        IDSRegistry.load(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError, match="no IDS registry"):
        IDSRegistry.load(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="covers 7 samples but the training set has 6"):
        IDS(registry=str(path)).fit(LABELS[:6], dataset=TensorData(POINTS[:6], LABELS[:6], 2))


def test_single_prototype_mode_for_multi_label_data():
    labels = torch.full((7,), -1)  # no usable class labels
    reg = IDSRegistry.build(POINTS, labels, per_class=False)
    centre = POINTS.mean(0)
    dist = (POINTS - centre).norm(dim=1)
    assert reg.groups.tolist() == [-1] and reg.counts.tolist() == [7]
    assert reg.prototypes.tolist() == [int(dist.argmin())]
    assert torch.allclose(reg.distances.float(), dist.sort().values)
    kept = reg.select(0.3, "hard")  # ceil(2.1) = 3 farthest + the prototype
    assert set(kept.tolist()) == set(dist.argsort(descending=True)[:3].tolist()) | {
        int(dist.argmin())}


@pytest.mark.parametrize("alpha", [0, -0.5, 1.01, True])
def test_refuses_alpha_outside_unit_interval(alpha):
    with pytest.raises(ValueError, match=r"alpha .* must be in \(0, 1\]"):
        IDS(alpha=alpha, embedder="pixels")
    with pytest.raises(ValueError, match=r"must be in \(0, 1\]"):
        _registry().select(alpha, "easy")


def test_refuses_empty_class_unlabeled_missing_labels_and_nan():
    with pytest.raises(ValueError, match=r"class\(es\) \[2\] have no sample"):
        IDSRegistry.build(POINTS, LABELS, num_classes=3)
    with pytest.raises(ValueError, match=r"unlabeled \(label < 0, first: sample 1\).*per_class"):
        IDSRegistry.build(POINTS, torch.tensor([0, -1, 0, 1, 0, 1, 0]))
    with pytest.raises(ValueError, match="needs the labels.*per_class=False"):
        IDSRegistry.build(POINTS, None)
    bad = POINTS.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or infinite values in 1 row\(s\) \(first: sample 3"):
        IDSRegistry.build(bad, LABELS)
    with pytest.raises(ValueError, match="mode must be 'easy'"):
        _registry().select(0.5, "medium")
    # the reducer refuses bad labels before embedding anything
    data = TensorData(torch.randn(6, 1, 2, 2), torch.tensor([0, 0, 1, 1, 3, 3]), 4, "gap")
    calls = []
    ids = IDS(embedder="pixels")
    ids.embedder.compute = lambda *a: calls.append(1)
    with pytest.raises(ValueError, match=r"class\(es\) \[2\] have no sample"):
        ids.fit(data.y, dataset=data)
    assert calls == [] and len(check_labels(data.y)) == 6


def test_gamma_semantics_and_refusals():
    assert switch_epoch(0.6, 200) == 120 and switch_epoch(0.9, 200) == 180
    assert switch_epoch(14, 90) == 14 and switch_epoch(0.5, 5) == 3  # halves round up
    with pytest.raises(ValueError, match="at least one EASY and one HARD epoch"):
        switch_epoch(200, 200)
    with pytest.raises(ValueError, match="at least one EASY and one HARD epoch"):
        switch_epoch(0.01, 10)
    with pytest.raises(ValueError, match="whole epoch count"):
        switch_epoch(2.5, 10)
    with pytest.raises(ValueError, match="gamma must be a positive"):
        IDS(gamma=0, embedder="pixels")
    with pytest.raises(ValueError, match="mode and gamma exclude each other"):
        IDS(gamma=0.5, mode="easy", embedder="pixels")


def _ctx(epoch, epochs):
    return TrainContext(epoch=epoch, epochs=epochs, record=SampleRecord(7), batch_size=2,
                        seed=0, generator=torch.Generator(), score=None, num_classes=2,
                        labels=LABELS)


def test_sampler_loads_easy_before_gamma_and_hard_from_gamma_on():
    ids = IDS(alpha=0.5, gamma=2, embedder="pixels").apply(_registry())
    assert ids.indices_.tolist() == list(range(7))  # pool = EASY u HARD
    sampler = ids.sampler()
    assert ids.companions() == {"sampler": sampler} and sampler is ids.sampler()
    assert isinstance(sampler, IDSSampler) and sampler.source is ids
    sampler.setup(ids.indices_, _ctx(0, 4))
    loaded = []
    for epoch in range(4):
        sampler.set_epoch(epoch)
        sampler.begin_epoch(_ctx(epoch, 4))
        loaded.append(sorted(iter(sampler)))
        assert sampler.epoch_diagnostics()["ids_hard"] == float(epoch >= 2)
    assert loaded == [[1, 2, 3, 4]] * 2 + [[0, 1, 3, 4, 5, 6]] * 2
    assert sampler.state_dict() == {"switch_epoch": 2}
    with pytest.raises(ValueError, match="at least one EASY and one HARD"):
        ids.sampler().setup(ids.indices_, _ctx(0, 2))
    assert IDS(embedder="pixels").companions() == {}


def test_switch_inside_the_engine_trains_exactly_easy_then_hard(tiny_config, digits):
    train, test = digits
    ids = IDS(alpha=0.3, gamma=0.5, embedder="pixels")
    cfg = tiny_config(epochs=4)
    trainer = Trainer(cfg, train=train, test=test, reducer=ids, sampler=ids.sampler(),
                      log=lambda s: None)
    result = trainer.fit()
    easy, hard = ids.easy_, ids.hard_
    loaded = [e["samples_loaded"] for e in result["epochs"]]
    assert loaded == [len(easy)] * 2 + [len(hard)] * 2
    assert [e["method"]["ids_hard"] for e in result["epochs"]] == [0, 0, 1, 1]
    expected = torch.zeros(len(train), dtype=torch.int32)
    expected[easy] += 2
    expected[hard] += 2
    assert torch.equal(trainer.record.times_trained, expected)
    # per class: ceil(0.3 * L_i) nearest (+ prototype, already among them)
    counts = torch.bincount(train.y, minlength=10)
    assert torch.bincount(train.y[easy], minlength=10).tolist() == [
        math.ceil(0.3 * c) for c in counts.tolist()]
    assert result["dataset"]["pool_size"] == len(torch.unique(torch.cat([easy, hard])))
    assert (trainer.run_dir / "ids_registry.pt").exists()
    assert result["final"]["prep_time"] >= ids.info_["embed_time"] > 0


def test_gamma_without_the_ids_sampler_is_refused(tiny_config, digits):
    train, test = digits

    class Other(EpochSampler):
        name = "other"

    for sampler in (None, Other()):
        ids = IDS(alpha=0.5, gamma=0.5, embedder="pixels")
        with pytest.raises(ValueError, match="sampler=ids.sampler()"):  # before any work
            Trainer(tiny_config(epochs=2), train=train, test=test, reducer=ids,
                    sampler=sampler, log=lambda s: None)


def test_ids_by_name_with_the_snapshot_embedder(tiny_config, digits):
    """What `thrifty train --method ids --method-arg alpha=0.5 --method-arg warmup_epochs=1`
    builds, on digits: a 1-epoch warm-up snapshot of the run's MLP as the embedder."""
    train, test = digits
    cfg = tiny_config(epochs=1, method=["ids"], method_args={"alpha": 0.5, "warmup_epochs": 1})
    trainer = Trainer(cfg, train=train, test=test, log=lambda s: None)
    result = trainer.fit()
    ids = trainer.reducer
    assert isinstance(ids, IDS) and ids.embedder.name == "snapshot"
    registry = IDSRegistry.load(trainer.run_dir)
    assert registry.centroids.shape == (10, 128)  # the MLP's penultimate width
    assert torch.equal(ids.indices_, registry.select(0.5, "hard"))
    assert result["dataset"]["pool_size"] == len(ids.indices_)
    assert result["epochs"][0]["samples_loaded"] == len(ids.indices_)
    assert ids.info_["warmup_accuracy"] > 0.5 and ids.info_["cache_hit"] == 0.0
    assert result["final"]["prep_time"] >= ids.info_["warmup_train_time"] > 0
    # the kept indices and the registry travel with the checkpoint
    state = torch.load(trainer.run_dir / "checkpoint.pt", weights_only=True)["core"]["reducer"]
    assert torch.equal(state["indices_"], ids.indices_)
    assert IDSRegistry.from_dict(state["registry_"]).num_samples == len(train)


def test_ids_hyper_parameters_by_name():
    ids = build_method("ids", {"alpha": 0.8, "gamma": 0.6, "embedder": "pixels",
                               "components": 8})
    assert ids.gamma == 0.6 and ids.embedder.components == 8 and ids.mode == "hard"
    with pytest.raises(ValueError, match="only used by the torchvision embedder"):
        build_method("ids", {"weights": "w.pt"})
    with pytest.raises(ValueError, match="unknown embedder 'dino'"):
        build_method("ids", {"embedder": "dino"})


def test_gamma_switch_by_name_brings_its_sampler(tiny_config, digits):
    from thrifty.engine import Trainer
    from thrifty.offline import IDSSampler

    cfg = tiny_config(epochs=4, method=["ids"],
                      method_args={"alpha": 0.3, "gamma": 0.5, "embedder": "pixels"})
    trainer = Trainer(cfg, train=digits[0], test=digits[1], log=lambda s: None)
    assert isinstance(trainer.sampler, IDSSampler) and trainer.sampler.source is trainer.reducer
    result = trainer.fit()
    assert [e["method"]["ids_hard"] for e in result["epochs"]] == [0, 0, 1, 1]
    assert result["methods"]["reducer_info"]["embed_time"] >= 0


# Ties: class 0 at indices 0, 2, 4, 6, 7 with x = -1, 1, -2, 2, 0 (centroid 0, distances
# 1, 1, 2, 2, 0); class 1 at indices 1, 3, 5, all at the same point (distances 0, 0, 0).
TIE_POINTS = torch.tensor([[-1., 0], [5, 5], [1, 0], [5, 5], [-2, 0], [5, 5], [2, 0], [0, 0]])
TIE_LABELS = torch.tensor([0, 1, 0, 1, 0, 1, 0, 0])


def test_ties_keep_dataset_index_order_in_both_modes():
    from thrifty.offline.common import mode_order

    reg = IDSRegistry.build(TIE_POINTS, TIE_LABELS, num_classes=2)
    # EASY order: ascending distance, equal distances by index; the prototype is the lowest
    # index among the nearest
    assert reg.order.tolist() == [7, 0, 2, 4, 6, 1, 3, 5] and reg.prototypes.tolist() == [7, 1]
    idx, dist = reg.group(0)
    assert idx[mode_order(dist, "hard")].tolist() == [4, 6, 0, 2, 7]  # not the reverse
    idx, dist = reg.group(1)
    assert idx[mode_order(dist, "hard")].tolist() == [1, 3, 5]
    # HARD keeps the lower index of a tie at the cut (class 0: ceil(0.6*5)=3 -> 4, 6, 0)
    assert reg.select(0.2, "hard").tolist() == [1, 4, 7]
    assert reg.select(0.4, "hard").tolist() == [1, 3, 4, 6, 7]
    assert reg.select(0.6, "hard").tolist() == [0, 1, 3, 4, 6, 7]
    assert reg.select(0.4, "easy").tolist() == [0, 1, 3, 7]
    assert reg.select(0.6, "easy").tolist() == [0, 1, 2, 3, 7]


def test_a_prebuilt_registry_keeps_its_build_cost(tmp_path, tiny_config, digits):
    train, test = digits
    reg = IDSRegistry.build(POINTS, LABELS, num_classes=2,
                            meta={"prep_time": 12.5, "embed_time": 10.0})
    path = reg.save(tmp_path / "reg.pt")
    ids = IDS(alpha=0.5, mode="easy", registry=str(path)).fit(LABELS)
    meta = ids.registry_["meta"]
    assert meta["prep_time"] == 12.5 and meta["embed_time"] == 10.0
    assert meta["loaded_from"] == str(path) and 0 <= meta["load_time"] < 12.5
    assert ids.info_["registry_prep_time"] == 12.5 and ids.info_["load_time"] >= 0
    assert ids.info_["prep_time"] < 12.5  # this run's own cost: the load
    # inside the engine: the run's prep_time is the load, the saved registry keeps the build
    from thrifty.offline.inspect import build_registry

    built = build_registry(train, "pixels", components=8, progress=False)
    built.meta.update(prep_time=99.0, embed_time=98.0)
    built.save(tmp_path / "digits.pt")
    ids = IDS(alpha=0.5, registry=str(tmp_path / "digits.pt"))
    trainer = Trainer(tiny_config(epochs=1), train=train, test=test, reducer=ids,
                      log=lambda s: None)
    result = trainer.fit()
    saved = IDSRegistry.load(trainer.run_dir).meta
    assert saved["prep_time"] == 99.0 and saved["embed_time"] == 98.0
    assert saved["loaded_from"] == str(tmp_path / "digits.pt")
    assert result["final"]["prep_time"] < 99.0
    assert result["methods"]["reducer_info"]["registry_prep_time"] == 99.0


def test_ids_with_adonis_by_method_name_like_the_bench(tiny_config, digits):
    from thrifty.bench.spec import parse_method_string
    from thrifty.selection.adonis import Adonis

    run = parse_method_string("ids+adonis ids.alpha=0.5 ids.embedder=pixels ids.components=8 "
                              "adonis.alpha=0.5")
    train, test = digits
    epochs = 2
    cfg = tiny_config(epochs=epochs, method=run.method, method_args=run.method_args)
    trainer = Trainer(cfg, train=train, test=test, log=lambda s: None)
    assert isinstance(trainer.reducer, IDS) and isinstance(trainer.selector, Adonis)
    result = trainer.fit()
    ids = trainer.reducer
    trained = result["final"]["samples_trained"]
    assert result["status"] == "finished"
    assert result["dataset"]["pool_size"] == len(ids.indices_) < len(train)
    # a baseline trains every sample every epoch; IDS keeps a subset, ADONIS a share of it
    assert 0 < trained < epochs * len(ids.indices_) < epochs * len(train)
    assert (trainer.run_dir / "ids_registry.pt").exists()


def test_documented_refusals(tmp_path):
    from thrifty.engine import TrainContext

    data = TensorData(POINTS[:, :, None, None].clone(), LABELS, 2, "points")
    other = TensorData(POINTS[:, :, None, None].flip(0).clone(), LABELS, 2, "points")
    from thrifty.offline.inspect import build_registry

    path = build_registry(data, "pixels", components=2, progress=False).save(tmp_path / "r.pt")
    with pytest.raises(ValueError, match="built for other data.*rebuild it"):
        IDS(registry=str(path)).fit(LABELS, dataset=other)
    with pytest.raises(ValueError, match="has per_class=True; set per_class to match"):
        IDS(registry=str(path), per_class=False).fit(LABELS, dataset=data)
    with pytest.raises(ValueError, match="label 2 is not below num_classes=2"):
        check_labels(torch.tensor([0, 1, 2]), 2)
    bad = TensorData(POINTS[:, :, None, None].clone(), torch.tensor([0, 1, 0, 1, 0, 1, 2]), 2)
    with pytest.raises(ValueError, match="label 2 is not below num_classes=2"):
        IDS(embedder="pixels").fit(bad.y, dataset=bad)
    # multi-label (N, C) labels: a clear pointer to the single-prototype mode
    multi = torch.tensor([[1, 0], [0, 1], [1, 1], [1, 0], [0, 1], [1, 1], [1, 0]])
    with pytest.raises(ValueError, match=r"multi-label data \(labels of shape \(7, 2\).*"
                                         r"per_class=False \(single-prototype mode"):
        IDS(embedder="pixels").fit(multi, dataset=data)
    assert IDS(alpha=0.5, per_class=False, embedder="pixels").fit(
        multi, dataset=data).indices_.numel() >= 4
    assert check_labels(LABELS[:, None]).tolist() == LABELS.tolist()  # (N, 1) is one label
    # fitting without the dataset it has to embed
    with pytest.raises(ValueError, match=r"needs it: call fit\(labels, dataset=...\)"):
        IDS(embedder="pixels").fit(LABELS)
    # the gamma sampler: not fitted, or subsets outside the pool
    ctx = TrainContext(epoch=0, epochs=4, record=SampleRecord(7), batch_size=2, seed=0,
                       generator=torch.Generator(), score=None, num_classes=2, labels=LABELS)
    with pytest.raises(ValueError, match="fitted before training"):
        IDS(gamma=0.5, embedder="pixels").sampler().setup(torch.arange(7), ctx)
    fitted = IDS(alpha=0.5, gamma=2, embedder="pixels").apply(_registry())
    with pytest.raises(ValueError, match="not in the run's pool"):
        fitted.sampler().setup(torch.arange(3), ctx)
    with pytest.raises(ValueError, match="static subset and needs no sampler"):
        IDS(embedder="pixels").sampler()
