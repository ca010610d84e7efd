"""Tests of the curricula (LILAC, CAPER) and a shared context factory."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from thrifty.engine import SampleRecord, TrainContext, Trainer
from thrifty.engine.checkpoint import load_checkpoint


def make_ctx(labels: torch.Tensor, epochs: int = 10, batch_size: int = 16, seed: int = 0,
             num_classes: int | None = None) -> TrainContext:
    """A :class:`TrainContext` over ``labels`` without a Trainer (``score`` must not run)."""

    def no_score(indices: torch.Tensor):
        raise AssertionError("this method must not call ctx.score")

    return TrainContext(epoch=0, epochs=epochs, record=SampleRecord(len(labels)),
                        batch_size=batch_size, seed=seed,
                        generator=torch.Generator().manual_seed(seed), score=no_score,
                        num_classes=num_classes or int(labels.max()) + 1, labels=labels)


def resume_from_epoch_start(config, data, make_sampler, epoch: int, tmp_path: Path):
    """Train once straight through (``ref``); train again and copy the epoch-boundary
    checkpoint that the engine saved before ``epoch`` (``checkpoint_every=1``) when that
    epoch's first batch is done; resume a fresh trainer from the copy. Asserts equal final
    weights; returns ``(ref, resumed, resumed_result)``."""
    train, test = data

    def make(name: str) -> Trainer:
        return Trainer(config(run_name="r", out_dir=str(tmp_path / name), checkpoint_every=1),
                       train=train, test=test, sampler=make_sampler(), log=lambda s: None)

    ref = make("ref")
    ref.fit()
    copy = tmp_path / "copy" / "r"

    def grab(tr: Trainer) -> None:
        if tr.ctx.epoch == epoch and not copy.exists():
            copy.mkdir(parents=True)
            shutil.copy(tr.run_dir / "checkpoint.pt", copy / "checkpoint.pt")

    first = make("first")
    first.on_batch_end = grab
    first.fit()
    state = load_checkpoint(copy / "checkpoint.pt")
    assert state["epoch"] == epoch and state["position"] is None  # an epoch boundary
    resumed = Trainer.resume(copy, train=train, test=test, sampler=make_sampler(),
                             log=lambda s: None)
    result = resumed.fit()
    a, b = ref.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    return ref, resumed, result
