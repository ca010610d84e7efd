"""The one share-rounding rule."""

import math

import pytest

from thrifty.utils.shares import share_count


@pytest.mark.parametrize("share,n,expected", [
    (0.55, 100, 55), (0.3, 10, 3), (0.07, 100, 7), (0.14, 100, 14), (0.8, 101, 81),
    (0.401, 1000, 401), (0.4001, 1000, 401),
])
def test_ceil_ignores_float_noise(share, n, expected):
    assert share_count(share, n) == expected


def test_float_noise_is_real():
    """The products the rule must see through."""
    assert 0.55 * 100 > 55 and 0.07 * 100 > 7 and 0.14 * 100 > 14
    assert 0.29 * 100 < 29 and 0.57 * 100 < 57


@pytest.mark.parametrize("share,n,expected", [(0.29, 100, 29), (0.57, 100, 57),
                                              (0.875, 8, 7), (0.25, 10, 2), (0.3, 10, 3)])
def test_floor_ignores_float_noise(share, n, expected):
    assert share_count(share, n, rounding="floor", minimum=0) == expected


@pytest.mark.parametrize("share,n,ceil,floor,nearest", [
    (0.25, 10, 3, 2, 2), (0.35, 10, 4, 3, 4), (0.5, 7, 4, 3, 4), (0.01, 1347, 14, 13, 13),
])
def test_roundings(share, n, ceil, floor, nearest):
    assert share_count(share, n, rounding="ceil") == ceil
    assert share_count(share, n, rounding="floor") == floor
    assert share_count(share, n, rounding="nearest") == nearest


def test_clamped_to_minimum_and_n():
    assert share_count(1e-6, 10) == 1                               # at least one by default
    assert share_count(0.0, 10) == 1 and share_count(0.0, 10, minimum=0) == 0
    assert share_count(1e-6, 10, rounding="floor") == 1
    assert share_count(1e-6, 10, rounding="floor", minimum=0) == 0
    assert share_count(0.1, 10, minimum=5) == 5
    assert share_count(1.0, 10) == 10 and share_count(1.0, 10, minimum=20) == 10  # never > n
    assert share_count(0.5, 0) == 0 and share_count(0.5, 0, minimum=0) == 0      # empty set


def test_agrees_with_the_retired_rules_on_typical_shares():
    """The -1e-9 tolerance (history.share, resolve_k) and the 9-decimal rounding (subset_size,
    keep_count, InfoBatch) gave the same counts for shares of two decimals."""
    for i in range(1, 100):
        share = i / 100
        for n in range(0, 300):
            tolerance = min(n, max(1, math.ceil(share * n - 1e-9)))
            assert share_count(share, n) == tolerance, (share, n)
            assert share_count(share, n, rounding="floor", minimum=0) == \
                math.floor(round(share * n, 9))


@pytest.mark.parametrize("kwargs,match", [
    ({"share": 1.5}, r"share must be in \[0, 1\], got 1.5"),
    ({"share": -0.1}, r"share must be in \[0, 1\]"),
    ({"share": True}, "share must be a number, got True"),
    ({"share": "0.5"}, "share must be a number"),
    ({"n": -1}, "n must be an integer >= 0, got -1"),
    ({"n": 2.5}, "n must be an integer >= 0"),
    ({"rounding": "up"}, "rounding must be one of 'ceil', 'floor', 'nearest', got 'up'"),
    ({"minimum": -1}, "minimum must be an integer >= 0"),
])
def test_refuses_impossible_arguments(kwargs, match):
    args = {"share": 0.5, "n": 10, **kwargs}
    share, n = args.pop("share"), args.pop("n")
    with pytest.raises(ValueError, match="share_count: .*" + match):
        share_count(share, n, **args)
