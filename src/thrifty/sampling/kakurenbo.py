"""KAKURENBO (Truong et al., NeurIPS 2023): hide the well-learned samples, at most a share
F of the dataset, and raise the learning rate to make up for the hidden ones."""

from __future__ import annotations

import math

import torch

from thrifty.engine.interfaces import EpochSampler, TrainContext
from thrifty.methods import register_method
from thrifty.utils.params import Boolean, Interval, Param, validate_params
from thrifty.utils.shares import share_count

#: The hidden fraction's decay: F times these factors from these shares of the epochs on
#: (the official scripts' 1.0 / 0.8 / 0.6 / 0.4 at the learning-rate milestones).
DECAY = ((0.0, 1.0), (0.3, 0.8), (0.6, 0.6), (0.8, 0.4))


def fraction_at(fraction: float, epoch: int, epochs: int, decay: bool = True) -> float:
    """F_e, the most that may be hidden at 0-based ``epoch`` of ``epochs``: ``fraction``
    times the factor of :data:`DECAY` in force (no decay with ``decay=False``)."""
    if not decay:
        return fraction
    factor = 1.0
    for start, f in DECAY:
        if epoch >= start * epochs:
            factor = f
    return fraction * factor


@register_method("kakurenbo", "sampler",
                 "KAKURENBO: hide the lowest-loss samples predicted right and confidently "
                 "(at most F), learning rate x 1/(1-F)")
class Kakurenbo(EpochSampler):
    """KAKURENBO: each epoch, hide up to a share F_e of the samples, the lowest-loss ones
    that the model also predicts right with confidence, and scale the learning rate by
    ``1 / (1 - F_e)``.

    Truong, Gerofi, Martinez-Noriega, Trahay, Wahib, "KAKURENBO: Adaptively Hiding Samples
    in Deep Neural Network Training", NeurIPS 2023 (arXiv:2310.10102; official code
    github.com/TruongThaoNguyen/kakurenbo). At the start of epoch e >= 1:

    1. the samples hidden in epoch e-1 are scored (a forward pass without gradients,
       counted as selection work) so every sample has a loss and a prediction from the
       model as epoch e-1 ended; trained samples keep the loss of their training pass;
    2. the ``floor(F_e * n)`` lowest-loss samples are the candidates;
    3. a candidate is hidden if it is predicted right and its confidence (the softmax
       probability of its label, ``exp(-loss)`` for cross-entropy) is at least ``tau``;
       the others are "moved back" and trained;
    4. the learning rate of the epoch is multiplied by ``1 / (1 - F_e)``.

    Epoch 0 trains everything (no statistics yet) at the plain learning rate.

    Args:
        fraction: F, the most that may be hidden, in [0, 1). Default 0.3 (every official
            script).
        tau: the confidence a hidden sample needs, in (0, 1]. Default 0.7 (the official
            code's threshold).
        decay: F_e = F x 1 / 0.8 / 0.6 / 0.4 from 0 / 30 / 60 / 80 % of the epochs (the
            official scripts tie these to their learning-rate milestones). Default ``True``.

    Decisions: the learning-rate factor uses the cap F_e, not the share actually hidden (as
    the official code); confidence is taken over the classes (the official code's softmax
    over the batch dimension is a bug); the factor is applied by thrifty's engine around
    each optimizer step, never stored in the optimizer, so checkpoints hold the plain rate.
    A driver that cannot apply it (Lightning, Hugging Face, your own loop) refuses the
    method.

    Per-epoch diagnostics: ``fraction`` (F_e), ``hidden``, ``moved_back``, ``lr_factor``.
    """

    name = "kakurenbo"
    needs_train_losses = True
    scales_lr = True
    _state_attrs = ("active", "hidden", "lr_factor", "diag")
    _parameter_constraints = {
        "fraction": Param(Interval(float, 0, 1, closed="left"), label="F",
                          hint="the most hidden; 0.3 in the official scripts"),
        "tau": Param(Interval(float, 0, 1, closed="right"), label="tau",
                     hint="confidence needed to hide; 0.7 in the official code"),
        "decay": Boolean(),
    }

    def __init__(self, fraction: float = 0.3, tau: float = 0.7, decay: bool = True) -> None:
        super().__init__()
        v = validate_params("KAKURENBO", {"fraction": fraction, "tau": tau, "decay": decay},
                            self._parameter_constraints)
        self.fraction, self.tau, self.decay = v["fraction"], v["tau"], v["decay"]
        self.hidden = torch.empty(0, dtype=torch.long)
        self.lr_factor = 1.0
        self.diag: dict[str, float] = {}

    def begin_epoch(self, ctx: TrainContext) -> None:
        f = fraction_at(self.fraction, ctx.epoch, ctx.epochs, self.decay)
        self.active, self.lr_factor = self.pool, 1.0
        self.diag = {"fraction": f, "hidden": 0.0, "moved_back": 0.0, "lr_factor": 1.0}
        if ctx.epoch == 0 or f == 0:
            self.hidden = torch.empty(0, dtype=torch.long)
            return
        if len(self.hidden):  # their statistics, from the model as the last epoch ended
            ctx.score(self.hidden)
        losses = ctx.record.losses(self.pool)
        seen = ~torch.isnan(losses)
        k = share_count(f, len(self.pool), rounding="floor", minimum=0)
        order = torch.argsort(torch.where(seen, losses, torch.inf), stable=True)[:k]
        candidates = order[seen[order]]
        confident = ctx.record.correct[self.pool[candidates]] & (
            losses[candidates] <= -math.log(self.tau))
        hide = torch.zeros(len(self.pool), dtype=torch.bool)
        hide[candidates[confident]] = True
        self.hidden = self.pool[hide]
        self.active = self.pool[~hide]
        self.lr_factor = 1 / (1 - f)
        self.diag.update(hidden=float(hide.sum()),
                         moved_back=float(len(candidates) - int(confident.sum())),
                         lr_factor=self.lr_factor)

    def epoch_diagnostics(self) -> dict[str, float]:
        diag, self.diag = self.diag, {}
        return diag
