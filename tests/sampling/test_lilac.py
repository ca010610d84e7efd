from __future__ import annotations

import pytest
import torch

from sampling.conftest import assert_resume_equals_uninterrupted, drive
from thrifty.engine import Trainer
from thrifty.methods import build_method
from thrifty.sampling import Lilac, balanced_order, compensated_targets

from .curriculum_helpers import make_ctx, resume_from_epoch_start

LABELS = torch.arange(200) % 10  # 10 classes x 20 samples


def started(sampler: Lilac, labels: torch.Tensor = LABELS, **ctx_kw):
    ctx = make_ctx(labels, **ctx_kw)
    sampler.setup(torch.arange(len(labels)), ctx)
    return ctx


def test_reveal_schedule_and_il_length():
    s = Lilac(initial=2, step=3, interval=2)
    assert [s.revealed_at(t, 10) for t in range(8)] == [2, 2, 5, 5, 8, 8, 10, 10]
    assert s.il_epochs(10) == 6  # E * ceil((10 - 2) / 3)
    assert s.first_ac_epoch(10) == 7
    assert Lilac(incremental=False).first_ac_epoch(10) == 1
    assert Lilac(ac_start=9).first_ac_epoch(10) == 9


def test_il_epoch_balances_every_batch_and_loads_each_s_sample_once():
    s = Lilac(initial=2, step=2, interval=1)
    ctx = started(s)
    order = drive(s, ctx, range(1))[0]
    labels = LABELS[order]
    assert len(order) == 80  # 40 S samples (labels 0, 1) and as many U samples
    s_part = order[labels < 2]
    assert sorted(s_part.tolist()) == torch.nonzero(LABELS < 2).flatten().tolist()
    for chunk in torch.split(labels, ctx.batch_size):
        assert (chunk < 2).sum() == (chunk >= 2).sum() == 8
    u_part = order[labels >= 2]
    assert len(set(u_part.tolist())) == 40  # U (160) is larger than needed: no duplicate


def test_small_u_is_duplicated_evenly_and_odd_batches_give_u_the_extra_sample():
    s = Lilac(initial=8, step=2, interval=1)
    ctx = started(s, batch_size=15)
    order = drive(s, ctx, range(1))[0]
    labels = LABELS[order]
    # S = 160 samples: 22 chunks of 7 and one of 6; U gets 8 per full chunk and 6 at the end
    chunks = torch.split(labels, 15)
    assert [int((c < 8).sum()) for c in chunks] == [7] * 22 + [6]
    assert [int((c >= 8).sum()) for c in chunks] == [8] * 22 + [6]
    counts = torch.bincount(order[labels >= 8], minlength=200)[LABELS >= 8]
    assert counts.max() - counts.min() <= 1  # 182 draws over 40 samples: 4 or 5 each


def test_balanced_order_without_u_is_a_permutation_of_s():
    g = torch.Generator().manual_seed(0)
    s_idx = torch.arange(10, 30)
    order = balanced_order(s_idx, torch.empty(0, dtype=torch.long), 8, g)
    assert sorted(order.tolist()) == s_idx.tolist()


def test_after_il_each_epoch_is_a_shuffle_of_the_pool():
    s = Lilac(initial=2, step=4, interval=1, compensate=False)
    ctx = started(s)
    orders = drive(s, ctx, range(4))
    assert [len(o) for o in orders[:2]] == [80, 2 * 120]
    for o in orders[2:]:
        assert sorted(o.tolist()) == list(range(200))
    assert not torch.equal(orders[2], orders[3])


def test_train_targets_give_the_pseudo_label_to_unrevealed_classes():
    y = torch.tensor([0, 1, 2, 5, 9, 3])
    s = Lilac(initial=3, step=2)
    ctx = started(s)
    drive(s, ctx, range(1))
    assert s.train_targets(torch.arange(6), y).tolist() == [0, 1, 2, 9, 9, 9]
    s7 = Lilac(initial=2, step=4, pseudo_label=7)  # 7 is revealed last (with 6, 8, 9)
    ctx = started(s7)
    drive(s7, ctx, range(2))  # epoch 1: labels 0-5 known
    assert s7.train_targets(torch.arange(6), y).tolist() == [0, 1, 2, 5, 7, 3]


