"""Per-epoch samplers: which samples are loaded each epoch (random-adaptive, loss-adaptive,
InfoBatch) and the ratio schedules they share."""

from thrifty.sampling.base import RenewingSampler, draw_generator
from thrifty.sampling.infobatch import InfoBatch, anneal_start
from thrifty.sampling.loss_adaptive import LossAdaptive, selection_weights, weighted_draw
from thrifty.sampling.random_adaptive import RandomAdaptive
from thrifty.sampling.schedules import (
    MEAN_OVER,
    SHAPES,
    EpochRatio,
    RatioSchedule,
    check_ratio,
    last_renewal,
    subset_size,
)

__all__ = [
    "MEAN_OVER", "SHAPES", "EpochRatio", "InfoBatch", "LossAdaptive", "RandomAdaptive",
    "RatioSchedule", "RenewingSampler", "anneal_start", "check_ratio", "draw_generator",
    "last_renewal", "selection_weights", "subset_size", "weighted_draw",
]
