"""Single-shot pruning after training (MINT, SNACS, magnitude/random baselines) and the
utilities they share with CAPER (seed 003).

Functional forms: :func:`mint_prune`, :func:`snacs_prune`, :func:`baseline_prune` (each
returns a :class:`PruneResult` with ``masks`` and a ``report``); thin classes :class:`MINT`,
:class:`SNACS`, :class:`MagnitudePruning` and :class:`RandomPruning`, registered as the
``pruner`` methods ``mint``, ``snacs``, ``magnitude`` and ``random`` of
:mod:`thrifty.methods`; estimators :func:`gmi_mst` and :func:`acmi_hash`. The command line is
``thrifty prune`` (:mod:`thrifty.pruning.command`).
"""

from thrifty.pruning.baselines import (
    BaselineConfig,
    MagnitudePruning,
    RandomPruning,
    baseline_prune,
    magnitude_prune,
    random_prune,
)
from thrifty.pruning.core import PruneResult
from thrifty.pruning.estimators import acmi_hash, gmi_mst
from thrifty.pruning.groups import LayerPair, layer_pairs
from thrifty.pruning.mint import MINT, MintConfig, mint_prune
from thrifty.pruning.snacs import SNACS, SnacsConfig, snacs_prune
from thrifty.utils.masks import (
    apply_masks,
    load_masks,
    prunable_layers,
    pruned_share,
    remove_masks,
    save_masks,
)
from thrifty.utils.sensitivity import filter_sensitivity, protected_filters
from thrifty.utils.taps import balanced_subset, collect_activations, tap

__all__ = ["MINT", "SNACS", "BaselineConfig", "LayerPair", "MagnitudePruning", "MintConfig",
           "PruneResult", "RandomPruning", "SnacsConfig",
           "acmi_hash", "apply_masks", "balanced_subset", "baseline_prune",
           "collect_activations", "filter_sensitivity", "gmi_mst", "layer_pairs", "load_masks",
           "magnitude_prune", "mint_prune", "protected_filters", "prunable_layers",
           "pruned_share", "random_prune", "remove_masks", "save_masks", "snacs_prune", "tap"]
