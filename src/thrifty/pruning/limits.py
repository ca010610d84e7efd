"""Upper pruning limits gamma per layer from RBF-SVM accuracies (seed 003, SNACS §4.2.4, §0.6).

For each pruned layer and each compression level ``c``: cut the layer's lowest-score
connections up to ``c`` of its weights (only this layer), recompute the layer's output on
the activation subset, and measure the accuracy ``alpha_c`` of an RBF-SVM
(``sklearn.svm.SVC(random_state=0, tol=1e-5)``, C = 1) trained on the layer's *unpruned*
activations (ReLU-clamped spatial means) and tested on the *pruned* ones. Then a global
accuracy threshold ``theta`` gives ``gamma_l(theta)`` = the largest ``c`` with
``alpha_c >= theta`` (0 when none), and ``theta`` is chosen so that
``sum_l beta_l s_l`` is closest to the target sparsity ``tau`` (ties: the higher
``theta``), ``beta_l`` = the layer's share of the pruned layers' weights and ``s_l`` the
share the layer's mask at level ``gamma_l`` actually cuts (less than ``gamma_l`` when
protected filters or a ``delta`` threshold keep connections).

Decisions (spec §6, ambiguity 7): the SVM is trained and tested on the same samples (the
activation subset, as the reference code; no split), it is fitted once per layer (the
training data do not change with ``c``), the levels are ``step/2, 3 step/2, ... < 100``
percent (``step=2``: 1, 3, ..., 99, the reference grid; ``step=10``: 5, 15, ..., 95, a coarse
grid), ``theta`` runs over every distinct measured accuracy (exact, no resolution), and the
connections are cut in the same order (phi-weighted score, protected filters kept) as the
final pruning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from sklearn.svm import SVC
from torch import nn
from torch.func import functional_call

from thrifty.utils.taps import spatial_mean

#: ``cut_mask(level) -> weight-shaped bool mask (True = kept)`` of one layer
MaskAtLevel = Callable[[float], torch.Tensor]


def compression_levels(step: float = 2.0) -> np.ndarray:
    """Levels ``c`` (shares in (0, 1)): ``step/2, 3 step/2, ...`` percent below 100."""
    if not 0 < step < 100:
        raise ValueError(f"svm_step (percent between compression levels) must be in (0, 100), "
                         f"got {step}")
    return np.arange(step / 2, 100, step) / 100


@torch.no_grad()
def layer_inputs(model: nn.Module, inputs: torch.Tensor, layers: list[str],
                 batch_size: int = 512) -> dict[str, torch.Tensor]:
    """The inputs that the named modules receive for ``inputs`` (eval mode, no grad)."""
    modules = dict(model.named_modules())
    store: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    handles = [modules[n].register_forward_pre_hook(
        lambda _m, args, n=n: store[n].append(args[0].detach())) for n in layers]
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        for start in range(0, len(inputs), batch_size):
            model(inputs[start:start + batch_size].to(device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return {n: torch.cat(v) for n, v in store.items()}


@torch.no_grad()
def masked_output(module: nn.Module, layer_input: torch.Tensor, mask: torch.Tensor
                  ) -> np.ndarray:
    """ReLU-clamped spatial-mean output ``[N, C]`` of ``module`` with its weight masked."""
    params = {"weight": module.weight.detach() * mask.to(module.weight.device)}
    out = spatial_mean(functional_call(module, params, (layer_input,)))
    return out.clamp_min(0).double().cpu().numpy()


def svm_accuracy_curve(module: nn.Module, layer_input: torch.Tensor, labels: np.ndarray,
                       mask_at: MaskAtLevel, levels: np.ndarray) -> np.ndarray:
    """``alpha_c`` for every level: SVM fitted on the unpruned output, tested on pruned ones.

    Args:
        module: the pruned layer.
        layer_input: what the layer receives for the activation subset.
        labels: the subset's labels.
        mask_at: the layer's mask at a compression level.
        levels: compression levels (shares).
    """
    full = torch.ones_like(module.weight, dtype=torch.bool)
    svm = SVC(random_state=0, tol=1e-5).fit(masked_output(module, layer_input, full), labels)
    return np.array([svm.score(masked_output(module, layer_input, mask_at(c)), labels)
                     for c in levels])


def gammas_at(curves: Mapping[str, np.ndarray], levels: np.ndarray, theta: float
              ) -> dict[str, float]:
    """``gamma_l(theta)``: the largest level whose accuracy is at least ``theta`` (else 0)."""
    return {name: float(levels[acc >= theta].max()) if (acc >= theta).any() else 0.0
            for name, acc in curves.items()}


def shares_at(curves: Mapping[str, np.ndarray], levels: np.ndarray, theta: float,
              reached: Mapping[str, np.ndarray] | None = None) -> dict[str, float]:
    """The share each layer loses at ``theta``: ``gamma_l(theta)`` itself, or (``reached``:
    per layer, the share actually cut at each level) the share cut at that level."""
    if reached is None:
        return gammas_at(curves, levels, theta)
    return {name: float(reached[name][np.flatnonzero(acc >= theta).max()])
            if (acc >= theta).any() else 0.0 for name, acc in curves.items()}


def match_sparsity(curves: Mapping[str, np.ndarray], levels: np.ndarray,
                   betas: Mapping[str, float], tau: float,
                   reached: Mapping[str, np.ndarray] | None = None
                   ) -> tuple[float, dict[str, float]]:
    """The ``theta`` (and its gammas) whose ``sum beta_l share_l`` is closest to ``tau``.

    Args:
        curves: per layer, the SVM accuracy at each level.
        levels: the compression levels.
        betas: per layer, its share of the pruned layers' weights.
        tau: the target sparsity.
        reached: per layer, the share actually cut at each level (default ``None``: the
            level itself). Protected filters or a ``delta`` threshold can make a layer lose
            less than the level asks; matching on ``reached`` makes ``tau`` the sparsity
            the final masks have (as near as the levels allow).

    Raises:
        ValueError: ``tau`` is more than the largest sparsity reachable (every layer at the
            highest level; with ``reached``, what the masks cut there). Pushing the
            unprotected layers to the highest level instead would wreck them.
    """
    reachable = sum(betas.values()) * float(levels.max())
    if tau > reachable + 1e-9:
        raise ValueError(f"tau={tau} cannot be reached: the highest compression level "
                         f"{levels.max():.2f} gives {reachable:.3f}; lower tau or svm_step")
    if reached is not None:
        most = sum(betas[n] * float(np.max(reached[n])) for n in curves)
        if tau > most + 1e-9:
            raise ValueError(f"tau={tau} cannot be reached: with the protected filters (or "
                             f"delta) the masks cut at most {most:.3f} of the pruned layers' "
                             "weights; lower tau or protect")
    thetas = np.unique(np.concatenate([*curves.values(), [0.0]]))[::-1]
    best = min(thetas, key=lambda t: abs(sum(betas[n] * g for n, g in
                                             shares_at(curves, levels, t, reached).items())
                                         - tau))
    return float(best), gammas_at(curves, levels, best)
