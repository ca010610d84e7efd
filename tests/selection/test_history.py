import pytest
import torch

from thrifty.selection import SelectiveBackprop, push_history
from thrifty.utils.shares import share_count


@pytest.mark.parametrize("n,fraction,expected", [
    (10, 0.3, 3), (10, 0.25, 3), (3, 0.3, 1), (1, 0.01, 1), (0, 0.5, 0), (7, 1.0, 7),
    (100, 0.07, 7),
])
def test_adonis_share_is_ceil_with_at_least_one(n, fraction, expected):
    assert share_count(fraction, n) == expected


def test_push_history_keeps_last_values_and_is_pure():
    h = torch.tensor([1.0, 2.0, 3.0])
    new = push_history(h, torch.tensor([4.0, float("nan"), 5.0, float("inf")]), 4)
    assert new.tolist() == [2.0, 3.0, 4.0, 5.0]
    assert h.tolist() == [1.0, 2.0, 3.0]
    assert push_history(torch.empty(0), torch.arange(10.0), 3).tolist() == [7.0, 8.0, 9.0]


@pytest.mark.parametrize("value", [0, 1.5, "2", True, None])
def test_history_length_refuses(value):
    with pytest.raises(ValueError, match="SelectiveBackprop: history must be an integer >= 1"):
        SelectiveBackprop(history=value)


def test_history_length_accepts_integral_floats():
    sel = SelectiveBackprop(history=2.0, staleness=3.0)
    assert sel.history_size == 2 and isinstance(sel.history_size, int)
    assert sel.every == sel.staleness == 3 and isinstance(sel.staleness, int)
