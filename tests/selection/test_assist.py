"""ASSIST batchwise filtering: the filter, every buffer rule, starvation, diagnostics, the
loss selectors behind the filter, the engine and checkpoint/resume."""

import copy
import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from thrifty.cli import main
from thrifty.data import Batch, TensorData
from thrifty.engine import (
    EpochSampler,
    Packer,
    SampleRecord,
    SelectionError,
    SelectionInput,
    TrainContext,
    Trainer,
    TrainingInterrupted,
)
from thrifty.methods import available_methods, build_method
from thrifty.selection.assist import AssistSelector, accuracy_filter, misclassified, top2_margin
from thrifty.selection.loss_selectors import top_k, top_q

QUIET = {"log": lambda s: None}


# ---------------------------------------------------------------------- helpers
def _ctx(train_size=1000, rho=4, seed=0):
    return TrainContext(epoch=0, epochs=10, record=SampleRecord(max(train_size, 1)),
                        batch_size=rho, seed=seed, generator=torch.Generator().manual_seed(seed),
                        score=None, num_classes=3,
                        labels=torch.zeros(train_size, dtype=torch.long))


def _raw(wrong, start=0):
    """A fresh SelectionInput whose sample i is misclassified iff ``wrong[i]``."""
    wrong = torch.as_tensor(wrong, dtype=torch.bool)
    y = torch.zeros(len(wrong), dtype=torch.long)
    logits = F.one_hot(wrong.long(), 3).float() * 4
    return SelectionInput(F.cross_entropy(logits, y, reduction="none"), logits, y,
                          torch.arange(start, start + len(wrong)), True)


class Driver:
    """The engine's part around a selector: a real Packer fed with the chosen samples."""

    def __init__(self, selector, rho=4, train_size=1000):
        self.selector, self.rho = selector, rho
        self.ctx = _ctx(train_size, rho)
        selector.setup(self.ctx)
        self.packer = Packer(rho, selector.packing)
        self.steps, self.sizes, self.next = 0, [], 0

    def batch(self, wrong):
        sel = _raw(wrong, self.next)
        self.next += len(wrong)
        pos = self.selector.select(sel, self.ctx)
        x = sel.idx.float()[:, None]
        self._train(self.packer.add(Batch(x[pos], sel.targets[pos], sel.idx[pos])))
        return pos

    def _train(self, released):
        self.steps += len(released)
        self.sizes += [len(b.idx) for b in released]

    def end_epoch(self):  # the last epoch's small remainder is dropped, as in RunCore
        self._train(self.packer.end_epoch(last=self.ctx.epoch >= self.ctx.epochs - 1))
        diag = self.selector.epoch_diagnostics()
        self.ctx.epoch += 1
        steps, self.steps = self.steps, 0
        return steps, diag


def _epoch(driver, batches):
    for wrong in batches:
        driver.batch(wrong)
    return driver.end_epoch()


ALL = [True] * 4


class ConstantModel(nn.Module):
    """Predicts class 0 for every input (logits fixed); has parameters so it can 'train'."""

    def __init__(self, features=4, classes=3, logits=(4.0, 0.0, 0.0)):
        super().__init__()
        self.lin = nn.Linear(features, classes)
        self.register_buffer("fixed", torch.tensor(logits))

    def forward(self, x):
        return self.fixed + 0.0 * self.lin(x.flatten(1))


def _data(labels):
    y = torch.as_tensor(labels, dtype=torch.long)
    x = torch.randn(len(y), 4, generator=torch.Generator().manual_seed(0))
    return TensorData(x, y, 3, "hand-made")


def _fit(cfg, labels, selector, sampler=None):
    data = _data(labels)
    trainer = Trainer(cfg, train=data, test=data, model=ConstantModel(), selector=selector,
                      sampler=sampler, **QUIET)
    return trainer, trainer.fit()


def _col(result, key):
    in_method = key.startswith(("selector_", "overflow", "end_of_epoch"))
    return [e["method"][key] if in_method else e[key] for e in result["epochs"]]


# ---------------------------------------------------------------------- the filter
def test_hard_filter_is_argmax_different_from_label():
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(50, 5, generator=g), torch.randint(0, 5, (50,), generator=g)
    expected = torch.tensor([int(torch.argmax(row)) != int(t) for row, t in zip(logits, y)])
    assert torch.equal(misclassified(logits, y), expected)


def test_margin_uses_the_two_largest_probabilities_in_descending_order():
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.2, 0.35, 0.45], [0.9, 0.05, 0.05]])
    logits = probs.log()
    assert torch.allclose(top2_margin(logits), torch.tensor([0.2, 0.1, 0.85]), atol=1e-6)
    y = torch.tensor([0, 0, 0])  # sample 1 is misclassified
    wrong, marginal = accuracy_filter(logits, y, margin=0.1)
    assert wrong.tolist() == [False, True, False]
    # an ascending sort would give 0.2 - 0.3 < 0.1 and accept sample 0: it must not
    assert marginal.tolist() == [False, False, False]
    assert accuracy_filter(logits, y, margin=0.25)[1].tolist() == [True, False, False]
    assert accuracy_filter(logits, y)[1].tolist() == [False, False, False]


