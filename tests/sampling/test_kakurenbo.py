"""KAKURENBO: hide the lowest-loss samples predicted right and confidently, at most F;
the learning rate times 1 / (1 - F); refused by drivers that cannot apply it."""

import math

import pytest
import torch

from thrifty.engine import Trainer
from thrifty.engine.optim import scaled_lr
from thrifty.sampling import Kakurenbo, fraction_at

from .conftest import drive


def _primed(make_ctx, losses, correct, epochs=10, **kw):
    ctx = make_ctx(torch.zeros(len(losses), dtype=torch.long), epochs=epochs)
    ctx.record.update(torch.arange(len(losses)), losses, correct, 0, trained=True)
    scored = []

    def score(idx):  # the engine's score: a forward pass that updates the record
        scored.append(idx.clone())
        ctx.record.update(idx, torch.full((len(idx),), 0.01), torch.ones(len(idx),
                                                                          dtype=torch.bool),
                          ctx.epoch, trained=False, kind="score")
        return ctx.record.losses(idx), torch.zeros(len(idx), 2)

    ctx.score = score
    s = Kakurenbo(**kw)
    s.setup(torch.arange(len(losses)), ctx)
    return s, ctx, scored


def test_hides_at_most_f_of_the_lowest_losses_and_moves_back_the_unsure(make_ctx):
    losses = torch.tensor([0.01, 0.02, 0.9, 0.03, 2.0, 0.05, 3.0, 4.0, 5.0, 6.0])
    correct = torch.tensor([True, True, True, False, True, True, True, True, True, True])
    s, ctx, _ = _primed(make_ctx, losses, correct, fraction=0.5, decay=False)
    first, second = drive(s, ctx, range(2))
    assert len(first) == 10 and s.lr_factor == 2.0  # epoch 0 hides nothing
    # candidates: the 5 lowest (0, 1, 3, 5, 2); 3 is wrong, 2 below confidence 0.7
    # (exp(-0.9) = 0.41): moved back; 0, 1 and 5 hidden
    assert sorted(second.tolist()) == [2, 3, 4, 6, 7, 8, 9]
    d = s.epoch_diagnostics()
    assert (d["hidden"], d["moved_back"], d["lr_factor"]) == (3.0, 2.0, 2.0)
    assert losses[5] <= -math.log(0.7) < losses[2]


def test_hidden_samples_are_scored_again_before_the_next_choice(make_ctx):
    losses = torch.linspace(0.01, 3.0, 20)
    s, ctx, scored = _primed(make_ctx, losses, torch.ones(20, dtype=torch.bool), fraction=0.2)
    drive(s, ctx, range(3))
    # 4 candidates (F = 0.2 of 20); the 4th, loss 0.48, is under confidence 0.7
    assert len(scored) == 1 and sorted(scored[0].tolist()) == [0, 1, 2]


def test_the_fraction_decays_at_30_60_80_percent_of_the_epochs():
    assert [fraction_at(0.3, e, 10) for e in (0, 2, 3, 6, 8, 9)] == pytest.approx(
        [0.3, 0.3, 0.24, 0.18, 0.12, 0.12])
    assert fraction_at(0.3, 9, 10, decay=False) == 0.3


def test_the_factor_scales_one_step_and_is_restored_exactly():
    p = torch.nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([p], lr=0.1)
    with scaled_lr(opt, 1 / 0.7):
        assert opt.param_groups[0]["lr"] == pytest.approx(0.1 / 0.7)
    assert opt.param_groups[0]["lr"] == 0.1


def test_the_engine_trains_it_and_other_drivers_refuse_it(tiny_config, digits):
    result = Trainer(tiny_config(epochs=3, method=["kakurenbo"]), train=digits[0],
                     test=digits[1], log=lambda s: None).fit()
    second = result["epochs"][1]
    assert second["samples_trained"] < len(digits[0])
    # epoch 1 of 3 is past 30 % of the run: F_1 = 0.3 x 0.8
    assert second["method"]["lr_factor"] == pytest.approx(1 / (1 - 0.24))
    assert result["epochs"][2]["samples_forwarded"] == second["method"]["hidden"]
    from thrifty import Thrift

    with pytest.raises(ValueError, match="only thrifty's engine applies"):
        Thrift("kakurenbo", digits[0], epochs=3, batch_size=32)
