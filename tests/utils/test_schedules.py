import math

import numpy as np
import pytest

from thrifty.utils.schedules import EpochRatio, RatioSchedule, last_renewal, subset_size


def test_paper_example_exponential():
    """Seed 002: N=160, R=3, S_0=80%, alpha=0.05 -> S_N = 5.65%, S_avg = 28.34%."""
    s = RatioSchedule("exponential", 0.8, alpha=0.05, period=3).resolve(160)
    assert last_renewal(160, 3) == 53 == math.floor(160 / 3)
    assert s.ratio_at(159) == pytest.approx(0.0565, abs=5e-5)
    assert s.final_ratio_ == pytest.approx(0.8 * math.exp(-0.05 * 53))
    assert s.mean() == pytest.approx(0.2834, abs=5e-5)  # mean over the 54 generated ratios
    assert len(s.renewal_ratios()) == 54
    # the share of data actually loaded over the 160 epochs is a little higher
    assert s.mean("epochs") == pytest.approx(np.mean(s.ratios())) == pytest.approx(0.2862, abs=5e-5)


def test_exponential_closed_form_and_period():
    s = RatioSchedule("exponential", 0.8, alpha=0.05, period=3).resolve(160)
    for t in range(160):
        assert s.ratio_at(t) == pytest.approx(0.8 * math.exp(-0.05 * (t // 3)), rel=1e-12)
    assert s.ratio_at(0) == s.ratio_at(2) == 0.8 and s.ratio_at(3) < s.ratio_at(2)


def test_alpha_solved_from_final_ratio_and_from_mean():
    final = RatioSchedule("exponential", 0.8, final_ratio=0.05, period=3).resolve(160)
    assert final.alpha_ == pytest.approx(math.log(0.8 / 0.05) / 53, rel=1e-12)
    assert final.ratio_at(159) == pytest.approx(0.05, rel=1e-12)
    paper_mean = RatioSchedule("exponential", 0.8, alpha=0.05, period=3).resolve(160).mean()
    solved = RatioSchedule("exponential", 0.8, mean_ratio=paper_mean, period=3).resolve(160)
    assert solved.alpha_ == pytest.approx(0.05, rel=1e-9)
    by_epochs = RatioSchedule("exponential", 0.8, mean_ratio=0.3, mean_over="epochs",
                              period=3).resolve(160)
    assert np.mean(by_epochs.ratios()) == pytest.approx(0.3, rel=1e-9)


def test_closed_form_uses_last_epoch_when_period_divides_epochs():
    # 9 epochs, R=3: renewals at epochs 0, 3, 6 -> K = 2 (the paper's floor(N/R) would say 3)
    s = RatioSchedule("exponential", 0.8, final_ratio=0.2, period=3).resolve(9)
    assert s.alpha_ == pytest.approx(math.log(4) / 2)
    assert s.ratios()[-3:] == pytest.approx([0.2] * 3)


def test_linear_and_cosine_shapes():
    lin = RatioSchedule("linear", 0.9, final_ratio=0.1, period=2).resolve(11)  # K = 5
    assert lin.renewal_ratios() == pytest.approx([0.9, 0.74, 0.58, 0.42, 0.26, 0.1])
    assert lin.mean() == pytest.approx(0.5)
    solved = RatioSchedule("linear", 0.9, mean_ratio=0.6, period=2).resolve(11)
    assert solved.final_ratio_ == pytest.approx(2 * 0.6 - 0.9, rel=1e-9)
    cos = RatioSchedule("cosine", 0.9, final_ratio=0.1, period=1).resolve(5)  # K = 4
    expected = [0.1 + 0.8 * (1 + math.cos(math.pi * k / 4)) / 2 for k in range(5)]
    assert cos.ratios() == pytest.approx(expected)
    assert cos.ratio_at(2) == pytest.approx(0.5)


def test_step_shape():
    s = RatioSchedule("step", 0.8, gamma=0.5, step_size=4, period=2).resolve(12)
    # renewals at 0,2,4,6,8,10; drops at renewal epochs t with floor(t/4)
    assert s.ratios() == pytest.approx([0.8] * 4 + [0.4] * 4 + [0.2] * 4)
    final = RatioSchedule("step", 0.8, final_ratio=0.2, step_size=4, period=2).resolve(12)
    assert final.gamma_ == pytest.approx(0.5) and final.ratios() == pytest.approx(s.ratios())


def test_constant():
    s = RatioSchedule("constant", 0.4, period=3).resolve(7)
    assert s.ratios() == [0.4] * 7 and s.final_ratio_ == 0.4
    assert s.mean() == pytest.approx(0.4) == s.mean("epochs")


def test_subset_size_rounds_up_without_float_noise():
    assert 0.55 * 100 > 55  # float noise the rounding must ignore
    assert subset_size(0.55, 100) == 55 and subset_size(0.14, 100) == 14
    assert subset_size(0.401, 1000) == 401 and subset_size(0.4001, 1000) == 401
    assert subset_size(1e-6, 10) == 1 and subset_size(1.0, 10) == 10


@pytest.mark.parametrize("kwargs, match", [
    (dict(shape="constant", ratio=0), r"ratio must be a share in \(0, 1\]"),
    (dict(shape="constant", ratio=1.5), r"ratio must be a share in \(0, 1\]"),
    (dict(shape="constant", ratio=-0.2), r"ratio must be a share in \(0, 1\]"),
    (dict(shape="spiral", ratio=0.5), "unknown ratio schedule 'spiral'"),
    (dict(shape="exponential", ratio=0.5, final_ratio=0.8), "above the initial ratio"),
    (dict(shape="exponential", ratio=0.5, final_ratio=0), r"final_ratio must be a share"),
    (dict(shape="exponential", ratio=0.5, mean_ratio=0.6), "mean_ratio 0.6 is above"),
    (dict(shape="exponential", ratio=0.5, alpha=-0.1), "alpha must be a finite number >= 0"),
    (dict(shape="exponential", ratio=0.5), "needs exactly one of alpha, final_ratio"),
    (dict(shape="exponential", ratio=0.5, alpha=0.1, final_ratio=0.1), "exactly one of"),
    (dict(shape="linear", ratio=0.5, alpha=0.1), "linear schedule has no alpha"),
    (dict(shape="constant", ratio=0.5, final_ratio=0.1), "constant schedule takes no"),
    (dict(shape="step", ratio=0.5, gamma=0.5), "needs step_size"),
    (dict(shape="step", ratio=0.5, gamma=0, step_size=2), r"gamma .* must be in \(0, 1\]"),
    (dict(shape="constant", ratio=0.5, period=0), "period .* must be an integer >= 1"),
    (dict(shape="linear", ratio=0.5, final_ratio=0.1, step_size=3), "step_size is a parameter"),
    (dict(shape="exponential", ratio=0.5, alpha="fast"), "alpha must be a finite number"),
    (dict(shape="constant", ratio=0.5, mean_over="batches"), "mean_over must be"),
])
def test_refuses_impossible_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RatioSchedule(**kwargs)


def test_refuses_unreachable_targets_for_the_run():
    with pytest.raises(ValueError, match=r"mean_ratio 0.3 is not reachable.*in \(0.4"):
        RatioSchedule("linear", 0.8, mean_ratio=0.3, period=1).resolve(10)
    with pytest.raises(ValueError, match="single renewal.*Lower period"):
        RatioSchedule("exponential", 0.8, final_ratio=0.1, period=5).resolve(5)
    with pytest.raises(ValueError, match="leaves no drop"):
        RatioSchedule("step", 0.8, final_ratio=0.1, step_size=20, period=1).resolve(10)
    with pytest.raises(RuntimeError, match="call resolve"):
        RatioSchedule("constant", 0.5).ratio_at(0)
    with pytest.raises(ValueError, match="outside the run"):
        RatioSchedule("constant", 0.5).resolve(3).ratio_at(3)
    # a single renewal with alpha given is fine: nothing to decay
    assert RatioSchedule("exponential", 0.8, alpha=1.0, period=5).resolve(5).ratios() == [0.8] * 5


def test_worked_example_when_the_period_divides_the_epochs():
    """The documented difference from the paper's floor(N / R): N = 150, R = 3."""
    s = RatioSchedule("exponential", 0.8, final_ratio=0.05, period=3).resolve(150)
    assert last_renewal(150, 3) == 49 != math.floor(150 / 3)
    assert s.alpha_ == pytest.approx(0.05658, abs=5e-6)
    assert s.ratio_at(149) == pytest.approx(0.05, rel=1e-12)
    paper_alpha = math.log(0.8 / 0.05) / math.floor(150 / 3)
    assert paper_alpha == pytest.approx(0.05545, abs=5e-6)
    paper = RatioSchedule("exponential", 0.8, alpha=paper_alpha, period=3).resolve(150)
    assert paper.ratio_at(149) == pytest.approx(0.0529, abs=5e-5)  # never reaches 5%


def test_epoch_ratio_constant_passes_the_value_through():
    r = EpochRatio(0.0, name="prune_ratio").resolve(10)  # 0 is no share, but no schedule
    assert not r.scheduled and r.at(0) == r.at(99) == 0.0


def test_epoch_ratio_reads_one_value_per_epoch():
    r = EpochRatio(0.8, "linear", final_ratio=0.2).resolve(4)
    assert r.scheduled and [r.at(t) for t in range(4)] == pytest.approx([0.8, 0.6, 0.4, 0.2])
    assert r.at(10) == pytest.approx(0.2)  # past the span: the last value
    same = RatioSchedule("exponential", 0.8, mean_ratio=0.4, period=1).resolve(6)
    e = EpochRatio(0.8, "exponential", mean_ratio=0.4).resolve(6)
    assert [e.at(t) for t in range(6)] == pytest.approx(same.ratios())
    with pytest.raises(RuntimeError, match="resolve"):
        EpochRatio(0.8, "linear", final_ratio=0.2).at(0)
    with pytest.raises(ValueError, match="number of epochs"):
        EpochRatio(0.8, "linear", final_ratio=0.2).resolve(0)


def test_epoch_ratio_errors_name_the_methods_ratio():
    with pytest.raises(ValueError, match="prune_ratio must be a share"):
        EpochRatio(0.0, "linear", final_ratio=0.1, name="prune_ratio")
    with pytest.raises(ValueError, match="above the initial prune_ratio 0.5.*raise prune_ratio"):
        EpochRatio(0.5, "cosine", final_ratio=0.6, name="prune_ratio")
    with pytest.raises(ValueError, match="give only prune_ratio"):
        EpochRatio(0.5, alpha=0.1, name="prune_ratio")
