import pytest

from thrifty.metrics.frontier import (
    frontier_accuracy,
    gain_over_frontier,
    monotone_frontier,
    reference_cost,
)


def test_interpolation_between_measured_points():
    pts = [(10.0, 0.80), (20.0, 0.90), (40.0, 0.92)]
    assert frontier_accuracy(pts, 10.0) == pytest.approx(0.80)
    assert frontier_accuracy(pts, 15.0) == pytest.approx(0.85)  # halfway 0.80 -> 0.90
    assert frontier_accuracy(pts, 30.0) == pytest.approx(0.91)
    assert frontier_accuracy(pts, 40.0) == pytest.approx(0.92)
    assert frontier_accuracy(pts, 55.0) == pytest.approx(0.92)  # flat at the full baseline


def test_below_the_shortest_budget_is_not_extrapolated():
    assert frontier_accuracy([(10.0, 0.8), (20.0, 0.9)], 9.99) is None


def test_monotone_repair_and_equal_costs():
    # a longer run that ends worse is credited with the better shorter one
    assert monotone_frontier([(30, 0.85), (10, 0.80), (20, 0.90)]) == [
        (10, 0.80), (20, 0.90), (30, 0.90)]
    assert monotone_frontier([(10, 0.7), (10, 0.8)]) == [(10, 0.8)]
    assert frontier_accuracy([(10, 0.80), (20, 0.90), (30, 0.85)], 25) == pytest.approx(0.90)
    with pytest.raises(ValueError, match="at least one"):
        monotone_frontier([])


def _run(acc, times, forwarded=0, trained=100):
    return {"epochs": [{"test_accuracy": acc, "train_time": t, "samples_forwarded": forwarded,
                        "samples_trained": trained} for t in times]}


def test_gain_at_equal_time_and_at_equal_reference_cost():
    base = _run(0.90, [10, 10, 10, 10], trained=100)  # 40 s, 400 trained
    half = _run(0.88, [10, 10], trained=100)  # 20 s, 200 trained
    method = _run(0.895, [7.5, 7.5, 7.5, 7.5], forwarded=50, trained=50)  # 30 s
    # equal time: halfway between 0.88 (20 s) and 0.90 (40 s) is 0.89 -> +0.5 p.p.
    assert gain_over_frontier(method, [base, half], "time") == pytest.approx(0.5)
    cal = {"forward_cost": 0.01, "train_cost": 0.03}
    assert reference_cost(method, 0.01, 0.03) == pytest.approx(200 * 0.01 + 200 * 0.03)
    # equal cost: method 8.0, half 6.0, base 12.0 -> frontier 0.88 + 0.02 * 2/6
    expected = 100 * (0.895 - (0.88 + 0.02 * 2 / 6))
    assert gain_over_frontier(method, [base, half], "cost", cal) == pytest.approx(expected)
    fast = _run(0.70, [1, 1])
    assert gain_over_frontier(fast, [base, half], "time") is None
    with pytest.raises(ValueError, match="calibration"):
        gain_over_frontier(method, [base, half], "cost")
