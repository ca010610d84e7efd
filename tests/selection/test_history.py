import pytest
import torch

from thrifty.selection import push_history
from thrifty.selection.history import check_int, share


@pytest.mark.parametrize("n,fraction,expected", [
    (10, 0.3, 3), (10, 0.25, 3), (3, 0.3, 1), (1, 0.01, 1), (0, 0.5, 0), (7, 1.0, 7),
    (100, 0.07, 7),
])
def test_share_is_ceil_with_at_least_one(n, fraction, expected):
    assert share(n, fraction) == expected


def test_push_history_keeps_last_values_and_is_pure():
    h = torch.tensor([1.0, 2.0, 3.0])
    new = push_history(h, torch.tensor([4.0, float("nan"), 5.0, float("inf")]), 4)
    assert new.tolist() == [2.0, 3.0, 4.0, 5.0]
    assert h.tolist() == [1.0, 2.0, 3.0]
    assert push_history(torch.empty(0), torch.arange(10.0), 3).tolist() == [7.0, 8.0, 9.0]


@pytest.mark.parametrize("value", [0, 1.5, "2", True, None])
def test_check_int_refuses(value):
    with pytest.raises(ValueError, match="x must be an integer >= 1"):
        check_int("x", value, 1)


def test_check_int_accepts_integral_floats():
    assert check_int("x", 2.0, 1) == 2 and isinstance(check_int("x", 2.0, 1), int)
