"""A warm-up copy of a run's model trained with the run's recipe and no method (the
snapshot embedder of IDS/SSP). Inside a run the methods call it through ``ctx.warmup``
without seeing the engine; by hand, :func:`warm_up` runs it. One direction only: this
module uses the engine's loop, the loop does not import it."""

from __future__ import annotations

from thrifty.engine.loop import WARMUP_TEST_LIMIT, Trainer
from thrifty.engine.signals import TrainingInterrupted

__all__ = ["WARMUP_TEST_LIMIT", "TrainingInterrupted", "warm_up"]

#: ``warm_up(config, model, train, test, epochs, *, device="cpu", progress=True, log=None)``:
#: see :meth:`~thrifty.engine.loop.Trainer.warm_up`.
warm_up = Trainer.warm_up
