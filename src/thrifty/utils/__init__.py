"""The neutral layer: utilities shared by the engine and every method package.

Nothing here imports :mod:`thrifty.engine` or a method package (``thrifty.offline``,
``thrifty.sampling``, ``thrifty.selection``, ``thrifty.pruning``); the modules use only the
standard library and the numeric libraries (torch and numpy; scipy for the root finding of
the schedules), so any layer may import them.

- :mod:`thrifty.utils.params`: declared hyper-parameter constraints and
  :func:`~thrifty.utils.params.validate_params`, the one place that checks them.
- :mod:`thrifty.utils.shares`: :func:`~thrifty.utils.shares.share_count`, the one rule
  that turns a share of ``n`` items into a count.
- :mod:`thrifty.utils.schedules`: the ratio schedules (:class:`RatioSchedule`,
  :class:`EpochRatio`).
- :mod:`thrifty.utils.random`: :func:`~thrifty.utils.random.draw_generator`, per-draw
  generators.
- :mod:`thrifty.utils.masks`: connection masks of a model (build, save, load, apply).
- :mod:`thrifty.utils.taps`: per-filter activation summaries read by forward hooks.
- :mod:`thrifty.utils.sensitivity`: filter sensitivity from the next layer's weights.
"""
