"""Helpers for the sampler tests: a TrainContext without a Trainer, and a resume check."""

from __future__ import annotations

import pytest
import torch

from thrifty.engine import SampleRecord, TrainContext, Trainer, TrainingInterrupted


class FakeScore:
    """``ctx.score`` stand-in: returns ``losses[indices]`` and counts the scored samples."""

    def __init__(self, losses: torch.Tensor) -> None:
        self.losses = losses
        self.calls: list[int] = []

    def __call__(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls.append(len(indices))
        return self.losses[indices], torch.zeros(len(indices), 2)


@pytest.fixture
def make_ctx():
    """``make_ctx(labels, epochs=..., losses=None, seed=0)``: a context over ``labels``."""

    def make(labels: torch.Tensor, epochs: int = 10, losses: torch.Tensor | None = None,
             seed: int = 0) -> TrainContext:
        n = len(labels)
        score = FakeScore(torch.rand(n) if losses is None else losses)
        return TrainContext(epoch=0, epochs=epochs, record=SampleRecord(n), batch_size=16,
                            seed=seed, generator=torch.Generator().manual_seed(seed),
                            score=score, num_classes=int(labels.max()) + 1, labels=labels)

    return make


def drive(sampler, ctx: TrainContext, epochs: range) -> list[torch.Tensor]:
    """Run the engine's per-epoch calls; return the list of indices yielded per epoch."""
    orders = []
    for t in epochs:
        ctx.epoch = t
        sampler.set_epoch(t)
        sampler.begin_epoch(ctx)
        orders.append(torch.tensor(list(iter(sampler))))
    return orders


def weights_of(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_resume_equals_uninterrupted(config, data, make_sampler, stop_at_batch: int) -> dict:
    """Train once straight through and once interrupted after ``stop_at_batch`` forward
    batches then resumed with a fresh sampler; assert equal final weights and per-epoch
    counts. Returns the resumed run's result."""
    train, test = data
    ref = Trainer(config(run_name="ref"), train=train, test=test, sampler=make_sampler(),
                  log=lambda s: None)
    ref.fit()
    seen = {"batches": 0}

    def interrupt(trainer):
        seen["batches"] += 1
        if seen["batches"] == stop_at_batch:
            trainer.request_stop()

    cut = Trainer(config(run_name="cut"), train=train, test=test, sampler=make_sampler(),
                  on_batch_end=interrupt, log=lambda s: None)
    with pytest.raises(TrainingInterrupted):
        cut.fit()
    resumed = Trainer.resume(cut.run_dir, train=train, test=test, sampler=make_sampler(),
                             log=lambda s: None)
    result = resumed.fit()
    a, b = weights_of(ref.model), weights_of(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    keys = ("samples_loaded", "samples_forwarded", "samples_trained", "method")
    assert [{k: e[k] for k in keys} for e in result["epochs"]] == [
        {k: e[k] for k in keys} for e in ref.history]
    return result
