"""The one rule that turns a share of ``n`` items into a count: :func:`share_count`.

Every method that keeps, draws or prunes "a share of" something counts it here, so that
float noise is treated the same way everywhere: ``share * n`` is first rounded to 9
decimals, then rounded up (``ceil``), down (``floor``) or to the nearest integer. In binary
floating point ``0.55 * 100`` is ``55.00000000000001`` and ``0.29 * 100`` is
``28.999999999999996``; they must count 55 (not 56) rounded up and 29 (not 28) rounded down.
"""

from __future__ import annotations

import math

from thrifty.utils.params import Interval, Options, Param, validate_params

#: how :func:`share_count` rounds ``share * n``
ROUNDINGS = ("ceil", "floor", "nearest")

#: decimals ``share * n`` is rounded to before the count is rounded (drops float noise)
NOISE_DECIMALS = 9

_parameter_constraints = {
    "share": Param(Interval(float, 0, 1), hint="a share of the items, 0.25 is a quarter"),
    "n": Interval(int, 0, None, closed="left"),
    "rounding": Options(str, ROUNDINGS),
    "minimum": Interval(int, 0, None, closed="left"),
}

_ROUND = {"ceil": math.ceil, "floor": math.floor, "nearest": round}


def share_count(share: float, n: int, *, rounding: str = "ceil", minimum: int = 1) -> int:
    """How many of ``n`` items a ``share`` of them is.

    ``round(share * n, 9)``, then rounded by ``rounding``, then clamped to
    ``[minimum, n]``: at least ``minimum`` but never more than ``n`` (so 0 of an empty set).

    Args:
        share: the share, in [0, 1].
        n: the number of items, an integer >= 0.
        rounding: ``"ceil"`` (default: a share of 0.25 of 10 items is 3), ``"floor"`` (2)
            or ``"nearest"`` (2; Python's :func:`round`, ties to even).
        minimum: the smallest count returned when ``n >= minimum``, an integer >= 0.
            Default 1 (a positive share of a non-empty set keeps at least one item).

    Raises:
        ValueError: for a share outside [0, 1], a negative or non-integer ``n`` or
            ``minimum``, or an unknown ``rounding``.

    >>> share_count(0.55, 100), share_count(0.3, 10), share_count(0.3, 10, rounding="floor")
    (55, 3, 3)
    """
    v = validate_params("share_count", {"share": share, "n": n, "rounding": rounding,
                                        "minimum": minimum}, _parameter_constraints)
    count = _ROUND[v["rounding"]](round(v["share"] * v["n"], NOISE_DECIMALS))
    return min(v["n"], max(v["minimum"], int(count)))
