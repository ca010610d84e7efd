"""The training engine: config, loop, work accounting, checkpoints and the method
interfaces (reducer -> sampler -> selector)."""

from thrifty.engine.accounting import PHASES, EpochStats
from thrifty.engine.config import WORKLOADS, RunConfig, make_config
from thrifty.engine.interfaces import (
    BatchSelector,
    EpochSampler,
    PackingRule,
    Reducer,
    SelectionError,
    SelectionInput,
    TrainContext,
)
from thrifty.engine.loop import NonFiniteLossError, Trainer, TrainingInterrupted
from thrifty.engine.optim import build_optimizer, build_scheduler
from thrifty.engine.packing import Packer
from thrifty.engine.record import SampleRecord

__all__ = [
    "PHASES", "WORKLOADS", "BatchSelector", "EpochSampler", "EpochStats", "NonFiniteLossError",
    "Packer", "PackingRule", "Reducer", "RunConfig", "SampleRecord", "SelectionError",
    "SelectionInput", "TrainContext", "Trainer", "TrainingInterrupted", "build_optimizer",
    "build_scheduler", "make_config",
]
