"""The training engine: config, loop, work accounting, checkpoints, and the contract
between methods and whatever drives them (reducer -> sampler -> selector, one typed context,
one selection step).

Names are imported on first use, so that the command line's help and argument errors do not
wait for PyTorch (``thrifty.engine.config`` needs only the standard library and PyYAML).
"""

from __future__ import annotations

from thrifty.utils.lazy import lazy_exports

_WHERE = {
    "PHASES": "accounting", "EpochStats": "accounting",
    "COUNT_KEYS": "core", "RunCore": "core",
    "WORKLOADS": "config", "RunConfig": "config", "make_config": "config",
    "cross_entropy_losses": "forward", "no_grad_forward": "forward",
    "BatchSelector": "interfaces", "EpochSampler": "interfaces", "MethodBase": "interfaces",
    "PackingRule": "interfaces", "Pieces": "interfaces", "Reducer": "interfaces",
    "SelectionError": "interfaces", "SelectionInput": "interfaces",
    "TrainContext": "interfaces",
    "NonFiniteLossError": "loop", "Trainer": "loop", "TrainingInterrupted": "signals",
    "build_optimizer": "optim", "build_scheduler": "optim",
    "Packer": "packing",
    "LOSS_KINDS": "record", "SampleRecord": "record",
    "SelectionStep": "step", "StepResult": "step",
}

__all__, __getattr__, __dir__ = lazy_exports("thrifty.engine", _WHERE, globals())
