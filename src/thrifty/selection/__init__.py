"""Inside-a-batch selectors: which forwarded samples get a backward pass.

- :class:`Adonis` (``"adonis"``): ADONIS, histogram-PMF selection (seed 000).
- :class:`SelectiveBackprop` (``"sb"``) and :class:`StaleSB` (``"stale-sb"``): Selective
  Backprop, CDF^beta selection (Jiang et al. 2019).
- :class:`OnlineSelection`: any selector in a plain PyTorch loop.

Each method also has a functional core of pure tensor functions (``adonis_probabilities``,
``adonis_select``, ``sb_probabilities``, ``sb_select``, the ASSIST filters
``accuracy_filter`` and ``misclassified``, the loss selectors ``top_k``, ``top_q``,
``loss_weighted`` and ``q_split``) for use in other frameworks.
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
from thrifty.selection.assist import (
    AssistSelector,
    accuracy_filter,
    misclassified,
    top2_margin,
)
from thrifty.selection.history import LossHistorySelector, push_history
from thrifty.selection.loss_selectors import (
    LossSelector,
    loss_weighted,
    q_split,
    resolve_k,
    top_k,
    top_q,
)
from thrifty.selection.online import OnlineSelection
from thrifty.selection.selective_backprop import (
    SelectiveBackprop,
    StaleSB,
    empirical_cdf,
    sb_probabilities,
    sb_select,
)

__all__ = [
    "AssistSelector", "LossSelector", "accuracy_filter", "loss_weighted", "misclassified",
    "q_split", "resolve_k", "top2_margin", "top_k", "top_q",
    "Adonis", "AdonisChoice", "LossHistorySelector", "OnlineSelection", "SelectiveBackprop",
    "StaleSB", "adonis_probabilities", "adonis_select", "bin_probabilities", "clip_history",
    "empirical_cdf", "loss_histogram", "push_history", "sb_probabilities", "sb_select",
]
