import math

import pytest
import torch

from thrifty.engine import Trainer
from thrifty.methods import available_methods, build_method
from thrifty.sampling import InfoBatch, RatioSchedule, anneal_start

from .conftest import assert_resume_equals_uninterrupted, drive


def _primed(make_ctx, losses: torch.Tensor, epochs: int = 10, **kwargs):
    ctx = make_ctx(torch.zeros(len(losses), dtype=torch.long), epochs=epochs)
    seen = ~torch.isnan(losses)
    ctx.record.update(torch.nonzero(seen).flatten(), losses[seen], None, 0, trained=True)
    s = InfoBatch(**kwargs)
    s.setup(torch.arange(len(losses)), ctx)
    return s, ctx


@pytest.mark.parametrize("r, kept", [(0.5, 5), (0.3, 7), (0.0, 10)])
def test_prunes_share_r_of_below_mean_and_reweights_the_rest(make_ctx, r, kept):
    losses = torch.arange(20, dtype=torch.float)  # mean 9.5 -> samples 0..9 well-learned
    s, ctx = _primed(make_ctx, losses, prune_ratio=r)
    active = set(drive(s, ctx, range(1, 2))[0].tolist())
    assert set(range(10, 20)) <= active and len(active) == 10 + kept
    w = s.loss_weights(torch.arange(20))
    kept_learned = sorted(active - set(range(10, 20)))
    assert all(w[i].item() == pytest.approx(1 / (1 - r)) for i in kept_learned)
    others = [i for i in range(20) if i not in kept_learned]
    assert all(w[i].item() == 1.0 for i in others)
    assert s.epoch_diagnostics() == {"annealing": 0.0, "prune_ratio": r, "well_learned": 10.0,
                                     "pruned": float(10 - kept), "threshold": 9.5,
                                     "kept_share": (10 + kept) / 20}
    assert s.epoch_diagnostics() == {}


def test_never_seen_samples_are_kept_and_first_epoch_is_full(make_ctx):
    losses = torch.tensor([0.1, 0.2, float("nan"), 5.0, float("nan"), 0.3])
    s, ctx = _primed(make_ctx, losses)
    active = set(drive(s, ctx, range(1, 2))[0].tolist())
    # mean of the seen losses 1.4 -> 0, 1, 5 well-learned; 2 and 4 unseen, never pruned
    assert {2, 3, 4} <= active and len(active) == 3 + 1
    fresh = InfoBatch()
    fresh.setup(torch.arange(6), make_ctx(torch.zeros(6, dtype=torch.long)))
    ctx0 = make_ctx(torch.zeros(6, dtype=torch.long))
    assert sorted(drive(fresh, ctx0, range(1))[0].tolist()) == list(range(6))


def test_annealing_switch_epoch(make_ctx):
    assert anneal_start(8, 0.875) == 7 and anneal_start(10, 0.875) == 8
    assert anneal_start(200, 0.875) == 175 and anneal_start(100, 0.29) == 29
    assert anneal_start(8, 1.0) == 8 and anneal_start(8, 0.0) == 0
    losses = torch.arange(20, dtype=torch.float)
    s, ctx = _primed(make_ctx, losses, epochs=8)
    orders = drive(s, ctx, range(1, 8))
    assert [len(o) for o in orders] == [15] * 6 + [20]
    assert s.diag["annealing"] == 1.0 and s.diag["pruned"] == 0.0
    assert torch.equal(s.loss_weights(torch.arange(20)), torch.ones(20))


def test_trainer_prunes_without_extra_forward_and_applies_weights(tiny_config, digits):
    batches: list[torch.Tensor] = []

    class Recording(InfoBatch):
        def loss_weights(self, idx):
            w = super().loss_weights(idx)
            batches.append(w)
            return w

    cfg = tiny_config(epochs=4)
    sampler = Recording(prune_ratio=0.5, delta=0.75)  # epochs 0..2 may prune, 3 is full
    result = Trainer(cfg, train=digits[0], test=digits[1], sampler=sampler,
                     log=lambda s: None).fit()
    n = len(digits[0])
    epochs = result["epochs"]
    assert [e["method"]["annealing"] for e in epochs] == [0.0, 0.0, 0.0, 1.0]
    assert epochs[0]["samples_loaded"] == epochs[3]["samples_loaded"] == n
    for e in epochs:
        assert e["samples_forwarded"] == 0
        assert e["samples_loaded"] == e["samples_trained"] == n - e["method"]["pruned"]
    for e in epochs[1:3]:
        learned, pruned = e["method"]["well_learned"], e["method"]["pruned"]
        assert 0 < learned < n and pruned == learned - math.floor(learned / 2)
    steps = [e["optimizer_steps"] for e in epochs]
    per_epoch = [torch.cat(batches[sum(steps[:i]):sum(steps[:i + 1])]) for i in range(4)]
    e1 = epochs[1]["method"]
    assert (per_epoch[1] == 2.0).sum() == e1["well_learned"] - e1["pruned"]
    assert set(per_epoch[1].tolist()) == {1.0, 2.0}
    assert set(per_epoch[0].tolist()) == set(per_epoch[3].tolist()) == {1.0}


# Stopping after the last batch of the first epoch makes the resumed process step the LR
# scheduler before any optimizer step, which PyTorch warns about (harmless: its state is
# restored). That is the engine's behaviour, not the sampler's.
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
@pytest.mark.parametrize("stop_at_batch", [22, 30])  # end of epoch 1 / inside epoch 2
def test_resume_equals_uninterrupted(tiny_config, digits, stop_at_batch):
    cfg = lambda **kw: tiny_config(epochs=3, **kw)  # noqa: E731
    result = assert_resume_equals_uninterrupted(
        cfg, digits, lambda: InfoBatch(prune_ratio=0.5, delta=1.0), stop_at_batch)
    assert result["epochs"][1]["method"]["pruned"] > 0


