"""Metrics: loss statistics, and (with the benchmark) boosts and time-to-target."""

from thrifty.metrics.losses import QUANTILES, loss_ratios, loss_statistics

__all__ = ["QUANTILES", "loss_ratios", "loss_statistics"]
