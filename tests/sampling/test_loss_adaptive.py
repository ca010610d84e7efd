import math

import pytest
import torch

from thrifty.engine import Trainer
from thrifty.methods import available_methods
from thrifty.sampling import LossAdaptive, selection_weights, weighted_draw

from .conftest import assert_resume_equals_uninterrupted, drive


def test_weights_are_loss_percentile_to_the_beta():
    history = torch.tensor([1.0, 2.0, 3.0, 4.0])
    losses = torch.tensor([0.5, 2.0, 2.5, 4.0, 9.0, float("nan")])
    w = selection_weights(losses, history, beta=2.0)
    assert w.tolist() == pytest.approx([0.0, 0.25, 0.25, 1.0, 1.0, 1.0])
    assert selection_weights(losses, history, beta=0.0).tolist() == [1.0] * 6


def test_weighted_draw_distinct_and_fills_zero_weights():
    g = torch.Generator().manual_seed(0)
    w = torch.tensor([0.0, 0.0, 1.0, 2.0, 0.0])
    picked = weighted_draw(w, 4, g)
    assert len(set(picked.tolist())) == 4 and {2, 3} <= set(picked.tolist())
    assert set(weighted_draw(w, 2, g).tolist()) == {2, 3}


def test_high_losses_are_drawn_more_often(make_ctx):
    labels = torch.zeros(1000, dtype=torch.long)
    losses = torch.arange(1000, dtype=torch.float) / 1000  # loss grows with the index
    ctx = make_ctx(labels, epochs=1, losses=losses)
    s = LossAdaptive(ratio=0.1, period=1, beta=2.0)
    s.setup(torch.arange(1000), ctx)
    chosen = drive(s, ctx, range(1))[0]
    assert len(chosen) == 100 == len(set(chosen.tolist()))
    # weights p^2 on a uniform percentile: inclusion clearly favours the upper part
    assert chosen.float().mean() > 650 and (chosen < 300).sum() < 20
    uniform = LossAdaptive(ratio=0.1, period=1, beta=0.0)
    uniform.setup(torch.arange(1000), ctx)
    assert 350 < drive(uniform, ctx, range(1))[0].float().mean() < 650


def test_scores_the_pool_only_on_renewals_and_keeps_a_bounded_history(make_ctx):
    labels = torch.arange(300) % 3
    ctx = make_ctx(labels, epochs=7)
    pool = torch.arange(0, 300, 2)
    s = LossAdaptive(ratio=0.2, period=3, history=100)
    s.setup(pool, ctx)
    orders = drive(s, ctx, range(7))
    assert ctx.score.calls == [150, 150, 150]  # epochs 0, 3, 6
    assert all(len(o) == 30 for o in orders)
    assert all(set(o.tolist()) <= set(pool.tolist()) for o in orders)
    assert set(orders[0].tolist()) == set(orders[2].tolist()) != set(orders[3].tolist())
    assert len(s.history) == 100
    assert set(s.history.tolist()) <= set(ctx.score.losses[pool].tolist())


def test_trainer_forwards_the_pool_exactly_on_renewal_epochs(tiny_config, digits):
    cfg = tiny_config(epochs=5, method=["rpd", "loss-adaptive"],
                      method_args={"rpd.alpha": 0.5, "loss-adaptive.ratio": 0.4,
                                   "loss-adaptive.period": 2})
    result = Trainer(cfg, train=digits[0], test=digits[1], log=lambda s: None).fit()
    pool = result["dataset"]["pool_size"]
    assert pool == math.ceil(0.5 * len(digits[0]))
    assert [e["samples_forwarded"] for e in result["epochs"]] == [pool, 0, pool, 0, pool]
    assert [e["method"]["scored"] for e in result["epochs"]] == [pool, 0, pool, 0, pool]
    for e in result["epochs"]:
        assert e["samples_loaded"] == e["samples_trained"] == math.ceil(0.4 * pool)
    assert available_methods()["loss-adaptive"].place == "sampler"


@pytest.mark.parametrize("stop_at_batch", [16, 20])  # end of epoch 2 / inside epoch 3
def test_resume_continues_with_the_saved_subset_and_history(tiny_config, digits,
                                                            stop_at_batch):
    # 472 of 1347 samples per epoch -> 8 batches of 64; renewals at epochs 0 and 3 (0-based)
    cfg = lambda **kw: tiny_config(epochs=4, **kw)  # noqa: E731
    result = assert_resume_equals_uninterrupted(
        cfg, digits, lambda: LossAdaptive(ratio=0.35, period=3, history=4096), stop_at_batch)
    assert [e["samples_forwarded"] for e in result["epochs"]] == [1347, 0, 0, 1347]


@pytest.mark.parametrize("kwargs, match", [
    (dict(ratio=0), r"ratio must be a share in \(0, 1\]"),
    (dict(ratio=2), r"ratio must be a share in \(0, 1\]"),
    (dict(beta=-1), "beta must be a finite number >= 0"),
    (dict(history=0), "history .* must be an integer >= 1"),
    (dict(period=1.5), "period"),
    (dict(schedule="cosine", ratio=0.5, mean_ratio=0.7), "above the initial ratio"),
])
def test_refuses_impossible_hyper_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LossAdaptive(**kwargs)
