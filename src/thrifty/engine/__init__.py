"""The training engine: config, loop, work accounting, checkpoints, and the contract
between methods and whatever drives them (reducer -> sampler -> selector, one typed context,
one selection step)."""

from thrifty.engine.accounting import PHASES, EpochStats
from thrifty.engine.config import WORKLOADS, RunConfig, make_config
from thrifty.engine.forward import cross_entropy_losses, no_grad_forward
from thrifty.engine.interfaces import (
    BatchSelector,
    EpochSampler,
    MethodBase,
    PackingRule,
    Pieces,
    Reducer,
    SelectionError,
    SelectionInput,
    TrainContext,
)
from thrifty.engine.loop import NonFiniteLossError, Trainer, TrainingInterrupted
from thrifty.engine.optim import build_optimizer, build_scheduler
from thrifty.engine.packing import Packer
from thrifty.engine.record import LOSS_KINDS, SampleRecord
from thrifty.engine.step import SelectionStep, StepResult

__all__ = [
    "LOSS_KINDS", "PHASES", "WORKLOADS", "BatchSelector", "EpochSampler", "EpochStats",
    "MethodBase", "NonFiniteLossError", "Packer", "PackingRule", "Pieces", "Reducer",
    "RunConfig", "SampleRecord", "SelectionError", "SelectionInput", "SelectionStep",
    "StepResult", "TrainContext", "Trainer", "TrainingInterrupted", "build_optimizer",
    "build_scheduler", "cross_entropy_losses", "make_config", "no_grad_forward",
]