def test_margin_against_a_direct_computation():
    g = torch.Generator().manual_seed(1)
    logits, y = torch.randn(200, 4, generator=g) * 2, torch.randint(0, 4, (200,), generator=g)
    p = torch.softmax(logits, 1).sort(1, descending=True).values
    correct = logits.argmax(1) == y
    for alpha in (0.05, 0.3, 0.7):
        expected = correct & (p[:, 0] - p[:, 1] <= alpha)
        assert torch.equal(accuracy_filter(logits, y, alpha)[1], expected)
        assert expected.any() and (correct & ~expected).any()


def test_selector_accepts_misclassified_and_marginal_samples():
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.2, 0.35, 0.45], [0.9, 0.05, 0.05],
                          [0.4, 0.35, 0.25]])
    logits, y = probs.log(), torch.zeros(4, dtype=torch.long)
    sel = SelectionInput(F.cross_entropy(logits, y, reduction="none"), logits, y,
                         torch.arange(4), True)
    s = AssistSelector(margin=0.1)
    s.setup(_ctx())
    assert s.select(sel, _ctx()).tolist() == [1, 3]
    d = s.epoch_diagnostics()
    assert (d["selector_misclassified"], d["selector_marginal"], d["selector_accepted"]) == (
        1.0, 1.0, 2.0)
    assert AssistSelector().select(sel, _ctx()).tolist() == [1]


# ---------------------------------------------------------------------- buffer rules
def test_faithful_buffer_two_raw_batches_per_step_discard_and_persistence():
    d = Driver(AssistSelector(), rho=4)
    steps, diag = _epoch(d, [ALL] * 9)
    # strict '>': 4 accepted never trigger a step; the 2nd raw batch does, the rest is dropped
    assert steps == 4 and d.sizes == [4] * 4
    assert d.packer.discarded == 16 and d.packer.count == 4
    assert diag["selector_steps"] == 4 and diag["selector_pending"] == 4
    assert diag["selector_raw_batches_per_step"] == 9 / 4
    # the buffer persists: the first raw batch of the next epoch completes a step
    d.batch(ALL)
    assert d.steps == 1
    steps, _ = _epoch(d, [ALL] * 8)
    assert steps == 5


def test_strict_needs_at_least_two_raw_batches_per_step():
    g = torch.Generator().manual_seed(0)
    d = Driver(AssistSelector(end_of_epoch="drop"), rho=4)
    for _ in range(5):
        batches = [(torch.rand(4, generator=g) < 0.8).tolist() for _ in range(12)]
        steps, _ = _epoch(d, batches)
        assert 2 * steps <= 12
    d2 = Driver(AssistSelector(strict=False), rho=4)
    assert _epoch(d2, [ALL] * 12)[0] == 12  # '>=': every full raw batch is a step


def test_overflow_carry_keeps_the_rest():
    d = Driver(AssistSelector(overflow="carry"), rho=4)
    steps, _ = _epoch(d, [ALL] * 9)
    assert steps == 8 and d.packer.discarded == 0 and d.packer.count == 4


def test_if_versus_while_with_larger_raw_batches():
    big = [True] * 12
    d_if = Driver(AssistSelector(strict=False), rho=4)
    assert _epoch(d_if, [big] * 3)[0] == 3 and d_if.packer.discarded == 24
    d_while = Driver(AssistSelector(strict=False, overflow="carry", repeat=True), rho=4)
    assert _epoch(d_while, [big] * 3)[0] == 9 and d_while.packer.discarded == 0
    d_if_carry = Driver(AssistSelector(strict=False, overflow="carry"), rho=4)
    assert _epoch(d_if_carry, [big] * 3)[0] == 3 and d_if_carry.packer.count == 24


def test_end_of_epoch_flush_and_drop():
    flush = Driver(AssistSelector(end_of_epoch="flush"), rho=4)
    steps, diag = _epoch(flush, [ALL] * 9)
    assert steps == 5 and flush.sizes[-1] == 4 and flush.packer.count == 0
    assert diag["selector_steps"] == 5 and diag["selector_pending"] == 0
    assert diag["selector_end_of_epoch_dropped"] == 0
    drop = Driver(AssistSelector(end_of_epoch="drop"), rho=4)
    steps, diag = _epoch(drop, [ALL] * 9)
    # 4 steps, 4 x 4 overflow; the 4 pending at the end are dropped, counted apart (§1.7(b))
    assert steps == 4 and diag["selector_pending"] == 0
    assert (drop.packer.discarded, drop.packer.end_dropped) == (16, 4)
    assert diag["selector_end_of_epoch_dropped"] == 4
    assert _epoch(drop, [ALL] * 9)[0] == 4  # nothing carried over


