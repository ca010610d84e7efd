"""Single-shot pruning after training (MINT, SNACS) and the utilities they share with CAPER."""

from thrifty.pruning.activations import balanced_subset, collect_activations, tap
from thrifty.pruning.masks import (
                                   apply_masks,
                                   load_masks,
                                   prunable_layers,
                                   pruned_share,
                                   remove_masks,
                                   save_masks,
)
from thrifty.pruning.sensitivity import filter_sensitivity, protected_filters

__all__ = ["apply_masks", "balanced_subset", "collect_activations", "filter_sensitivity",
           "load_masks", "protected_filters", "prunable_layers", "pruned_share", "remove_masks",
           "save_masks", "tap"]
