"""Curricula (seed 003): LILAC (incremental labels, adaptive compensation) and CAPER
(one-shot removal of noise-sensitive samples). Both are per-epoch samplers."""

from thrifty.curriculum.caper import (
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
from thrifty.curriculum.lilac import Lilac, balanced_order, compensated_targets

__all__ = ["Caper", "Lilac", "balanced_order", "compensated_targets", "feature_layers",
           "feature_shift", "layer_channels", "layer_sensitivity", "most_sensitive",
           "next_consumer", "noise_scores", "removal_count", "top_channels",
           "window_layers"]
