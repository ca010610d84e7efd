import math

import pytest
import torch

from thrifty.engine import Trainer
from thrifty.methods import available_methods, build_method
from thrifty.sampling import InfoBatch, anneal_start

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
    assert s.epoch_diagnostics() == {"annealing": 0.0, "well_learned": 10.0,
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


def test_registered_and_built_by_name():
    assert available_methods()["infobatch"].place == "sampler"
    s = build_method("infobatch", {"prune_ratio": 0.3, "delta": 0.5})
    assert isinstance(s, InfoBatch) and s.weighted and s.prune_ratio == 0.3


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