def _kept(r: float, n: int) -> int:
    return math.floor(round((1 - r) * n, 9))


def test_decaying_prune_ratio_prunes_the_scheduled_share_each_epoch(make_ctx):
    losses = torch.arange(40, dtype=torch.float)  # mean 19.5 -> samples 0..19 well-learned
    s, ctx = _primed(make_ctx, losses, epochs=8, prune_ratio=0.8, delta=1.0,
                     schedule="linear", final_ratio=0.1)
    expected = [0.8 + (0.1 - 0.8) * t / 7 for t in range(8)]
    for t in range(8):
        order = drive(s, ctx, range(t, t + 1))[0]
        diag = s.epoch_diagnostics()
        r = expected[t]
        assert diag["prune_ratio"] == pytest.approx(r)
        assert diag["pruned"] == 20 - _kept(r, 20) and len(order) == 20 + _kept(r, 20)
        # the kept well-learned samples are weighted 1 / (1 - r_t), the others 1
        w = s.loss_weights(torch.arange(40))
        learned = sorted(set(order.tolist()) - set(range(20, 40)))
        assert torch.allclose(w[learned], torch.full((len(learned),), 1 / (1 - r)))
        assert torch.equal(w[20:], torch.ones(20))
    assert [round(r, 6) for r in s.ratio.schedule.ratios()] == [round(r, 6) for r in expected]


def test_prune_schedule_spans_the_pruning_epochs_and_annealing_stays_full(make_ctx):
    losses = torch.arange(20, dtype=torch.float)
    s, ctx = _primed(make_ctx, losses, epochs=8, prune_ratio=0.6, delta=0.75,
                     schedule="exponential", final_ratio=0.15)  # epochs 0..5 prune
    orders = drive(s, ctx, range(8))
    ratios = [s.prune_ratio_at(t, 8) for t in range(8)]
    assert ratios[0] == pytest.approx(0.6) and ratios[5] == pytest.approx(0.15)
    assert ratios[6:] == [0.0, 0.0]
    assert all(a > b for a, b in zip(ratios[:5], ratios[1:6]))
    assert [len(o) for o in orders[1:6]] == [10 + _kept(r, 10) for r in ratios[1:6]]
    assert [len(o) for o in orders[6:]] == [20, 20]
    assert torch.equal(s.loss_weights(torch.arange(20)), torch.ones(20))
    mean = RatioSchedule("exponential", 0.6, mean_ratio=0.3).resolve(6).ratios()
    t = InfoBatch(prune_ratio=0.6, delta=0.75, schedule="exponential", mean_ratio=0.3)
    t.setup(torch.arange(20), ctx)
    assert [t.prune_ratio_at(e, 8) for e in range(6)] == pytest.approx(mean)
    assert sum(mean) / 6 == pytest.approx(0.3)


def test_trainer_follows_the_prune_schedule(tiny_config, digits):
    sampler = InfoBatch(prune_ratio=0.6, delta=1.0, schedule="linear", final_ratio=0.2)
    result = Trainer(tiny_config(epochs=3), train=digits[0], test=digits[1], sampler=sampler,
                     log=lambda s: None).fit()
    methods = [e["method"] for e in result["epochs"]]
    assert [m["prune_ratio"] for m in methods] == pytest.approx([0.6, 0.4, 0.2])
    for m in methods[1:]:
        assert m["pruned"] == m["well_learned"] - _kept(m["prune_ratio"], m["well_learned"])
    assert methods[1]["pruned"] / methods[1]["well_learned"] > \
        methods[2]["pruned"] / methods[2]["well_learned"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(prune_ratio=0.0, schedule="linear", final_ratio=0.1), "prune_ratio must be a share"),
    (dict(prune_ratio=0.5, schedule="linear", final_ratio=0.7), "above the initial prune_ratio"),
    (dict(prune_ratio=0.5, schedule="exponential"), "needs exactly one of"),
    (dict(prune_ratio=0.5, alpha=0.1), "constant schedule takes no alpha"),
    (dict(prune_ratio=0.5, schedule="wave"), "unknown ratio schedule"),
])
def test_refuses_impossible_schedules(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InfoBatch(**kwargs)


def test_schedule_needs_pruning_epochs(make_ctx):
    s = InfoBatch(prune_ratio=0.5, delta=0.0, schedule="linear", final_ratio=0.1)
    with pytest.raises(ValueError, match="leaves none; raise delta"):
        s.setup(torch.arange(4), make_ctx(torch.zeros(4, dtype=torch.long)))


def test_registered_and_built_by_name():
    assert available_methods()["infobatch"].place == "sampler"
    s = build_method("infobatch", {"prune_ratio": 0.3, "delta": 0.5})
    assert isinstance(s, InfoBatch) and s.weighted and s.prune_ratio == 0.3
    assert not s.ratio.scheduled
    s = build_method("infobatch", {"prune_ratio": 0.5, "schedule": "step", "gamma": 0.5,
                                   "step_size": 2})
    assert s.ratio.scheduled and s.ratio.schedule.shape == "step"


@pytest.mark.parametrize("kwargs, match", [
    (dict(prune_ratio=1.0), r"prune_ratio \(r\) must be in \[0, 1\)"),
    (dict(prune_ratio=1.5), r"prune_ratio \(r\) must be in \[0, 1\)"),
    (dict(prune_ratio=-0.1), r"prune_ratio \(r\) must be in \[0, 1\)"),
    (dict(delta=1.2), r"delta .* must be in \[0, 1\]"),
    (dict(delta=-0.5), r"delta .* must be in \[0, 1\]"),
])
def test_refuses_impossible_hyper_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InfoBatch(**kwargs)