def test_compensation_follows_equation_5_1_on_a_hand_made_record():
    labels = torch.arange(8) % 4
    s = Lilac(incremental=False, epsilon=0.4)
    ctx = started(s, labels)
    rec = ctx.record
    rec.correct[:] = torch.tensor([True, False, True, False, False, True, True, False])
    rec.loss_epoch[:] = torch.tensor([0, 0, 0, 0, 0, 0, 0, -1])  # sample 7: never trained
    drive(s, ctx, range(2))  # epoch 1 = first AC epoch without IL
    idx = torch.tensor([0, 1, 3, 7, 4])
    t = s.train_targets(idx, labels[idx])
    expected = torch.tensor([[1.0, 0.0, 0.0, 0.0],     # correct: one-hot
                             [0.2, 0.4, 0.2, 0.2],     # wrong, y = 1: eps and (1-eps)/(L-1)
                             [0.2, 0.2, 0.2, 0.4],     # wrong, y = 3
                             [0.0, 0.0, 0.0, 1.0],     # never trained: one-hot
                             [0.4, 0.2, 0.2, 0.2]])    # wrong, y = 0
    assert torch.allclose(t, expected)
    assert s.epoch_diagnostics()["compensated_share"] == pytest.approx(3 / 5)


def test_compensated_targets_match_the_thesis_formula():
    y = torch.tensor([2, 0])
    L, eps = 5, 0.7
    onehot = torch.nn.functional.one_hot(y, L).float()
    thesis = ((eps * L - 1) / (L - 1)) * onehot + ((1 - eps) / (L - 1)) * torch.ones(2, L)
    got = compensated_targets(y, torch.tensor([True, True]), L, eps)
    assert torch.allclose(got, thesis)
    assert torch.allclose(got.sum(1), torch.ones(2))


def test_ablations_switch_each_phase_off():
    only_ac = Lilac(incremental=False)
    ctx = started(only_ac)
    order = drive(only_ac, ctx, range(1))[0]
    assert sorted(order.tolist()) == list(range(200))
    assert only_ac.train_targets(torch.arange(3), LABELS[:3]) is None  # epoch 0: no AC yet
    drive(only_ac, ctx, range(1, 2))
    assert only_ac.train_targets(torch.arange(3), LABELS[:3]).shape == (3, 10)

    only_il = Lilac(initial=2, step=4, compensate=False)
    ctx = started(only_il)
    drive(only_il, ctx, range(9))
    assert only_il.train_targets(torch.arange(3), LABELS[:3]) is None  # all known, no AC


def test_resuming_from_the_state_gives_identical_orders_and_targets():
    ref = Lilac(initial=2, step=3, interval=2)
    ctx = started(ref)
    orders = drive(ref, ctx, range(9))
    s = Lilac(initial=2, step=3, interval=2)
    ctx2 = started(s)
    drive(s, ctx2, range(3))
    state = s.state_dict()
    fresh = Lilac(initial=2, step=3, interval=2)
    ctx3 = started(fresh)
    fresh.load_state_dict(state)
    assert fresh.revealed == 5
    assert torch.equal(fresh.train_targets(torch.arange(10), LABELS[:10]),
                       torch.tensor([0, 1, 2, 3, 4, 9, 9, 9, 9, 9]))
    rest = drive(fresh, ctx3, range(3, 9))
    assert all(torch.equal(a, b) for a, b in zip(orders[3:], rest))


@pytest.mark.parametrize("stop_at_batch", [5, 80])  # inside IL, inside AC
def test_trainer_resume_equals_uninterrupted(tiny_config, digits, stop_at_batch):
    result = assert_resume_equals_uninterrupted(
        lambda **kw: tiny_config(epochs=6, **kw), digits,
        lambda: Lilac(initial=4, step=3, interval=1), stop_at_batch)
    assert [e["method"]["revealed"] for e in result["epochs"]] == [4, 7, 10, 10, 10, 10]


