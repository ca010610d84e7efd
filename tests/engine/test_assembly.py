"""The run's assembly: classes inferred, composition checked before any work, the context
the methods get inside the engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from thrifty.engine import BatchSelector, EpochSampler, Pieces, Trainer
from thrifty.engine.assembly import infer_classes


class Plain(Dataset):
    """A user's dataset: ``targets`` but no ``classes``."""

    def __init__(self, n=40, classes=4):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 8, generator=g)
        self.targets = (torch.arange(n) % classes).tolist()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.targets[i]


def test_classes_are_inferred_from_the_targets_when_absent():
    data = Plain(classes=4)
    assert infer_classes(data, torch.tensor(data.targets)) == (4, None)
    with pytest.raises(ValueError, match="has label -1 at index 1"):
        infer_classes(data, torch.tensor([0, -1]))
    with pytest.raises(ValueError, match="classes"):
        infer_classes(data, torch.empty(0, dtype=torch.long))


def test_a_user_dataset_without_classes_trains(tiny_config):
    cfg = tiny_config(epochs=1, model="mlp", dataset="synthetic")
    result = Trainer(cfg, train=Plain(), test=Plain(16), log=lambda s: None).fit()
    assert result["status"] == "finished" and result["final"]["samples_trained"] == 40


class Refuses(EpochSampler):
    name = "refuses"

    def __init__(self):
        super().__init__()
        self.seen: list[Pieces] = []

    def check_composition(self, pieces):
        self.seen.append(pieces)
        if not pieces.selector.identity:
            raise ValueError("refuses a selector")


class Picky(BatchSelector):
    name = "picky"
    identity = False


def test_composition_is_checked_once_before_any_work(tiny_config, digits):
    sampler = Refuses()
    with pytest.raises(ValueError, match="refuses a selector"):
        Trainer(tiny_config(), train=digits[0], test=digits[1], sampler=sampler,
                selector=Picky(), log=lambda s: None)
    assert len(sampler.seen) == 1 and sampler.seen[0].sampler is sampler
    assert not list(Path(tiny_config().out_dir).glob("*/result.json"))  # nothing written


def test_the_engine_context_follows_the_run_folder_and_offers_its_services(tiny_config,
                                                                           digits):
    seen = {}

    class Looks(EpochSampler):
        name = "looks"

        def begin_epoch(self, ctx):
            seen.update(run_dir=ctx.run_dir, model=ctx.model, device=ctx.device,
                        classes=ctx.classes, config=ctx.config)
            losses, logits = ctx.score(self.pool[:5])
            seen["scored"] = (losses.shape, logits.shape)
            super().begin_epoch(ctx)

    cfg = tiny_config(epochs=1, run_name="same")
    Trainer(cfg, train=digits[0], test=digits[1], log=lambda s: None).fit()
    trainer = Trainer(cfg, train=digits[0], test=digits[1], sampler=Looks(),
                      log=lambda s: None)
    result = trainer.fit()
    assert str(seen["run_dir"]).endswith("same-1")  # the suffixed folder, not the finished one
    assert seen["model"] is trainer.model and seen["config"] is trainer.config
    assert seen["scored"] == (torch.Size([5]), torch.Size([5, 10]))
    assert result["epochs"][0]["samples_forwarded"] == 5
    assert trainer.record.loss_kind[trainer.sampler.pool[:5]].tolist() != [0] * 5


def test_result_records_what_actually_ran(tiny_config, digits):
    from thrifty.sampling import InfoBatch

    cfg = tiny_config(epochs=1)
    result = Trainer(cfg, train=Plain(), test=Plain(16),
                     model=torch.nn.Sequential(torch.nn.Linear(8, 4)),
                     sampler=InfoBatch(prune_ratio=0.3), log=lambda s: None).fit()
    assert result["dataset"]["source"] == "given" and result["dataset"]["class"] == "Plain"
    assert result["dataset"]["num_classes"] == 4
    assert result["model"] == {"class": "Sequential", "source": "given", "parameters": 36}
    sampler = result["methods"]["objects"]["sampler"]
    assert result["methods"]["source"] == "given" and sampler["name"] == "infobatch"
    assert sampler["class"].endswith("InfoBatch") and sampler["params"]["prune_ratio"] == 0.3
    named = Trainer(tiny_config(epochs=1, method=["rpc"], method_args={"alpha": 0.5},
                                run_name="named"), log=lambda s: None).fit()
    assert named["methods"]["source"] == "config" and named["dataset"]["source"] == "config"
    assert named["methods"]["objects"]["reducer"]["params"]["alpha"] == 0.5


def test_label_noise_relabels_a_seeded_share_of_the_training_set_only(tiny_config, digits):
    train, test = digits
    cfg = tiny_config(epochs=1, label_noise=0.2, run_name="noisy")
    trainer = Trainer(cfg, train=train, test=test, log=lambda s: None)
    flipped = trainer.noisy
    assert len(flipped) == round(0.2 * len(train))
    assert (trainer.labels[flipped] != train.y[flipped]).all()  # never the true class
    keep = torch.ones(len(train), dtype=torch.bool)
    keep[flipped] = False
    assert torch.equal(trainer.labels[keep], train.y[keep])
    assert torch.equal(trainer.test_data.y, test.y)  # the test set keeps the truth
    again = Trainer(tiny_config(epochs=1, label_noise=0.2, run_name="again"), train=train,
                    test=test, log=lambda s: None)
    assert torch.equal(again.noisy, flipped)  # seeded
    result = trainer.fit()
    assert result["dataset"]["label_noise"] == {"share": 0.2, "relabelled": len(flipped)}
    assert result["config"]["label_noise"] == 0.2
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match=r"label_noise .* \[0, 1\)"):
            tiny_config(label_noise=bad)
    with pytest.raises(ValueError, match="option 'label_noise' must be a number"):
        tiny_config(label_noise="some")
