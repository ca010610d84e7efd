import math

import pytest
import torch

from thrifty.engine import Trainer
from thrifty.methods import available_methods, build_method
from thrifty.sampling import RandomAdaptive, RatioSchedule, subset_size
from thrifty.sampling.random_adaptive import RandomAdaptive as FromModule

from .conftest import assert_resume_equals_uninterrupted, drive


def _sets(orders):
    return [set(o.tolist()) for o in orders]


def test_registered_and_built_from_cli_style_args():
    assert available_methods()["random-adaptive"].place == "sampler"
    s = build_method("random-adaptive", {"ratio": 0.8, "schedule": "exponential",
                                         "final_ratio": 0.05, "period": 3})
    assert isinstance(s, FromModule) and s.schedule.shape == "exponential"
    assert s.name == "random-adaptive"


def test_subset_renewed_every_period_only(make_ctx):
    labels = torch.arange(200) % 4
    ctx = make_ctx(labels, epochs=7)
    s = RandomAdaptive(ratio=0.3, period=3)
    s.setup(torch.arange(200), ctx)
    orders = drive(s, ctx, range(7))
    sets = _sets(orders)
    assert all(len(o) == 60 == len(set(o.tolist())) for o in orders)
    assert sets[0] == sets[1] == sets[2] and sets[3] == sets[4] == sets[5]
    assert sets[0] != sets[3] and sets[3] != sets[6]
    # the order within the subset changes every epoch and is regenerated from (seed, epoch)
    assert not torch.equal(orders[0], orders[1])
    again = RandomAdaptive(ratio=0.3, period=3)
    again.setup(torch.arange(200), ctx)
    assert all(torch.equal(a, b) for a, b in zip(orders, drive(again, ctx, range(7))))
    other = RandomAdaptive(ratio=0.3, period=3)
    other.setup(torch.arange(200), make_ctx(labels, epochs=7, seed=1))
    assert _sets(drive(other, make_ctx(labels, epochs=7, seed=1), range(1)))[0] != sets[0]


def test_diagnostics_reset_after_read(make_ctx):
    ctx = make_ctx(torch.arange(50) % 2, epochs=4)
    s = RandomAdaptive(ratio=0.5, period=2)
    s.setup(torch.arange(50), ctx)
    drive(s, ctx, range(2))
    diag = s.epoch_diagnostics()
    assert diag == {"ratio": 0.5, "selected": 25.0, "selected_share": 0.5, "renewed": 0.0}
    assert s.epoch_diagnostics() == {}


def test_stratified_keeps_the_share_of_every_class(make_ctx):
    labels = torch.tensor([0] * 90 + [1] * 10)
    for seed in range(5):
        ctx = make_ctx(labels, epochs=1, seed=seed)
        s = RandomAdaptive(ratio=0.3, period=1, stratified=True)
        s.setup(torch.arange(100), ctx)
        chosen = drive(s, ctx, range(1))[0]
        assert torch.bincount(labels[chosen], minlength=2).tolist() == [27, 3]
    # an offline reducer's pool: shares of the pool's classes, only pool members
    pool = torch.tensor([0, 1, 2, 3, 90, 91, 92])
    s = RandomAdaptive(ratio=0.5, period=1, stratified=True)
    s.setup(pool, ctx)
    chosen = drive(s, ctx, range(1))[0]
    assert set(chosen.tolist()) <= set(pool.tolist())
    assert torch.bincount(labels[chosen], minlength=2).tolist() == [2, 2]


def test_trainer_loads_only_the_subset_each_epoch(tiny_config, digits):
    cfg = tiny_config(epochs=4, method=["random-adaptive"],
                      method_args={"ratio": 0.3, "period": 2})
    result = Trainer(cfg, train=digits[0], test=digits[1], log=lambda s: None).fit()
    n = len(digits[0])
    for e in result["epochs"]:
        assert e["samples_loaded"] == e["samples_trained"] == math.ceil(0.3 * n)
        assert e["samples_forwarded"] == 0
        # 405 = 6 x 64 + 21: the short last batch (under 32) joins the one before it
        assert e["optimizer_steps"] == math.ceil(0.3 * n) // 64
        assert e["method"]["ratio"] == 0.3
    assert [e["method"]["renewed"] for e in result["epochs"]] == [1.0, 0.0, 1.0, 0.0]
    assert result["methods"]["sampler"] == "random-adaptive"


def test_trainer_follows_a_decreasing_schedule(tiny_config, digits):
    args = {"ratio": 0.8, "period": 2, "schedule": "exponential", "final_ratio": 0.1}
    cfg = tiny_config(epochs=6, method=["random-adaptive"], method_args=args)
    result = Trainer(cfg, train=digits[0], test=digits[1], log=lambda s: None).fit()
    n = len(digits[0])
    schedule = RatioSchedule("exponential", 0.8, final_ratio=0.1, period=2).resolve(6)
    expected = [subset_size(r, n) for r in schedule.ratios()]
    assert [e["samples_loaded"] for e in result["epochs"]] == expected
    assert expected[0] > expected[2] > expected[4] == subset_size(0.1, n)


@pytest.mark.parametrize("stop_at_batch", [22, 27])  # end of epoch 2 / inside epoch 3
def test_resume_continues_with_the_saved_subset(tiny_config, digits, stop_at_batch):
    # 674 of 1347 samples per epoch -> 11 batches of 64; renewals at epochs 0 and 3 (0-based),
    # so the resumed run must reuse the saved subset in epoch 2
    cfg = lambda **kw: tiny_config(epochs=4, **kw)  # noqa: E731
    result = assert_resume_equals_uninterrupted(
        cfg, digits, lambda: RandomAdaptive(ratio=0.5, period=3), stop_at_batch)
    assert [e["method"]["renewed"] for e in result["epochs"]] == [1.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize("kwargs, match", [
    (dict(ratio=0), r"ratio must be a share in \(0, 1\]"),
    (dict(ratio=1.2), r"ratio must be a share in \(0, 1\]"),
    (dict(period=0), "period"),
    (dict(stratified="yes"), "stratified must be true or false"),
    (dict(schedule="exponential"), "needs exactly one of"),
    (dict(schedule="exponential", ratio=0.3, final_ratio=0.5), "above the initial ratio"),
])
def test_refuses_impossible_hyper_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RandomAdaptive(**kwargs)


def test_unreachable_mean_is_refused_when_the_run_starts(tiny_config, digits):
    cfg = tiny_config(epochs=2, method=["random-adaptive"],
                      method_args={"schedule": "linear", "ratio": 0.8, "mean_ratio": 0.1,
                                   "period": 1})
    with pytest.raises(ValueError, match="not reachable"):
        Trainer(cfg, train=digits[0], test=digits[1], log=lambda s: None).fit()