def test_trainer_trains_unrevealed_classes_as_the_pseudo_label(tiny_config, digits):
    train, test = digits
    cfg = tiny_config(epochs=5, method=["lilac"], method_args={"initial": 2, "step": 4},
                      lr=0.1)
    trainer = Trainer(cfg, train=train, test=test, log=lambda s: None)
    seen = {}

    def after_batch(tr):  # predictions of the model after the first epoch's last batch
        if tr._stats.epoch == 0 and tr._stats.samples_loaded == len(tr.sampler):
            with torch.no_grad():
                seen["pred"] = tr.model(train.x).argmax(1)

    trainer.on_batch_end = after_batch
    result = trainer.fit()
    assert set(seen["pred"].tolist()) <= {0, 1, 9}  # only labels 0, 1 and rho were targets
    epochs = result["epochs"]
    assert [e["method"]["revealed"] for e in epochs] == [2, 6, 10, 10, 10]
    n0 = int((train.y < 2).sum())
    assert epochs[0]["samples_trained"] == 2 * n0
    # IL: epochs 0-1; T = IL + 1 = 3: compensation of the samples the model got wrong
    assert [e["method"]["compensated_share"] > 0 for e in epochs] == [False] * 3 + [True] * 2


@pytest.mark.parametrize("kwargs, match", [
    ({"initial": 0}, "initial"), ({"step": 0}, "step"), ({"interval": 0}, "interval"),
    ({"epsilon": 0.0}, "epsilon"), ({"epsilon": 1.5}, "epsilon"), ({"ac_start": -1}, "ac_start"),
    ({"pseudo_label": "first"}, "pseudo_label"),
    ({"incremental": False, "compensate": False}, "nothing of LILAC"),
])
def test_refuses_impossible_hyper_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Lilac(**kwargs)


@pytest.mark.parametrize("kwargs, epochs, match", [
    ({"initial": 10}, 10, "below the number of classes"),
    ({"initial": 2, "step": 1, "interval": 2}, 10, "IL phase takes 16 epochs"),
    ({"ac_start": 2}, 10, "must be at least 5"),
    ({"ac_start": 4}, 10, "must be at least 5"),  # the first epoch after IL: still refused
    ({"pseudo_label": 0}, 10, "rho = 0. is revealed from the start"),
    ({"pseudo_label": 7}, 10, r"rho = 7. is revealed at epoch 3.*\[8, 9\]"),
    ({"initial": 2, "step": 3, "interval": 2, "pseudo_label": 7}, 10, "at epoch 4"),
    ({"ac_start": 10, "incremental": False}, 10, "never"),
    ({"pseudo_label": 10}, 10, "below 10"),
])
def test_refuses_settings_impossible_for_the_run(kwargs, epochs, match):
    with pytest.raises(ValueError, match=match):
        started(Lilac(**kwargs), epochs=epochs)


def test_the_strict_rules_accept_their_boundaries():
    started(Lilac(ac_start=5))  # IL = epochs 0-3; T = 5 is the default
    started(Lilac(pseudo_label=8))  # revealed with 9 in the last interval
    started(Lilac(incremental=False, pseudo_label=0, ac_start=0))  # no IL: nothing to clash
    s = Lilac(initial=2, step=3, interval=2)
    assert s.last_revealed_first(10) == 8 and Lilac(step=2).last_revealed_first(10) == 8
    assert Lilac(initial=3, step=2).last_revealed_first(10) == 9


def test_refuses_an_in_batch_selector_during_il(tiny_config, digits):
    train, test = digits
    cfg = tiny_config(epochs=6, method=["lilac", "sb"])
    with pytest.raises(ValueError, match="in-batch selector 'sb'.*incremental=false"):
        Trainer(cfg, train=train, test=test, log=lambda s: None).fit()
    # only AC: nothing to balance, the selector may choose
    cfg = tiny_config(epochs=2, method=["lilac", "sb"], run_name="only-ac",
                      method_args={"lilac.incremental": False})
    result = Trainer(cfg, train=train, test=test, log=lambda s: None).fit()
    assert result["status"] == "finished"


