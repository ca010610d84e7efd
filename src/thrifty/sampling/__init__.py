"""Per-epoch samplers: which samples are loaded each epoch (random-adaptive, loss-adaptive,
InfoBatch, ASSIST epochwise) and the curricula of seed 003 (LILAC: incremental labels and
adaptive compensation; CAPER: one-shot removal of noise-sensitive samples). The ratio
schedules they share live in :mod:`thrifty.utils.schedules` and are re-exported here."""

from thrifty.sampling.base import RenewingSampler
from thrifty.sampling.caper import (
    Caper,
    feature_layers,
    feature_shift,
    layer_channels,
    layer_sensitivity,
    most_sensitive,
    next_consumer,
    noise_scores,
    removal_count,
    top_channels,
    window_layers,
)
from thrifty.sampling.infobatch import InfoBatch, anneal_start
from thrifty.sampling.kakurenbo import Kakurenbo, fraction_at
from thrifty.sampling.lilac import Lilac, balanced_order, compensated_targets
from thrifty.sampling.loss_adaptive import LossAdaptive, selection_weights, weighted_draw
from thrifty.sampling.random_adaptive import RandomAdaptive
from thrifty.sampling.rs2 import RS2
from thrifty.sampling.seta import SeTa, loss_groups, window_start
from thrifty.utils.random import draw_generator
from thrifty.utils.schedules import (
    MEAN_OVER,
    SHAPES,
    EpochRatio,
    RatioSchedule,
    check_ratio,
    last_renewal,
    subset_size,
)

__all__ = [
    "MEAN_OVER", "SHAPES", "Caper", "EpochRatio", "InfoBatch", "Lilac", "LossAdaptive",
    "RS2", "RandomAdaptive", "SeTa", "balanced_order", "loss_groups", "window_start",
    "Kakurenbo", "compensated_targets", "feature_layers", "fraction_at",
    "feature_shift", "layer_channels", "layer_sensitivity", "most_sensitive",
    "next_consumer", "noise_scores", "removal_count", "top_channels", "window_layers",
    "RatioSchedule", "RenewingSampler", "anneal_start", "check_ratio", "draw_generator",
    "last_renewal", "selection_weights", "subset_size", "weighted_draw",
]
