"""CAPER: one-shot removal of the most noise-sensitive training samples (seed 003, Ch. 6).

M. R. Ganesh, PhD thesis, Univ. of Michigan, 2022, Ch. 6 ("Concurrently Achieving
Performance, Efficiency and Robustness"); code released as MichiganCOG/Q_TART (not
consulted).
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import nn

from thrifty.engine.interfaces import EpochSampler, TrainContext
from thrifty.methods import register_method
from thrifty.utils.masks import prunable_layers, weight_of
from thrifty.utils.random import draw_generator
from thrifty.utils.sensitivity import filter_sensitivity
from thrifty.utils.shares import share_count
from thrifty.utils.taps import tap

WINDOWS = ("last", "first-half", "second-half")
SCORES = ("noise", "random")


def feature_layers(model: nn.Module) -> list[str]:
    """The layers CAPER may read: the ``Conv2d`` layers in module order; for a model without
    one, its ``Linear`` layers but the last (the classifier, which has no next layer)."""
    layers = prunable_layers(model)
    convs = [n for n, m in layers.items() if isinstance(m, nn.Conv2d)]
    return convs or list(layers)[:-1]


def window_layers(model: nn.Module, window: str) -> list[str]:
    """The layers of a window: ``"last"`` (the thesis's default, 1_L), ``"first-half"``
    (1_{1:L/2}: the first ``max(1, n // 2)`` of the n layers), ``"second-half"``
    (1_{L/2:L}: the others, at least the last).

    Raises:
        ValueError: an unknown window, or a model with nothing to read.
    """
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}, got {window!r}")
    layers = feature_layers(model)
    if not layers:
        raise ValueError("CAPER reads a Conv2d layer (or, without one, a hidden Linear layer); "
                         "this model has neither")
    half = max(1, len(layers) // 2)
    return {"last": layers[-1:], "first-half": layers[:half],
            "second-half": layers[half:] or layers[-1:]}[window]


def _channels_of(model: nn.Module, layer: str) -> int:
    layers = prunable_layers(model)
    if layer not in layers:
        raise ValueError(f"{layer!r} is not a Conv2d/Linear layer of the model; its layers "
                         f"are: {', '.join(layers)}")
    return weight_of(layers[layer]).shape[0]


def next_consumer(model: nn.Module, layer: str, example: torch.Tensor
                  ) -> tuple[str, torch.Tensor]:
    """The layer that consumes exactly ``layer``'s output, traced on ``example``.

    One forward pass of ``example`` (one or a few inputs) in eval mode records ``layer``'s
    output ``[B, C, h, w]`` (or ``[B, C]``) and the input of every ``Conv2d``/``Linear``
    layer run after it. The consumer is the first of those whose input is computed from
    ``layer``'s output (a path in the autograd graph). It is accepted only when its input
    is this output channel for channel, through element-wise, normalisation, pooling or
    residual-add steps:

    - a ``Conv2d`` with ``groups=1`` whose input has exactly C channels;
    - a ``Linear`` whose input is ``[B, C]`` (after a global pooling) or ``[B, C*h*w]``
      (a flatten of the output).

    A concatenation (DenseNet: a dense layer's 32 channels joined to the block's others),
    a grouped/depthwise conv or anything else changes the count or the layout, and is
    refused rather than read as if its inputs were this layer's channels.

    Returns:
        ``(name, weight)``: the consumer and its weight reshaped to ``[N_next, C, ...]``
        (a ``[N_next, C*h*w]`` linear weight as ``[N_next, C, h*w]``).

    Raises:
        ValueError: ``layer`` is not a Conv2d/Linear layer, nothing after it uses its
            output, or its first consumer does not take exactly its C channels.
    """
    layers = prunable_layers(model)
    n = _channels_of(model, layer)
    seen: dict[str, Any] = {"out": None, "after": []}

    def grab_output(_m, _i, out):
        leaf = out.detach().requires_grad_()
        seen["out"] = leaf
        return leaf.clone()  # a non-leaf, so that in-place ReLUs after it still work

    def grab_input(name):
        def hook(_m, args):
            if seen["out"] is not None and args and isinstance(args[0], torch.Tensor):
                seen["after"].append((name, args[0]))
        return hook

    handles = [layers[layer].register_forward_hook(grab_output)]
    handles += [m.register_forward_pre_hook(grab_input(name))
                for name, m in layers.items() if name != layer]
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            model(example)
            out = seen["out"]
            if out is None:
                raise ValueError(f"layer {layer!r} did not run in the model's forward pass")
            consumer = None
            for name, x in seen["after"]:
                if x.requires_grad and torch.autograd.grad(
                        x.sum(), out, allow_unused=True, retain_graph=True)[0] is not None:
                    consumer = (name, x)
                    break
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    hint = (f"choose another layer (layers=[...] or another window) whose output feeds one "
            f"layer as is, or channels=None to average all channels of {layer!r} (no "
            "sensitivity needed)")
    if consumer is None:
        raise ValueError(f"no layer after {layer!r} takes its {n} channels as input, so its "
                         f"channel sensitivity is undefined; {hint}")
    name, x = consumer
    module = layers[name]
    w = weight_of(module).detach()
    shape = tuple(out.shape)
    spatial = math.prod(shape[2:]) if out.dim() > 2 else 1
    if isinstance(module, nn.Conv2d):
        if x.dim() == 4 and x.shape[1] == n and module.groups == 1 and w.shape[1] == n:
            return name, w
        what = (f"a grouped conv (groups={module.groups})" if module.groups != 1
                else f"an input of {x.shape[1]} channels")
    elif isinstance(module, nn.Linear):
        if x.dim() == 2 and x.shape[1] in (n, n * spatial):
            return name, w if x.shape[1] == n else w.reshape(w.shape[0], n, spatial)
        what = f"an input of shape {list(x.shape[1:])}"
    else:
        what = f"a {type(module).__name__}"
    raise ValueError(
        f"the first layer that uses {layer!r}'s output ({n} channels, shape "
        f"{list(shape[1:])}) is {name!r} with {what}: it is not this layer's output alone "
        f"(a concatenation or a regrouping), so it gives no sensitivity for these channels; "
        f"{hint}")


def layer_sensitivity(model: nn.Module, layer: str, example: torch.Tensor) -> torch.Tensor:
    """SNACS sensitivity (spec §0.5) of the channels of ``layer``, from the weight of the
    layer that consumes exactly its output (:func:`next_consumer`, traced on ``example``,
    a batch of one or a few inputs).

    Raises:
        ValueError: see :func:`next_consumer`.
    """
    _, w = next_consumer(model, layer, example)
    return filter_sensitivity(w)


def layer_channels(model: nn.Module, layer: str, channels: int | None,
                   example: torch.Tensor) -> torch.Tensor | None:
    """The channels of ``layer`` CAPER averages: ``None`` (all) when ``channels`` is ``None``
    or not below the layer's count (no sensitivity needed, no trace), else the indices of
    the ``channels`` most sensitive (:func:`layer_sensitivity`, traced on ``example``)."""
    if channels is None:
        return None
    if channels >= _channels_of(model, layer):
        return None
    return top_channels(layer_sensitivity(model, layer, example), channels)


def top_channels(sensitivity: torch.Tensor, channels: int | None) -> torch.Tensor:
    """Indices of the ``channels`` most sensitive channels (all with ``None`` or when the
    layer has fewer), highest first; ties keep the channel order."""
    order = torch.argsort(sensitivity, descending=True, stable=True)
    return order if channels is None else order[:channels]


def feature_shift(model: nn.Module, x: torch.Tensor, layers: list[str], noise_std: float,
                  generator: torch.Generator) -> dict[str, torch.Tensor]:
    """``|H(f(x)) - H(f(x + delta))|`` per channel of each layer, ``delta ~ N(0, noise_std^2)``.

    H is the spatial mean of the layer's raw output (a ``Linear`` output as is). The noise
    is drawn on the CPU from ``generator`` with the shape of ``x`` and added to ``x`` as
    given (the normalised input). Call without gradient and in the mode wanted (CAPER: eval).

    Args:
        model: the network.
        x: a batch of inputs.
        layers: module names to read.
        noise_std: standard deviation of delta (> 0).
        generator: the random source of delta.

    Returns:
        ``layer name -> [B, C]`` CPU float tensor.
    """
    delta = torch.randn(x.shape, generator=generator) * noise_std
    with tap(model, layers) as store:
        model(x)
        model(x + delta.to(device=x.device, dtype=x.dtype))
    return {n: (store[n][0] - store[n][1]).abs() for n in layers}


def noise_scores(shifts: dict[str, torch.Tensor],
                 channels: dict[str, torch.Tensor | None]) -> torch.Tensor:
    """CAPER's xi_i = sum over layers of the mean, over the chosen channels, of the
    channel-wise min-max normalised shift (thesis eqs. 6.3-6.6, window weights alpha = 1).

    Args:
        shifts: ``layer -> [N, C]`` shifts of all N samples (:func:`feature_shift`).
        channels: ``layer -> indices`` of the channels used (:func:`top_channels`), or
            ``None`` (or a missing layer) for all of them.

    Returns:
        ``[N]`` scores; a channel constant over the samples contributes 0.

    Raises:
        ValueError: no layer, or a shift that is NaN or infinite (a diverged model or
            non-finite inputs): such a sample would otherwise sort anywhere.
    """
    total = None
    for name, d in shifts.items():
        bad = ~torch.isfinite(d)
        if bad.any():
            rows = int(bad.any(1).sum())
            raise ValueError(
                f"CAPER's feature shifts of layer {name!r} are NaN or infinite for {rows} of "
                f"{len(d)} samples (the model diverged, or the inputs hold NaN/inf), so the "
                "noise scores are undefined; check the inputs, lower --lr or use --amp off")
        chosen = channels.get(name)
        d = d if chosen is None else d[:, chosen]
        low, high = d.min(0).values, d.max(0).values
        span = high - low
        normed = (d - low) / torch.where(span > 0, span, torch.ones_like(span))
        xi = normed.mean(1)
        total = xi if total is None else total + xi
    if total is None:
        raise ValueError("noise_scores needs at least one layer")
    return total


def most_sensitive(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Positions of the ``count`` highest ``scores`` (ties keep the order of the scores).

    Raises:
        ValueError: a score is NaN/infinite, or all scores are equal (every chosen channel
            is constant over the samples: the noise tells nothing, and a stable sort would
            remove the first samples of the pool).
    """
    if not torch.isfinite(scores).all():
        raise ValueError("CAPER's noise scores hold NaN or infinite values; check the model "
                         "and the inputs")
    if len(scores) > 1 and bool((scores == scores[0]).all()):
        raise ValueError(
            f"all {len(scores)} CAPER noise scores are equal ({float(scores[0]):.4g}): every "
            "chosen channel reacts to the noise the same way for every sample (dead or "
            "constant features), so there is nothing to rank. Read other layers (window= or "
            "layers=), use more channels (channels=None), raise noise_std, or use "
            "score=random for a random removal")
    return torch.argsort(scores, descending=True, stable=True)[:count]


def removal_count(remove: int | float, pool_size: int) -> int:
    """gamma: ``remove`` itself when an int, else ``remove * pool_size`` rounded to the
    nearest (at least 1; :func:`~thrifty.utils.shares.share_count`)."""
    if isinstance(remove, int):
        return remove
    return share_count(remove, pool_size, rounding="nearest")


@register_method("caper", "sampler",
                 "at epoch tau, drop the samples whose features move most under input noise "
                 "(seed 003 Ch. 6)")
class Caper(EpochSampler):
    """CAPER: at epoch tau, remove the gamma most noise-sensitive samples for good.

    Epochs before ``tau`` load the whole pool. At the start of epoch ``tau`` every pool
    sample is scored once: its clean input and the input plus Gaussian noise delta go
    through the model (eval mode, no augmentation, no gradient: counted as selection work,
    2 forwards per sample), the spatial-mean channel activations of the window's layers are
    compared (``|H f(x) - H f(x + delta)|`` per channel), min-max normalised per channel over
    the samples, averaged over the ``channels`` channels with the highest SNACS sensitivity
    (from the next layer's weights) and summed over the layers: xi_i. The ``remove`` samples
    with the highest xi are not loaded in epochs ``tau``..end. Training uses the run's label
    smoothing (``--label-smoothing``; the thesis's epsilon).

    Args:
        tau: the scoring epoch (0-based), in [0, epochs). Default ``None``: ``round(0.2 *
            epochs)`` (at most epochs - 1), the spec's small-scale choice; the thesis uses
            50 of 300 epochs, 15 of 100 on ImageNet.
        remove: gamma, samples removed: an int count (>= 1), or a float in (0, 1) as a share
            of the pool (rounded, at least 1). Default 0.01.
        noise_std: standard deviation of delta, on the normalised input, > 0. Default 0.5
            (the thesis's N(0, 0.5) read as numpy/PyTorch's ``normal(0, 0.5)``: std 0.5).
        channels: |O~|, the most sensitive channels kept per layer, >= 1, or ``None`` for all.
            Default 12 (the thesis's DenseNet/ResNet50 value; all when a layer has fewer).
            ``None`` also reads layers without a well-defined next layer (concatenations).
        window: the layers read: ``"last"`` (default), ``"first-half"``, ``"second-half"``
            of the model's Conv2d layers (hidden Linear layers for a model without one).
        layers: explicit module names instead of ``window``. Default ``None``.
        score: ``"noise"`` (CAPER, default) or ``"random"``: remove the same number of
            samples drawn uniformly at random, without any forward pass (the thesis's
            "Random" baseline).

    Decisions (spec ambiguity 11): one noise draw per sample, from a generator seeded by
    (run seed, tau), so the scores are reproducible; features in eval mode (BatchNorm
    running statistics, no dropout) on the evaluation view of the data (no augmentation);
    the raw module output is read (before BatchNorm/ReLU, as the pruning code of the
    thesis); "top gamma" is global, not per class; alpha is the window's indicator (the
    Gaussian window is not implemented); ties in xi keep the pool order, but all-equal
    scores (nothing to rank) and NaN/infinite shifts are refused with a ValueError at tau
    (:func:`most_sensitive`, :func:`noise_scores`) instead of removing the first samples
    of the pool. The channel sensitivity comes from the layer that consumes exactly the
    read layer's output, traced on one pool sample (:func:`next_consumer`); a layer whose
    output is concatenated (DenseNet) or regrouped first is refused, unless ``channels``
    is ``None`` or not below its channel count (all channels: no sensitivity). The removal
    saves ``gamma x (epochs - tau)`` sample-passes (the thesis's FLOPs saving:
    FLOPs_fwd x gamma x (E - tau)) at the cost of ``2 x pool`` forwards at tau.

    Per-epoch diagnostics: ``removed`` (samples not loaded this epoch), ``scored`` (samples
    scored this epoch), ``score_time`` (seconds of the scoring, forwards included).
    """

    name = "caper"
    _state_attrs = ("removed", "scores", "diag")

    def __init__(self, tau: int | None = None, remove: int | float = 0.01,
                 noise_std: float = 0.5, channels: int | None = 12, window: str = "last",
                 layers: list[str] | None = None, score: str = "noise") -> None:
        super().__init__()
        if tau is not None and (not isinstance(tau, int) or isinstance(tau, bool) or tau < 0):
            raise ValueError(f"tau (the scoring epoch) must be an integer >= 0 or unset, "
                             f"got {tau!r}")
        if isinstance(remove, bool) or not isinstance(remove, (int, float)) or (
                isinstance(remove, int) and remove < 1) or (
                isinstance(remove, float) and not 0.0 < remove < 1.0):
            raise ValueError(f"remove (gamma) must be a count >= 1 or a share in (0, 1), "
                             f"got {remove!r}")
        if not (isinstance(noise_std, (int, float)) and math.isfinite(noise_std)
                and noise_std > 0):
            raise ValueError(f"noise_std must be a number > 0 (default 0.5), got {noise_std!r}")
        if channels is not None and (not isinstance(channels, int) or isinstance(channels, bool)
                                     or channels < 1):
            raise ValueError(f"channels (most sensitive channels kept) must be an integer >= 1 "
                             f"or None for all, got {channels!r}")
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {', '.join(WINDOWS)}, got {window!r}")
        if score not in SCORES:
            raise ValueError(f"score must be 'noise' (CAPER) or 'random' (the baseline), "
                             f"got {score!r}")
        self.tau_arg = tau
        self.tau = 0
        self.remove = remove
        self.noise_std = float(noise_std)
        self.channels = channels
        self.window = window
        self.layers = None if layers is None else list(layers)
        self.score = score
        self.removed: torch.Tensor | None = None
        self.scores: torch.Tensor | None = None
        self.diag: dict[str, float] = {}
        self.count = 0

    def setup(self, pool: torch.Tensor, ctx: TrainContext) -> None:
        super().setup(pool, ctx)
        self.tau = self.tau_arg if self.tau_arg is not None else min(
            ctx.epochs - 1, round(0.2 * ctx.epochs))
        if not 0 <= self.tau < ctx.epochs:
            raise ValueError(f"tau ({self.tau}) must be an epoch of the run, in [0, "
                             f"{ctx.epochs}); lower tau or raise --epochs")
        self.count = removal_count(self.remove, len(pool))
        if self.count >= len(pool):
            raise ValueError(f"remove asks for {self.count} samples but the pool holds "
                             f"{len(pool)}; CAPER removes a small share (the thesis: 0.01-0.5%)")
        self.removed = self.scores = None

    def pool_scores(self, ctx: TrainContext) -> torch.Tensor:
        """xi of every pool sample with the run's model (counted selection forwards)."""
        model = ctx.model
        if model is None:
            raise ValueError("CAPER's noise scores need the run's model and a counted pass "
                             "over its data (ctx.model, ctx.selection_pass): run it in "
                             "thrifty.engine.Trainer; elsewhere use feature_shift and "
                             "noise_scores, or score='random'")
        layers = self.layers or window_layers(model, self.window)
        # one pool sample, to trace which layer consumes each read layer's output
        example = ctx.selection_pass(self.pool[:1], lambda b: b.x, forwards=0)[0]
        chosen = {n: layer_channels(model, n, self.channels, example) for n in layers}
        g = draw_generator(self.seed, self.tau, self.name)
        parts = ctx.selection_pass(
            self.pool, lambda b: feature_shift(model, b.x, layers, self.noise_std, g),
            forwards=2)
        shifts = {n: torch.cat([p[n] for p in parts]) for n in layers}
        return noise_scores(shifts, chosen)

    def begin_epoch(self, ctx: TrainContext) -> None:
        scored = 0.0
        t0 = time.perf_counter()
        if ctx.epoch >= self.tau and self.removed is None:
            if self.score == "noise":
                self.scores = self.pool_scores(ctx)
                top = most_sensitive(self.scores, self.count)
            else:
                g = draw_generator(self.seed, self.tau, self.name)
                top = torch.randperm(len(self.pool), generator=g)[:self.count]
            self.removed = self.pool[top].sort().values
            scored = float(len(self.pool))
        if ctx.epoch >= self.tau and self.removed is not None:
            self.active = self.pool[~torch.isin(self.pool, self.removed)]
        else:
            self.active = self.pool
        self.diag = {"removed": float(len(self.pool) - len(self.active)), "scored": scored,
                     "score_time": time.perf_counter() - t0 if scored else 0.0}

    def epoch_diagnostics(self) -> dict[str, float]:
        diag, self.diag = self.diag, {}
        return diag

    def flops_saved(self, forward_flops: float, epochs: int) -> float:
        """The thesis's saving, ``forward_flops x gamma x (epochs - tau)``."""
        return forward_flops * self.count * (epochs - self.tau)
