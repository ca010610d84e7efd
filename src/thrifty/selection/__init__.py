"""Inside-a-batch selectors: which forwarded samples get a backward pass.

- :class:`Adonis` (``"adonis"``): ADONIS, histogram-PMF selection (seed 000).
- :class:`SelectiveBackprop` (``"sb"``) and :class:`StaleSB` (``"stale-sb"``): Selective
  Backprop, CDF^beta selection (Jiang et al. 2019).
- :class:`OnlineSelection`: any selector in a plain PyTorch loop.

Each method also has a functional core of pure tensor functions (``adonis_probabilities``,
``adonis_select``, ``sb_probabilities``, ``sb_select``) for use in other frameworks.
"""

from thrifty.selection.adonis import (
    Adonis,
    AdonisChoice,
    adonis_probabilities,
    adonis_select,
    bin_probabilities,
    clip_history,
    loss_histogram,
)
from thrifty.selection.history import LossHistorySelector, push_history
from thrifty.selection.online import OnlineSelection
from thrifty.selection.selective_backprop import (
    SelectiveBackprop,
    StaleSB,
    empirical_cdf,
    sb_probabilities,
    sb_select,
)

__all__ = [
    "Adonis", "AdonisChoice", "LossHistorySelector", "OnlineSelection", "SelectiveBackprop",
    "StaleSB", "adonis_probabilities", "adonis_select", "bin_probabilities", "clip_history",
    "empirical_cdf", "loss_histogram", "push_history", "sb_probabilities", "sb_select",
]
