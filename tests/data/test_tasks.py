"""The generated workloads (tabular-mlp, seq-cnn): what they contain, and that a preset
trains on them."""

import torch

from thrifty.data import load_dataset
from thrifty.data.tasks import load_sequences, load_tabular
from thrifty.engine import Trainer, make_config


def test_tabular_repeats_half_its_training_set_and_keeps_the_test_set_distinct():
    train, test = load_tabular(n_distinct=400, n_copies=400, n_test=200)
    assert (len(train), len(test), train.num_classes) == (800, 200, 6)
    assert train.x.shape[1:] == (32,) and train.x.dtype == torch.float32
    assert abs(float(train.x.mean())) < 0.01 and abs(float(train.x.std()) - 1) < 0.05
    # every copy has a near twin among the training samples; test samples do not
    d = torch.cdist(train.x, train.x) + 1e9 * torch.eye(len(train))
    near = d.min(1).values < 0.5
    assert 0.45 < float(near.float().mean()) <= 1.0
    assert float((torch.cdist(test.x, train.x).min(1).values < 0.5).float().mean()) < 0.05
    a, b = load_tabular(n_distinct=400, n_copies=400, n_test=200)
    assert torch.equal(a.x, train.x) and torch.equal(b.y, test.y)  # the same on every call


def test_sequences_carry_their_class_motif_and_noisy_training_labels():
    train, test = load_sequences(n_train=600, n_test=300, label_noise=0.1)
    assert train.x.shape == (600, 32) and train.x.dtype == torch.long
    assert int(train.x.max()) < 12 and set(test.y.tolist()) == set(range(6))
    clean, _ = load_sequences(n_train=600, n_test=300, label_noise=0.0)
    assert torch.equal(clean.x, train.x)  # the same sequences; only labels differ
    changed = float((clean.y != train.y).float().mean())
    assert 0.05 < changed < 0.15


def test_the_presets_train(tmp_path):
    for workload, model in (("tabular-mlp", "MLP"), ("seq-cnn", "SequenceCNN")):
        cfg = make_config({"workload": workload, "epochs": 1, "train_limit": 512,
                           "test_limit": 256, "out_dir": str(tmp_path), "progress": False})
        trainer = Trainer(cfg, log=lambda s: None)
        assert type(trainer.model).__name__ == model and cfg.optimizer == "adamw"
        result = trainer.fit()
        assert result["final"]["test_accuracy"] > 1 / 6  # learns something in one epoch
    assert load_dataset("tabular")[0].name == "tabular"
