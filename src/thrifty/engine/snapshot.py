"""A warm-up copy of a run's model trained with the run's recipe and no method (the
snapshot embedder of IDS/SSP), for any trainer class: the engine's loop passes its own
(``ctx.warmup``), :func:`thrifty.engine.warmup.warm_up` the engine's by hand. This module
imports neither, so no engine file imports another in a circle."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from thrifty.data.tensor import limited
from thrifty.engine.checkpoint import rng_state, set_rng_state
from thrifty.engine.config import RunConfig

# Test samples the warm-up evaluates on (its accuracy is informational only).
WARMUP_TEST_LIMIT = 2000


def train_copy(trainer_cls: Any, config: RunConfig, model: nn.Module, train: Any, test: Any,
               epochs: int, *, device: torch.device | str = "cpu", progress: bool = True,
               log: Callable[[str], None] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``model`` (in place) for ``epochs`` with ``config``'s recipe and no method.

    The run is written to a temporary folder that is deleted afterwards (no periodic
    checkpoints, no train-set statistics), evaluated on at most :data:`WARMUP_TEST_LIMIT`
    test samples, and the global RNG state is restored afterwards, so whatever calls it
    continues as if it had not run.

    Args:
        trainer_cls: the trainer class (:class:`~thrifty.engine.loop.Trainer`).
        config: the run's config (recipe, model, batch size, seed).
        model: the model to train (its initial weights).
        train, test: the datasets.
        epochs: warm-up epochs (at least 1).
        device: where to train. Default CPU.
        progress: progress bars. Default ``True``.
        log: prints each epoch's line, prefixed with ``snapshot warm-up:``. Default
            ``None``: ``print``.

    Returns:
        ``(model, result)``: the trained model and the warm-up run's result dict.
    """
    say = log or print
    with tempfile.TemporaryDirectory(prefix="thrifty-snapshot-") as tmp:
        cfg = dataclasses.replace(
            config, epochs=epochs, method=[], method_args={}, checkpoint_every=0,
            train_stats_every=-1, attack="none", out_dir=tmp, run_name="snapshot",
            train_limit=None, test_limit=None, device=str(device), progress=progress)
        # the same samples as the run's own test limit would pick, for any dataset
        test = limited(test, min(config.test_limit or WARMUP_TEST_LIMIT, WARMUP_TEST_LIMIT),
                       seed=config.seed)
        saved_rng = rng_state()
        try:
            warm = trainer_cls(cfg, train=train, test=test, model=model, distributed=False,
                               log=lambda s: say(f"snapshot warm-up: {s}"))
            result = warm.fit()
        finally:
            set_rng_state(saved_rng)
    return warm.model, result