def test_unstable_batch_size_steps_on_each_raw_batch():
    d = Driver(AssistSelector(accumulate=False), rho=4)
    batches = [[True, False, True, False], [False] * 4, [True] * 3 + [False], ALL]
    steps, diag = _epoch(d, batches)
    assert steps == 3 and d.sizes == [2, 3, 4]  # the empty raw batch takes no step
    assert diag["selector_steps"] == 3 and d.packer.count == 0


RULES = [dict(), dict(strict=False), dict(overflow="carry"), dict(repeat=True),
         dict(overflow="carry", repeat=True, strict=False), dict(end_of_epoch="flush"),
         dict(end_of_epoch="drop", overflow="carry"), dict(accumulate=False)]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("raw", [4, 10])
def test_predicted_steps_equal_the_packer(rule, raw):
    g = torch.Generator().manual_seed(raw)
    d = Driver(AssistSelector(**rule), rho=4)
    d.ctx.epochs = 4  # the last epoch's end-of-epoch rule included
    for _ in range(4):
        share = float(torch.rand(1, generator=g))
        batches = [(torch.rand(raw, generator=g) < share).tolist() for _ in range(7)]
        steps, diag = _epoch(d, batches)
        assert diag["selector_steps"] == steps
        assert diag["selector_pending"] == d.packer.count
        assert diag["selector_raw_batches"] == 7
        assert diag["selector_end_of_epoch_dropped"] == d.packer.end_dropped
        d.packer.end_dropped = 0


