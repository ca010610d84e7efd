"""PyTorch Lightning: thrifty's samplers and selectors inside ``lightning.Trainer.fit``
(optional extra ``thrifty[lightning]``).

::

    thrift = Thrift("infobatch", train_set, epochs=8)

    class Model(L.LightningModule):
        def train_dataloader(self):
            loader = DataLoader(thrift.dataset, batch_size=128, sampler=thrift.sampler)
            return thrift.loader(loader, self)            # each pass: one thrifty epoch
        def training_step(self, batch, batch_idx):
            x, y, idx = batch
            return thrift.loss(F.cross_entropy(self(x), y, reduction="none"), idx)

    L.Trainer(max_epochs=8, callbacks=[ThriftyCallback(thrift)]).fit(Model())

The loader has no length, so Lightning runs each epoch to the sampler's own end, whether
or not dataloaders are reloaded (``reload_dataloaders_every_n_epochs``); a loader sized
before the sampler chose the epoch's samples would cut the epoch or pad it. Lightning
iterates a reloaded loader twice per epoch (once to set it up, once to run it): the second
pass continues the first (see :class:`~thrifty.integrations.own_loop.ThriftLoader`). The callback
checks the wiring, logs the work counts of each epoch through Lightning's logger
(``thrifty/loaded``, ``thrifty/forwarded``, ``thrifty/trained``, ``thrifty/steps``), and
saves thrifty's state (record, methods) in Lightning's checkpoints.
"""

from __future__ import annotations

from typing import Any

try:
    import lightning.pytorch as pl
except ModuleNotFoundError as exc:  # pragma: no cover - exercised without the extra
    raise ModuleNotFoundError(
        "thrifty.integrations.lightning needs PyTorch Lightning: "
        "pip install 'thrifty[lightning]'") from exc

from thrifty.integrations.own_loop import Thrift, ThriftLoader, process_group


class ThriftyCallback(pl.Callback):
    """Drive a :class:`~thrifty.Thrift` from ``lightning.Trainer.fit``.

    Args:
        thrift: the :class:`~thrifty.Thrift` whose ``loader(...)`` the LightningModule's
            ``train_dataloader`` returns.
    """

    def __init__(self, thrift: Thrift) -> None:
        self.thrift = thrift

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.world_size > 1:
            if not self.thrift.pieces.selector.identity:
                raise RuntimeError(
                    f"in-batch selector {self.thrift.pieces.selector.name!r} keeps different "
                    "numbers of samples on each rank, so ranks would take different numbers "
                    "of steps, which Lightning's DDP cannot join (it would hang): run it in "
                    "your own loop under torchrun (thrift.epoch(loader, ddp_model, "
                    "optimizer=opt)) or in thrifty's engine")
            # Lightning started the process group after the Thrift was made: join it, so
            # every rank shares one choice and one record
            self.thrift.core.distribute(process_group())
        # Lightning numbers the epochs; a second pass over a loader in one epoch continues it
        self.thrift.framework_epoch = lambda: trainer.current_epoch

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loaders = getattr(trainer.fit_loop, "_combined_loader", None)
        flat = loaders.flattened if loaders is not None else []
        if not any(isinstance(dl, ThriftLoader) and dl.thrift is self.thrift for dl in flat):
            raise RuntimeError(
                "ThriftyCallback: the train dataloader is not this Thrift's: return "
                "thrift.loader(DataLoader(thrift.dataset, batch_size=..., "
                "sampler=thrift.sampler), self) from train_dataloader()")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # before ModelCheckpoint (Lightning calls monitoring callbacks last): the state it
        # saves is the ended epoch's
        self.thrift.end_epoch()
        counts = {f"thrifty/{k}": float(v) for k, v in self.thrift.epoch_counts.items()}
        # the counts are global already (the same on every rank): the mean over ranks keeps them
        pl_module.log_dict(counts, on_step=False, on_epoch=True, sync_dist=True)

    def state_dict(self) -> dict[str, Any]:
        return {"thrift": self.thrift.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.thrift.load_state_dict(state_dict["thrift"])
