"""Selective Backprop and Stale-SB (Jiang et al. 2019, arXiv:1910.00762).

Functional core (pure functions on tensors, usable in any framework):

- :func:`empirical_cdf`: the share of the history at or below each loss.
- :func:`sb_probabilities`: P(select) = CDF_R(loss)^beta.
- :func:`sb_select`: one Bernoulli draw per sample.

:class:`SelectiveBackprop` (``"sb"``) and :class:`StaleSB` (``"stale-sb"``, the same rule
with a selection forward only every ``staleness``-th epoch) are the selectors.
"""

from __future__ import annotations

import numpy as np
import torch

from thrifty.engine.interfaces import TrainContext
from thrifty.methods import register_method
from thrifty.selection.history import POSITIVE_INT, LossHistorySelector, as_numpy
from thrifty.utils.params import Interval, Param, validate_params


def empirical_cdf(losses: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
    """``CDF_R(loss)``: the share of ``history`` values ``<= loss``, for each loss.

    Args:
        losses: 1-D tensor of losses.
        history: 1-D tensor of the last R losses (non-empty).
    """
    return torch.from_numpy(_cdf(as_numpy(losses), as_numpy(history)))


def _cdf(x: np.ndarray, history: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.sort(history), x, side="right") / len(history)


def _probabilities(x: np.ndarray, history: np.ndarray, beta: float) -> np.ndarray:
    return _cdf(x, history) ** beta if len(history) else np.ones(len(x))


def sb_probabilities(losses: torch.Tensor, history: torch.Tensor, beta: float = 2.0
                     ) -> torch.Tensor:
    """Selection probability ``CDF_R(loss) ** beta`` of each loss.

    Args:
        losses: 1-D tensor of the batch's losses.
        history: the last R losses (the class appends the batch first). An empty history
            gives probability 1.
        beta: selectivity >= 0; 0 selects everything (plain SGD), larger is more selective
            (expected share about 1 / (beta + 1)). Default 2.0.
    """
    return torch.from_numpy(_probabilities(as_numpy(losses), as_numpy(history), beta))


def sb_select(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sorted positions of the samples chosen by independent draws ``u < probs``.

    Args:
        probs: per-sample probabilities in [0, 1].
        generator: randomness of the draws. Default ``None`` (torch's global generator).
    """
    return torch.from_numpy(_draw(as_numpy(probs), generator))


def _draw(probs: np.ndarray, generator: torch.Generator | None) -> np.ndarray:
    u = torch.rand(len(probs), generator=generator, dtype=torch.float64).numpy()
    return np.flatnonzero(u < probs)


@register_method("sb", "selector",
                 "Selective Backprop: backprop with probability CDF(loss)^beta over R losses")
class SelectiveBackprop(LossHistorySelector):
    """Selective Backprop (Jiang et al., "Accelerating Deep Learning by Focusing on the
    Biggest Losers", 2019, arXiv:1910.00762), with its Stale-SB variant.

    For each forward batch: per-sample losses from a no-grad forward pass (eval mode) are
    appended to a history of the last ``history`` losses; a sample is trained with
    probability ``CDF_R(loss) ** beta`` (one draw per sample with the run's method
    generator), so the highest losses are almost always trained. Chosen samples are packed
    into full training batches of the run's batch size.

    Args:
        history: R, number of recent losses that define the CDF. Default 1024.
        beta: selectivity >= 0; expected trained share about 1 / (beta + 1). Default 2.0
            (the seed paper's setting; 0 is plain SGD).
        staleness: n, the selection forward runs only every n-th epoch (epochs 0, n,
            2n, ...); in between the losses stored in the sample record decide (Stale-SB).
            Default 1 (vanilla SB); ``"stale-sb"`` defaults to 2.
        end_of_epoch: partial training batch at the end of an epoch: ``"carry"`` (default;
            trained with the next epoch's first chosen samples, so every step is a full
            batch), ``"flush"`` (one smaller step) or ``"drop"``.

    Decisions:
        * CDF_R(loss) is the share of the history at or below the loss, with the batch's own
          losses appended first. Only a loss that is the highest of the whole window (up to
          R losses, earlier batches included) gets probability 1, so a batch may contribute
          no sample; every sample is an independent draw.
        * In stale epochs the stored losses enter the history like fresh ones.
        * A NaN stored loss (a sample never seen) is always trained and never enters the
          history.
        * The selection forward runs in eval mode (the engine's rule).

    Per-epoch diagnostics: ``selector_considered``, ``selector_selected``,
    ``selector_selected_share``, ``selector_unseen_trained``, ``selector_stale_batches``,
    ``selector_batches`` (and ``selector_warmup_trained``, always 0 here).
    """

    name = "sb"
    _parameter_constraints = {
        **LossHistorySelector._parameter_constraints,
        "beta": Param(Interval(float, 0, None, closed="left"),
                      hint="0 trains every sample, default 2.0"),
        "staleness": POSITIVE_INT,
    }

    def __init__(self, history: int = 1024, beta: float = 2.0, staleness: int = 1,
                 end_of_epoch: str = "carry") -> None:
        v = validate_params(type(self).__name__, {"beta": beta, "staleness": staleness},
                            self._parameter_constraints)
        super().__init__(history, v["staleness"], 0, end_of_epoch)
        self.beta = v["beta"]
        self.staleness = self.every

    def _choose(self, losses: np.ndarray, ctx: TrainContext) -> np.ndarray:
        return _draw(_probabilities(losses, as_numpy(self.history), self.beta), ctx.generator)


@register_method("stale-sb", "selector",
                 "Stale-SB: Selective Backprop with a selection forward every n-th epoch")
class StaleSB(SelectiveBackprop):
    """Stale-SB: :class:`SelectiveBackprop` whose selection forward runs only every
    ``staleness``-th epoch (Jiang et al. 2019); see :class:`SelectiveBackprop` for the rule,
    the decisions and the diagnostics.

    Args:
        history: R, number of recent losses that define the CDF. Default 1024.
        beta: selectivity >= 0. Default 2.0.
        staleness: n, epochs between selection forwards. Default 2 (the seed paper's).
        end_of_epoch: ``"carry"`` (default), ``"flush"`` or ``"drop"``.
    """

    name = "stale-sb"

    def __init__(self, history: int = 1024, beta: float = 2.0, staleness: int = 2,
                 end_of_epoch: str = "carry") -> None:
        super().__init__(history, beta, staleness, end_of_epoch)
