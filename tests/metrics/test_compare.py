import math

import pytest
import torch

from thrifty.metrics import compare as m
from thrifty.metrics import loss_ratios, loss_statistics


def run(accs, times, trained=100, forwarded=0, prep=0.0, logic=0.0):
    epochs = [{"test_accuracy": a, "train_time": t, "samples_trained": trained,
               "samples_forwarded": forwarded, "samples_loaded": trained,
               "optimizer_steps": 1, "time": {"selection_logic": logic}}
              for a, t in zip(accs, times)]
    return {"epochs": epochs, "final": {"prep_time": prep}}


BASE = run([0.70, 0.85, 0.90], [10, 10, 10])


def test_drop_and_boosts_by_hand():
    meth = run([0.72, 0.86, 0.88], [5, 5, 5], prep=5.0)
    assert m.accuracy_drop(BASE, meth) == pytest.approx(2.0)
    assert m.train_boost(BASE, meth) == pytest.approx(30 / 15)
    assert m.end_to_end_boost(BASE, meth) == pytest.approx(30 / 20)
    # target 0.89 (1 p.p.): baseline reaches at 30 s, method never -> None
    assert m.boost_to_target(BASE, meth, 1.0) is None
    # target 0.85 (5 p.p.): baseline at 20 s, method at 10 s
    assert m.boost_to_target(BASE, meth, 5.0) == pytest.approx(2.0)
    assert m.time_to_accuracy(meth, 0.72, include_prep=True) == pytest.approx(10.0)


def test_ideal_boost_and_efficiency_by_hand():
    # baseline: 300 trained; method: 150 trained + 300 forwarded; T = 2, F = 1
    meth = run([0.9] * 3, [20, 20, 20], trained=50, forwarded=100, logic=0.5)
    ideal = (300 * 2) / (300 * 1 + 150 * 2)
    assert m.ideal_boost(BASE, meth, forward_cost=1, train_cost=2) == pytest.approx(ideal)
    assert m.implementation_efficiency(BASE, meth, 1, 2) == pytest.approx((30 / 60) / ideal)
    assert m.selection_overhead(meth) == pytest.approx(1.5 / 60)


def test_loss_statistics_against_numpy():
    import numpy as np

    losses = torch.tensor([0.1, 0.5, 2.0, 0.3, 9.0])
    s = loss_statistics(losses, torch.tensor([1, 1, 0, 1, 0]))
    assert s["mean"] == pytest.approx(losses.mean().item())
    assert s["worst"] == 9.0 and s["best"] == pytest.approx(0.1)
    for q in (0.5, 0.9, 0.99):
        assert s[f"q{q:g}"] == pytest.approx(np.quantile(losses.numpy(), q))
    assert s["accuracy"] == pytest.approx(0.6)
    r = loss_ratios({"mean": 2.0, "worst": 1.0, "accuracy": 0.5, "q0.9": 1.0},
                    {"mean": 1.0, "worst": 0.0, "accuracy": 1.0, "q0.9": 2.0})
    assert r["mean"] == 2.0 and r["q0.9"] == 0.5 and math.isnan(r["worst"])
    with pytest.raises(ValueError, match="at least one"):
        loss_statistics(torch.tensor([]))