def capture_batches(trainer: Trainer) -> list[tuple[int, int, int]]:
    """Record ``(epoch, #S, #U)`` of every batch the engine trains on (the targets hook is
    called once per training batch with its indices and true labels)."""
    seen: list[tuple[int, int, int]] = []
    targets = trainer.sampler.train_targets

    def spy(idx, y):
        u = int((y >= trainer.sampler.revealed).sum())
        seen.append((trainer.ctx.epoch, len(y) - u, u))
        return targets(idx, y)

    trainer.sampler.train_targets = spy
    return seen


@pytest.mark.parametrize("batch_size", [64, 15])
def test_every_engine_batch_of_the_il_phase_is_half_s_half_u(tiny_config, digits, batch_size):
    train, test = digits
    cfg = tiny_config(epochs=5, batch_size=batch_size, method=["lilac"],
                      method_args={"initial": 2, "step": 3})  # IL: epochs 0-2
    trainer = Trainer(cfg, train=train, test=test, log=lambda s: None)
    seen = capture_batches(trainer)
    result = trainer.fit()
    for epoch in range(3):
        batches = [(s, u) for e, s, u in seen if e == epoch]
        n_s = int((train.y < 2 + 3 * epoch).sum())
        assert sum(s for s, _ in batches) == n_s  # every S sample, the last batch included
        assert all(u - s == batch_size % 2 for s, u in batches[:-1])
        s, u = batches[-1]  # the last, partial batch: the c leftover S samples, c U samples
        c = n_s - (batch_size // 2) * (len(batches) - 1)
        # or, when c + c is under half a batch, that tail joined to the batch before it
        assert u == s == c or (s == c and u - s == batch_size % 2 and s > batch_size // 2)
        assert result["epochs"][epoch]["samples_trained"] == sum(s + u for s, u in batches)
    assert all(u == 0 for e, s, u in seen if e >= 3)


def test_works_on_a_pool_shrunk_by_an_offline_reducer(tiny_config, digits):
    train, test = digits
    cfg = tiny_config(epochs=5, batch_size=16, method=["rpc", "lilac"],
                      method_args={"rpc.alpha": 0.5, "lilac.initial": 2, "lilac.step": 4})
    trainer = Trainer(cfg, train=train, test=test, log=lambda s: None)
    seen = capture_batches(trainer)
    orders = []
    begin = trainer.sampler.begin_epoch

    def keep(ctx):
        begin(ctx)
        orders.append(trainer.sampler.active.clone())

    trainer.sampler.begin_epoch = keep
    result = trainer.fit()
    pool = trainer.sampler.pool
    assert len(pool) < 0.6 * len(train)
    assert all(bool(torch.isin(o, pool).all()) for o in orders)  # S and U from the pool
    s_pool = pool[train.y[pool] < 2]
    assert sorted(orders[0][train.y[orders[0]] < 2].tolist()) == s_pool.tolist()
    assert all(s == u for e, s, u in seen if e < 2)
    assert [e["samples_loaded"] for e in result["epochs"]][2:] == [len(pool)] * 3


def test_resume_from_the_checkpoint_at_the_end_of_il(tiny_config, digits, tmp_path):
    """From the epoch-boundary checkpoint saved as IL ends (before the first plain epoch)."""
    ref, _, result = resume_from_epoch_start(
        lambda **kw: tiny_config(epochs=4, **kw), digits, lambda: Lilac(initial=2, step=4),
        2, tmp_path)
    assert [e["method"] for e in result["epochs"]] == [e["method"] for e in ref.history]
    assert [e["method"]["revealed"] for e in result["epochs"]] == [2, 6, 10, 10]


def test_registered_and_built_by_name():
    s = build_method("lilac", {"initial": 3, "epsilon": 0.5})
    assert isinstance(s, Lilac) and s.initial == 3 and s.epsilon == 0.5 and s.relabels
