"""The Lightning callback with the real package on tiny data: every sample the method chose
is trained, with and without dataloaders reloaded every epoch; work counts are logged."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

L = pytest.importorskip("lightning.pytorch")

from thrifty import Thrift  # noqa: E402
from thrifty.data import load_digits  # noqa: E402
from thrifty.integrations.lightning import ThriftyCallback  # noqa: E402


class Digits(TensorDataset):
    def __init__(self):
        data = load_digits()[0]
        super().__init__(data.x, data.y)
        self.targets = data.y


class Model(L.LightningModule):
    def __init__(self, thrift, wire=True):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        self.thrift, self.wire = thrift, wire
        self.trained: list[list[int]] = []

    def forward(self, x):
        return self.net(x)

    def train_dataloader(self):
        loader = DataLoader(self.thrift.dataset, batch_size=64, sampler=self.thrift.sampler)
        return self.thrift.loader(loader, self) if self.wire else loader

    def on_train_epoch_start(self):
        self.trained.append([])

    def training_step(self, batch, batch_idx):
        x, y, idx = batch
        self.trained[-1] += idx.tolist()
        return self.thrift.loss(F.cross_entropy(self(x), y, reduction="none"), idx)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(model, thrift, epochs, tmp_path, **kwargs):
    trainer = L.Trainer(max_epochs=epochs, callbacks=[ThriftyCallback(thrift)],
                        accelerator="cpu", devices=1, logger=L.loggers.CSVLogger(tmp_path),
                        enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, num_sanity_val_steps=0, **kwargs)
    trainer.fit(model)
    return trainer


@pytest.mark.parametrize("reload", [0, 1])
def test_each_epoch_trains_exactly_the_samplers_choice(tmp_path, reload):
    thrift = Thrift("random-adaptive", Digits(), epochs=3,
                    method_args={"ratio": 0.4, "period": 1})
    orders = []
    real = thrift.start_epoch

    def spy(epoch=None):
        real(epoch)
        orders.append(thrift._order.tolist())

    thrift.start_epoch = spy
    model = Model(thrift)
    trainer = _fit(model, thrift, 3, tmp_path, reload_dataloaders_every_n_epochs=reload)
    assert [sorted(t) for t in model.trained] == [sorted(o) for o in orders]
    assert len(orders) == 3 and len(set(map(tuple, orders))) == 3  # renewed each epoch
    assert trainer.global_step == thrift.counts["steps"]
    logged = trainer.logged_metrics
    assert logged["thrifty/trained"].item() == len(orders[-1])
    assert logged["thrifty/loaded"].item() == len(orders[-1])


def test_a_selector_inside_lightning_trains_fewer_samples_than_loaded(tmp_path):
    thrift = Thrift("sb", Digits(), epochs=2, batch_size=32)
    model = Model(thrift)
    trainer = _fit(model, thrift, 2, tmp_path)
    c = thrift.counts
    assert sum(len(t) for t in model.trained) == c["trained"] < c["loaded"] == 2 * 1347
    assert trainer.logged_metrics["thrifty/forwarded"].item() == 1347
    assert trainer.global_step == c["steps"]


def test_a_module_not_wired_to_the_thrift_is_refused(tmp_path):
    thrift = Thrift("infobatch", Digits(), epochs=1)
    with pytest.raises(RuntimeError, match=r"thrift.loader\(DataLoader"):
        _fit(Model(thrift, wire=False), thrift, 1, tmp_path)


class _Kill(L.Callback):
    """Stops the run in the middle of epoch 3 (a crash; the last checkpoint is epoch 2's)."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == 2 and batch_idx == 3:
            raise RuntimeError("killed")


def _fit_checkpointed(method, folder, callbacks=(), ckpt_path=None, max_epochs=3):
    thrift = Thrift(method, Digits(), epochs=3, batch_size=32,
                    method_args={"rpc.alpha": 0.6} if "rpc" in method else None,
                    log=lambda s: None)
    model = Model(thrift)
    trainer = L.Trainer(max_epochs=max_epochs, accelerator="cpu", devices=1, logger=False,
                        callbacks=[ThriftyCallback(thrift),
                                   L.callbacks.ModelCheckpoint(dirpath=folder, save_last=True),
                                   *callbacks],
                        enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0)
    trainer.fit(model, ckpt_path=ckpt_path)
    return thrift, model


@pytest.mark.parametrize("method", ["infobatch", "random-adaptive", "stale-sb", "rpc+sb"])
def test_resume_from_lightnings_checkpoint_equals_the_uninterrupted_run(tmp_path, method):
    whole, whole_model = _fit_checkpointed(method, tmp_path / "whole")
    with pytest.raises(RuntimeError, match="killed"):
        _fit_checkpointed(method, tmp_path / "cut", callbacks=[_Kill()])
    resumed, resumed_model = _fit_checkpointed(method, tmp_path / "cut",
                                               ckpt_path=tmp_path / "cut" / "last.ckpt")
    assert resumed.counts == whole.counts and resumed.current_epoch == 2
    assert all(torch.equal(a, b) for a, b in zip(whole_model.parameters(),
                                                  resumed_model.parameters()))


def test_more_epochs_than_the_thrift_was_told_are_refused(tmp_path):
    with pytest.raises(RuntimeError, match="set up for 3 epochs"):
        _fit_checkpointed("infobatch", tmp_path / "x", max_epochs=4)