# ---------------------------------------------------------------------- loss selectors
def test_loss_selector_ranks_only_the_misclassified():
    g = torch.Generator().manual_seed(2)
    logits, y = torch.randn(64, 3, generator=g), torch.randint(0, 3, (64,), generator=g)
    losses = F.cross_entropy(logits, y, reduction="none")
    sel = SelectionInput(losses, logits, y, torch.arange(64), True)
    wrong = torch.nonzero(logits.argmax(1) != y).flatten()
    got = AssistSelector(selector="top-k", k=5).select(sel, _ctx())
    assert torch.equal(got, wrong[top_k(losses[wrong], 5)])
    assert set(got.tolist()) == set(wrong[torch.topk(losses[wrong], 5).indices].tolist())
    got = AssistSelector(filter="none", selector="top-q", q=0.75).select(sel, _ctx())
    assert torch.equal(got, top_q(losses, 0.75))
    share = AssistSelector(selector="top-k", k=0.5).select(sel, _ctx())
    assert len(share) == -(-len(wrong) // 2)


def test_random_selectors_use_the_context_generator():
    g = torch.Generator().manual_seed(3)
    logits, y = torch.randn(64, 3, generator=g), torch.randint(0, 3, (64,), generator=g)
    sel = SelectionInput(F.cross_entropy(logits, y, reduction="none"), logits, y,
                         torch.arange(64), True)
    for kind in ("weighted", "q-split"):
        a = AssistSelector(selector=kind, k=8).select(sel, _ctx(seed=5))
        b = AssistSelector(selector=kind, k=8).select(sel, _ctx(seed=5))
        c = AssistSelector(selector=kind, k=8).select(sel, _ctx(seed=6))
        assert torch.equal(a, b) and not torch.equal(a, c)
        assert misclassified(logits[a], y[a]).all()


@pytest.mark.parametrize("kwargs,match", [
    ({"margin": 0.0}, "margin"), ({"margin": 1.0}, "margin"), ({"margin": -0.1}, "margin"),
    ({"filter": "none", "margin": 0.2}, "margin"), ({"filter": "soft"}, "filter"),
    ({"overflow": "keep"}, "overflow"), ({"end_of_epoch": "never"}, "end_of_epoch"),
    ({"strict": "yes"}, "strict"), ({"starvation": "wait"}, "starvation"),
    ({"patience": 0}, "patience"), ({"selector": "top-k", "k": 0}, "k must"),
    ({"selector": "top-q", "q": 1.5}, "q must"), ({"selector": "q-split", "p": 0}, "p must"),
    ({"selector": "q-split", "buckets": 1}, "buckets"), ({"k": 3}, "not a hyper-parameter"),
])
def test_impossible_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AssistSelector(**kwargs)


# ---------------------------------------------------------------------- starvation
def test_starvation_random_falls_back_to_the_raw_batch_after_patience():
    d = Driver(AssistSelector(patience=8), rho=4)
    assert len(d.batch([False] * 4)) == 0          # 4 correct in a row: not starved yet
    assert d.batch([False] * 4).tolist() == [0, 1, 2, 3]  # 8: train on the raw batch
    assert len(d.batch([False] * 4)) == 4          # still starved
    assert d.batch([True, False, False, False]).tolist() == [0]  # accepted: filter again
    assert len(d.batch([False] * 4)) == 0          # the run starts over
    steps, diag = d.end_epoch()
    assert diag["selector_starved_batches"] == 2 and diag["selector_fallback_samples"] == 8
    assert diag["selector_accepted"] == 1 and diag["selector_acceptance_ratio"] == 1 / 20
    assert steps == diag["selector_steps"] == 1


def test_starvation_skip_and_error():
    skip = Driver(AssistSelector(starvation="skip", patience=4), rho=4)
    for _ in range(3):
        assert len(skip.batch([False] * 4)) == 0
    steps, diag = skip.end_epoch()
    assert steps == 0 and diag["selector_starved_batches"] == 3
    err = Driver(AssistSelector(starvation="error", patience=8), rho=4)
    err.batch([False] * 4)
    with pytest.raises(SelectionError, match="starved"):
        err.batch([False] * 4)


def test_default_patience_is_one_epoch_of_forwarded_samples():
    s = AssistSelector()
    s.setup(_ctx(train_size=123))
    assert s.patience == 123  # first epoch: the training set, the most an epoch can load
    outside = AssistSelector()
    outside.setup(_ctx(train_size=0))
    assert outside.patience is None  # unknown outside the engine until an epoch was seen
    explicit = AssistSelector(patience=5)
    explicit.setup(_ctx(train_size=0))
    assert explicit.patience == 5
    # measured: an epoch of 3 raw batches (12 samples) sets patience to 12 ...
    d = Driver(AssistSelector(), rho=4, train_size=1000)
    _epoch(d, [ALL] * 3)
    assert d.selector.patience == 12
    # ... so 12 samples in a row without an accepted one are starvation, not 1000
    assert len(d.batch([False] * 4)) == 0 and len(d.batch([False] * 4)) == 0
    assert d.batch([False] * 4).tolist() == [0, 1, 2, 3]
    _, diag = d.end_epoch()
    assert diag["selector_starved_batches"] == 1 and d.selector.patience == 12
    assert explicit.state_dict()["patience"] == 5


# ---------------------------------------------------------------------- through the engine
WRONG = [1] * 36   # the constant model predicts 0: every sample misclassified
RIGHT = [0] * 36   # every sample classified correctly


@pytest.mark.parametrize("kwargs,fwd,steps,overflow,dropped", [
    ({}, None, [4, 5, 4], [16, 20, 16], [0, 0, 0]),                           # faithful
    ({"end_of_epoch": "drop"}, None, [4, 4, 4], [16, 16, 16], [4, 4, 4]),
    ({"end_of_epoch": "flush"}, None, [5, 5, 5], [16, 16, 16], [0, 0, 0]),
    ({"strict": False}, None, [9, 9, 9], [0, 0, 0], [0, 0, 0]),
    ({"overflow": "carry"}, None, [8, 9, 9], [0, 0, 0], [0, 0, 0]),
    ({"strict": False, "overflow": "carry", "repeat": True}, 12, [9, 9, 9], [0, 0, 0],
     [0, 0, 0]),
    ({"strict": False}, 12, [3, 3, 3], [24, 24, 24], [0, 0, 0]),      # "if" with raw 12
])
def test_step_counts_through_the_engine(tiny_config, kwargs, fwd, steps, overflow, dropped):
    cfg = tiny_config(epochs=3, batch_size=4, forward_batch_size=fwd)
    trainer, result = _fit(cfg, WRONG, AssistSelector(**kwargs))
    assert _col(result, "optimizer_steps") == steps == _col(result, "selector_steps")
    # overflow only (spec §1.7(b)); the drops at the end of an epoch are counted apart
    assert _col(result, "overflow_discarded") == overflow
    assert _col(result, "selector_end_of_epoch_dropped") == dropped
    assert _col(result, "end_of_epoch_dropped") == dropped  # the engine's count, per epoch
    assert _col(result, "samples_forwarded") == [36] * 3
    assert _col(result, "selector_acceptance_ratio") == [1.0] * 3
    assert all(e["samples_trained"] == 4 * e["optimizer_steps"] for e in result["epochs"])


def test_unstable_batch_size_through_the_engine(tiny_config):
    labels = [1, 0] * 18
    cfg = tiny_config(epochs=2, batch_size=4)
    _, result = _fit(cfg, labels, AssistSelector(accumulate=False))
    assert _col(result, "samples_trained") == [18, 18]
    assert _col(result, "optimizer_steps") == _col(result, "selector_steps")
    assert all(5 <= s <= 9 for s in _col(result, "optimizer_steps"))


def test_starvation_through_the_engine(tiny_config):
    # random, patience = one raw batch: plain SGD through the faithful buffer
    _, result = _fit(tiny_config(epochs=2, batch_size=4, run_name="r"), RIGHT,
                     AssistSelector(patience=4))
    assert _col(result, "optimizer_steps") == [4, 5]
    assert _col(result, "selector_starved_batches") == [9, 9]
    assert _col(result, "selector_fallback_samples") == [36, 36]
    assert _col(result, "selector_accepted") == [0, 0]
    # default patience (the training set): detected at the last raw batch of epoch 1,
    # an epoch without a step is allowed, epoch 2 trains on every raw batch
    _, result = _fit(tiny_config(epochs=2, batch_size=4, run_name="d"), RIGHT,
                     AssistSelector())
    assert _col(result, "optimizer_steps") == [0, 5]
    assert _col(result, "selector_starved_batches") == [1, 9]
    # skip: no step at all, counted, no engine error
    _, result = _fit(tiny_config(epochs=2, batch_size=4, run_name="s"), RIGHT,
                     AssistSelector(starvation="skip", patience=4))
    assert _col(result, "samples_trained") == [0, 0]
    assert _col(result, "selector_starved_batches") == [9, 9]
    with pytest.raises(SelectionError, match="starved"):
        _fit(tiny_config(epochs=2, batch_size=4, run_name="e"), RIGHT,
             AssistSelector(starvation="error"))


@pytest.mark.parametrize("args", [{}, {"overflow": "carry", "forward_batch_size": 128},
                                  {"selector": "q-split", "k": 16, "end_of_epoch": "flush"},
                                  {"margin": 0.3, "repeat": True, "forward_batch_size": 256},
                                  {"end_of_epoch": "drop", "selector": "top-k", "k": 8,
                                   "fill": "random"}])
def test_work_balance_on_digits(tiny_config, digits, args):
    args = dict(args)
    fwd = args.pop("forward_batch_size", None)
    cfg = tiny_config(epochs=3, batch_size=64, forward_batch_size=fwd)
    trainer = Trainer(cfg, train=digits[0], test=digits[1], selector=AssistSelector(**args),
                      **QUIET)
    result = trainer.fit()
    pending = 0
    for e in result["epochs"]:
        m = e["method"]
        assert m["selector_steps"] == e["optimizer_steps"]
        assert m["selector_forwarded"] == e["samples_forwarded"] == len(digits[0])
        given = m["selector_accepted"] + m["selector_fallback_samples"]
        assert given == e["samples_trained"] + m["overflow_discarded"] + m["selector_pending"] \
            + m["selector_end_of_epoch_dropped"] - pending
        pending = m["selector_pending"]
    assert pending == trainer.packer.count


def test_registered_with_identity_off():
    spec = available_methods()["assist"]
    assert spec.place == "selector" and spec.factory is AssistSelector
    s = build_method("assist", {"margin": 0.2, "selector": "top-k", "k": 32})
    assert not s.identity and s.needs_forward(_ctx()) and s.margin == 0.2
    assert s.packing.strict and s.packing.overflow == "discard" and not s.packing.repeat
    assert s.packing.end_of_epoch == "carry" and not s.packing.immediate
    assert AssistSelector(accumulate=False).packing.immediate
    assert type(s).packing is not s.packing  # set per instance, class default untouched


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("args", [{}, {"selector": "weighted", "k": 0.5, "overflow": "carry"}])
def test_resume_equals_uninterrupted(tiny_config, digits, args):
    kw = dict(epochs=3, batch_size=64)
    ref = Trainer(tiny_config(run_name="ref", **kw), train=digits[0], test=digits[1],
                  selector=build_method("assist", args), **QUIET)
    ref.fit()
    state = {"batches": 0}

    def interrupt(trainer):  # 21 forward batches per epoch (the 3-sample tail joins the
        # 21st): cut in epoch 2
        state["batches"] += 1
        if state["batches"] == 30:
            trainer.request_stop()

    cut = Trainer(tiny_config(run_name="cut", **kw), train=digits[0], test=digits[1],
                  selector=build_method("assist", args), on_batch_end=interrupt, **QUIET)
    with pytest.raises(TrainingInterrupted):
        cut.fit()
    ckpt = torch.load(cut.run_dir / "checkpoint.pt", weights_only=True)
    assert ckpt["core"]["selector"]["counts"]["raw_batches"] == 9
    pending = ckpt["core"]["packer"]["pending"]
    assert ckpt["core"]["selector"]["pending"] == (0 if pending is None else len(pending["idx"]))
    resumed = Trainer.resume(cut.run_dir, train=digits[0], test=digits[1],
                             selector=build_method("assist", args), **QUIET)
    result = resumed.fit()
    a, b = _weights(ref.model), _weights(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    for key in ("samples_trained", "samples_forwarded", "optimizer_steps", "method"):
        assert [e[key] for e in result["epochs"]] == [e[key] for e in ref.history]


def test_cli_trains_assist_with_a_margin(tmp_path, capsys):
    assert main(["train", "--workload", "digits-mlp", "--epochs", "1", "--out-dir",
                 str(tmp_path), "--no-progress", "--method", "assist", "--method-arg",
                 "margin=0.2", "--forward-batch-size", "128", "--run-name", "a"]) == 0
    assert "fwd 1347" in capsys.readouterr().out
    assert main(["train", "--workload", "digits-mlp", "--epochs", "1", "--out-dir",
                 str(tmp_path), "--no-progress", "--method", "assist", "--method-arg",
                 "margin=1.5"]) == 2
    assert "margin" in capsys.readouterr().err


def test_state_carries_the_starvation_run_and_the_buffer_count():
    d = Driver(AssistSelector(patience=8), rho=4)
    d.batch([False] * 4)
    d.batch([True] * 3 + [False])
    d.batch([False] * 4)
    buf = io.BytesIO()
    torch.save(d.selector.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    assert state["run"] == 4 and state["pending"] == 3
    resumed = Driver(AssistSelector(patience=8), rho=4)
    resumed.selector.load_state_dict(state)
    assert len(resumed.batch([False] * 4)) == 4  # run 8: starved right away
    assert resumed.selector.epoch_diagnostics()["selector_raw_batches"] == 4


def test_in_a_plain_loop_with_online_selection():
    from thrifty.selection.online import OnlineSelection

    measured = OnlineSelection(AssistSelector(), batch_size=4)  # no training set known
    assert measured.selector.patience is None
    online = OnlineSelection(AssistSelector(patience=16), batch_size=4)
    model = ConstantModel()
    x, y = torch.randn(24, 4), torch.tensor([1, 0] * 12)  # 12 misclassified
    loader = [(x[i:i + 4], y[i:i + 4]) for i in range(0, 24, 4)]
    batches = list(online.batches(model, loader))
    assert all(len(b) == 4 and (b != 0).all() for _, b in batches)
    # 2 accepted per raw batch: a step every 3rd raw batch ('>' 4), 2 overflow each
    assert len(batches) == 2 == online.diagnostics["selector_steps"]
    # the measured patience: one epoch of 24 forwarded samples, known after end_epoch
    list(measured.batches(model, loader))
    assert measured.selector.patience == 24
    with pytest.raises(ValueError, match="epochs="):
        OnlineSelection(AssistSelector(selector="top-q", schedule="linear", final_ratio=0.1),
                        batch_size=4)


# ---------------------------------------------------------------------- starvation per epoch
class HalfSampler(EpochSampler):
    """Loads the first half of the pool every epoch (like a sampler or reducer at 50%)."""

    name = "half"

    def begin_epoch(self, ctx):
        self.active = self.pool[: len(self.pool) // 2]


def test_starvation_is_detected_within_one_epoch_behind_a_half_size_sampler(tiny_config):
    # 18 of 36 samples loaded per epoch, all classified correctly. The old default patience
    # (36, the training set) would need two empty epochs; now the step-less first epoch is
    # starvation and the second epoch falls back on every raw batch.
    _, result = _fit(tiny_config(epochs=3, batch_size=4), RIGHT, AssistSelector(),
                     sampler=HalfSampler())
    assert _col(result, "samples_forwarded") == [18, 18, 18]
    assert _col(result, "selector_starved_epochs") == [1, 0, 0]
    assert _col(result, "selector_starved_batches") == [0, 5, 5]
    assert _col(result, "selector_fallback_samples") == [0, 18, 18]
    steps = _col(result, "optimizer_steps")
    assert steps[0] == 0 and steps[1] > 0 and steps[2] > 0
    assert steps == _col(result, "selector_steps")


FEW_WRONG = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] * 3  # 3 of 36 misclassified


def test_drop_epoch_without_a_step_is_starvation_and_falls_back(tiny_config):
    # Each epoch accepts 3 samples < rho = 4 and drops them at its end. Every accepted sample
    # restarts the patience count, so before this rule no step was ever taken.
    _, result = _fit(tiny_config(epochs=4, batch_size=4, run_name="r"), FEW_WRONG,
                     AssistSelector(end_of_epoch="drop"))
    steps = _col(result, "optimizer_steps")
    assert _col(result, "selector_starved_epochs") == [1, 0, 1, 0]  # alternates
    assert steps[0] == steps[2] == 0 and steps[1] > 0 and steps[3] > 0
    assert _col(result, "selector_end_of_epoch_dropped")[0] == 3
    assert _col(result, "selector_accepted") == [3, 3, 3, 3]
    fallback = _col(result, "selector_fallback_samples")
    assert fallback[0] == fallback[2] == 0 and fallback[1] == fallback[3] > 0
    assert all(math.isnan(v) for v, s in zip(_col(result, "selector_raw_batches_per_step"),
                                            steps) if s == 0)
    # skip: counted, never a step; error: stops at the end of the first step-less epoch
    _, result = _fit(tiny_config(epochs=3, batch_size=4, run_name="s"), FEW_WRONG,
                     AssistSelector(end_of_epoch="drop", starvation="skip"))
    assert _col(result, "optimizer_steps") == [0, 0, 0]
    assert _col(result, "selector_starved_epochs") == [1, 1, 1]
    assert _col(result, "selector_starved_batches")[0] == 0
    with pytest.raises(SelectionError, match="took no optimizer step.*3 dropped at its end"):
        _fit(tiny_config(epochs=2, batch_size=4, run_name="e"), FEW_WRONG,
             AssistSelector(end_of_epoch="drop", starvation="error"))


def test_stepless_epoch_with_a_waiting_buffer_is_progress_not_starvation():
    d = Driver(AssistSelector(), rho=4)  # carry: what is accepted waits in the buffer
    steps, diag = _epoch(d, [[True, False, False, False]] * 3)
    assert steps == 0 and diag["selector_pending"] == 3
    assert diag["selector_starved_epochs"] == 0 and not d.selector.starved_epoch
    assert math.isnan(diag["selector_raw_batches_per_step"])
    steps, diag = _epoch(d, [[True, True, False, False]])
    assert steps == 1 and diag["selector_raw_batches_per_step"] == 1.0


def test_starved_epoch_flag_is_checkpointed():
    d = Driver(AssistSelector(end_of_epoch="drop"), rho=4)
    _epoch(d, [[True, False, False, False]] * 3)
    state = d.selector.state_dict()
    assert state["starved_epoch"] is True and state["patience"] == 12
    resumed = Driver(AssistSelector(end_of_epoch="drop"), rho=4)
    resumed.selector.load_state_dict(state)
    assert resumed.batch([False] * 4).tolist() == [0, 1, 2, 3]  # falls back at once
    old = {k: v for k, v in state.items() if k not in ("patience", "starved_epoch")}
    old["counts"] = {k: v for k, v in old["counts"].items() if k != "filled"}
    older = Driver(AssistSelector(end_of_epoch="drop"), rho=4)
    older.selector.load_state_dict(old)  # a checkpoint from before these fields
    assert older.selector.patience == 1000 and not older.selector.starved_epoch
    assert len(older.batch(ALL)) == 4 and older.selector.counts["filled"] == 0


# ---------------------------------------------------------------------- filter mode
class BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(64, 16)
        self.bn = nn.BatchNorm1d(16)
        self.out = nn.Linear(16, 10)

    def forward(self, x):
        return self.out(torch.relu(self.bn(self.lin(x.flatten(1)))))


def test_train_filter_mode_uses_batch_statistics_and_keeps_running_ones(tiny_config, digits):
    torch.manual_seed(0)
    model = BNNet()
    trainer = Trainer(tiny_config(epochs=1), train=digits[0], test=digits[1], model=model,
                      selector=AssistSelector(filter_mode="train"), **QUIET)
    with torch.no_grad():  # non-trivial running statistics
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = digits[0].x[:32], digits[0].y[:32]
    model.train()
    _, logits = trainer._forward_eval(x, y, "train")
    reference = copy.deepcopy(model).train()
    with torch.no_grad():
        expected = reference(x)  # batch statistics
        h = model.lin(x.flatten(1))
        by_hand = model.out(torch.relu(F.batch_norm(h, None, None, model.bn.weight,
                                                     model.bn.bias, training=True)))
    assert torch.allclose(logits, expected, atol=1e-5)
    assert torch.allclose(logits, by_hand, atol=1e-5)
    assert not torch.allclose(logits, trainer._forward_eval(x, y)[1], atol=1e-3)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running stats untouched
    assert model.training
    model.eval()
    trainer._forward_eval(x, y, "train")
    assert not model.training  # the mode the model was in is restored
    with pytest.raises(ValueError, match="'eval' or 'train'"):
        trainer._forward_eval(x, y, "test")


def test_engine_reads_the_filter_mode(tiny_config, digits):
    for mode in ("eval", "train"):
        trainer = Trainer(tiny_config(epochs=1, run_name=mode), train=digits[0],
                          test=digits[1], model=BNNet(),
                          selector=AssistSelector(filter_mode=mode), **QUIET)
        seen, forward = [], trainer._forward_select

        def spy(x, y, mode="eval", forward=forward, seen=seen):
            seen.append(mode)
            return forward(x, y, mode)

        trainer._forward_select = spy
        result = trainer.fit()
        raw = result["epochs"][0]["method"]["selector_raw_batches"]
        assert seen.count(mode) >= raw and (mode == "eval" or seen.count("train") == raw)
    with pytest.raises(ValueError, match="filter_mode"):
        AssistSelector(filter_mode="test")
    assert build_method("assist", {"filter_mode": "train"}).filter_mode == "train"


# ---------------------------------------------------------------------- Alg 5 random fill
def test_random_fill_tops_up_to_k_as_in_alg5():
    wrong = [True] + [False] * 9
    plain = AssistSelector(selector="top-k", k=3)
    assert plain.select(_raw(wrong), _ctx()).tolist() == [0]  # default: no fill
    a = AssistSelector(selector="top-k", k=3, fill="random").select(_raw(wrong), _ctx(seed=1))
    b = AssistSelector(selector="top-k", k=3, fill="random").select(_raw(wrong), _ctx(seed=1))
    assert torch.equal(a, b) and len(a) == 3 and 0 in a.tolist()
    s = AssistSelector(selector="top-k", k=3, fill="random")
    s.select(_raw(wrong), _ctx())
    d = s.epoch_diagnostics()
    assert (d["selector_accepted"], d["selector_filled"], d["selector_misclassified"]) == (
        3.0, 2.0, 1.0)
    # enough misclassified: top-k alone, no fill; a raw batch smaller than k gives all of it
    enough = AssistSelector(selector="top-k", k=3, fill="random")
    assert len(enough.select(_raw([True] * 5 + [False] * 5), _ctx())) == 3
    assert enough.epoch_diagnostics()["selector_filled"] == 0
    assert AssistSelector(selector="top-k", k=8, fill="random").select(
        _raw([False] * 4), _ctx()).tolist() == [0, 1, 2, 3]
    # with a margin (Alg 6): the margin's samples are added after the filled top-k
    probs = torch.tensor([[0.2, 0.8, 0.0], [0.5, 0.45, 0.05], [0.9, 0.05, 0.05],
                          [0.9, 0.05, 0.05], [0.9, 0.05, 0.05]]) + 1e-6
    logits, y = probs.log(), torch.zeros(5, dtype=torch.long)
    sel = SelectionInput(F.cross_entropy(logits, y, reduction="none"), logits, y,
                         torch.arange(5), True)
    got = AssistSelector(selector="top-k", k=2, fill="random", margin=0.1).select(sel, _ctx())
    assert {0, 1} <= set(got.tolist()) and 2 <= len(got) <= 3


@pytest.mark.parametrize("kwargs", [{"fill": "random"}, {"fill": "random", "selector": "top-q"},
                                    {"fill": "random", "selector": "top-k", "k": 0.5},
                                    {"fill": "zeros", "selector": "top-k", "k": 3}])
def test_random_fill_needs_a_count_k(kwargs):
    with pytest.raises(ValueError, match="fill"):
        AssistSelector(**kwargs)


# ---------------------------------------------------------------------- share schedules
def _losses_input(n=100, seed=0):
    losses = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).float() / n
    return SelectionInput(losses, None, torch.zeros(n, dtype=torch.long), torch.arange(n), True)


def test_top_q_with_a_schedule_selects_the_scheduled_share_each_epoch():
    s = AssistSelector(filter="none", selector="top-q", q=0.5, schedule="linear",
                       final_ratio=0.1)
    ctx = _ctx()  # 10 epochs
    s.setup(ctx)
    batch = _losses_input()
    for t in range(10):
        ctx.epoch = t
        share = 0.5 + (0.1 - 0.5) * t / 9
        got = s.select(batch, ctx)
        assert torch.equal(got, top_q(batch.losses, 1 - share))
        assert abs(len(got) - share * 100) <= 1
        assert s.epoch_diagnostics()["selector_share"] == pytest.approx(share)
    assert not AssistSelector(selector="top-q").share.scheduled


def test_top_k_share_schedule_behind_the_filter():
    s = AssistSelector(selector="top-k", k=0.8, schedule="exponential", final_ratio=0.2)
    ctx = _ctx()
    s.setup(ctx)
    g = torch.Generator().manual_seed(4)
    logits, y = torch.randn(200, 3, generator=g), torch.randint(0, 3, (200,), generator=g)
    sel = SelectionInput(F.cross_entropy(logits, y, reduction="none"), logits, y,
                         torch.arange(200), True)
    wrong = int(misclassified(logits, y).sum())
    counts = []
    for t in (0, 4, 9):
        ctx.epoch = t
        share = 0.8 * (0.2 / 0.8) ** (t / 9)
        counts.append(len(s.select(sel, ctx)))
        assert counts[-1] == math.ceil(share * wrong - 1e-9)
    assert counts[0] > counts[1] > counts[2]


@pytest.mark.parametrize("kwargs,match", [
    ({"schedule": "linear", "final_ratio": 0.1}, "keeps every misclassified sample"),
    ({"selector": "top-k", "k": 8, "schedule": "linear", "final_ratio": 0.1}, "a count"),
    ({"selector": "top-q", "q": 0.5, "schedule": "linear", "final_ratio": 0.7},
     r"above the initial share \(1 - q\)"),
    ({"selector": "top-k", "schedule": "cosine"}, "needs exactly one of"),
])
def test_impossible_share_schedules_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AssistSelector(**kwargs)


def test_share_schedule_through_the_engine(tiny_config, digits):
    cfg = tiny_config(epochs=3, batch_size=64)
    sel = build_method("assist", {"filter": "none", "selector": "top-k", "k": 0.6,
                                  "schedule": "linear", "final_ratio": 0.2,
                                  "end_of_epoch": "flush", "overflow": "carry"})
    result = Trainer(cfg, train=digits[0], test=digits[1], selector=sel, **QUIET).fit()
    shares = _col(result, "selector_share")
    assert shares == pytest.approx([0.6, 0.4, 0.2])
    accepted = _col(result, "selector_accepted")
    assert accepted[0] > accepted[1] > accepted[2]
    for share, acc in zip(shares, accepted):
        assert abs(acc / len(digits[0]) - share) < 0.02
