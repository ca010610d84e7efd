"""ASSIST epochwise filtering (Alg 8) and Epoch + Batch (with the assist selector)."""

import io

import pytest
import torch
from torch import nn

from thrifty.data import TensorData
from thrifty.engine import SampleRecord, SelectionError, TrainContext, Trainer, TrainingInterrupted
from thrifty.methods import available_methods, build_method
from thrifty.sampling.assist_epochwise import AssistEpochwise
from thrifty.selection.assist import AssistSelector

QUIET = {"log": lambda s: None}


class ConstantModel(nn.Module):
    """Fixed logits for every input (class 0 by default); has parameters to 'train'."""

    def __init__(self, logits=(4.0, 0.0, 0.0)):
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.register_buffer("fixed", torch.tensor(logits))

    def forward(self, x):
        return self.fixed + 0.0 * self.lin(x.flatten(1))


def _data(labels):
    y = torch.as_tensor(labels, dtype=torch.long)
    return TensorData(torch.randn(len(y), 4, generator=torch.Generator().manual_seed(0)), y, 3)


def _fit(cfg, labels, sampler, selector=None, logits=(4.0, 0.0, 0.0)):
    data = _data(labels)
    trainer = Trainer(cfg, train=data, test=data, model=ConstantModel(logits), sampler=sampler,
                      selector=selector, **QUIET)
    return trainer, trainer.fit()


LABELS = [0, 1, 2, 0, 0, 2] * 6  # the constant model misclassifies 18 of 36


def test_loads_only_the_misclassified_and_counts_the_scoring(tiny_config):
    sampler = AssistEpochwise()
    trainer, result = _fit(tiny_config(epochs=2, batch_size=4), LABELS, sampler)
    wrong = torch.tensor(LABELS) != 0
    for e in result["epochs"]:
        assert e["samples_forwarded"] == 36          # the pool, scored once per epoch
        assert e["samples_loaded"] == e["samples_trained"] == 18
        assert e["method"]["sampler_misclassified"] == 18
        assert e["method"]["sampler_selected_share"] == 0.5
        assert e["method"]["sampler_starved"] == 0
    assert torch.equal(trainer.record.times_trained, wrong.int() * 2)
    assert torch.equal(trainer.record.times_forwarded, torch.full((36,), 2, dtype=torch.int32))
    assert torch.equal(sampler.active, torch.nonzero(wrong).flatten())


def test_order_is_a_fresh_shuffle_of_the_filtered_indices():
    labels = torch.tensor(LABELS)
    ctx = _ctx(labels)
    s = AssistEpochwise()
    s.setup(torch.arange(36), ctx)
    orders = []
    for epoch in range(2):
        ctx.epoch = epoch
        s.set_epoch(epoch)
        s.begin_epoch(ctx)
        orders.append(torch.tensor(list(iter(s))))
    assert sorted(orders[0].tolist()) == torch.nonzero(labels != 0).flatten().tolist()
    assert sorted(orders[0].tolist()) == sorted(orders[1].tolist())
    assert not torch.equal(orders[0], orders[1])
    assert ctx.score.calls == [36, 36]


class _Score:
    def __init__(self, logits):
        self.logits, self.calls = logits, []

    def __call__(self, idx):
        self.calls.append(len(idx))
        return torch.zeros(len(idx)), self.logits[idx]


def _ctx(labels, logits=None):
    n = len(labels)
    if logits is None:
        logits = torch.tensor([4.0, 0.0, 0.0]).expand(n, 3)
    return TrainContext(epoch=0, epochs=3, record=SampleRecord(n), batch_size=4, seed=0,
                        generator=torch.Generator(), score=_Score(logits), num_classes=3,
                        labels=labels)


def test_margin_also_loads_uncertain_correct_samples():
    labels = torch.tensor([0, 0, 1, 0])
    probs = torch.tensor([[0.5, 0.45, 0.05], [0.9, 0.05, 0.05], [0.6, 0.3, 0.1],
                          [0.4, 0.35, 0.25]])
    ctx = _ctx(labels, probs.log())
    s = AssistEpochwise(margin=0.1)
    s.setup(torch.arange(4), ctx)
    s.begin_epoch(ctx)
    assert s.active.tolist() == [0, 2, 3]
    d = s.epoch_diagnostics()
    assert (d["sampler_misclassified"], d["sampler_marginal"], d["sampler_selected"]) == (
        1.0, 2.0, 3.0)
    assert s.epoch_diagnostics() == {}


def test_starvation_random_loads_the_whole_pool_error_raises_skip_is_refused(tiny_config):
    right = [0] * 36
    _, result = _fit(tiny_config(epochs=2, batch_size=4), right, AssistEpochwise())
    for e in result["epochs"]:
        assert e["samples_loaded"] == e["samples_trained"] == 36
        assert e["method"]["sampler_starved"] == 1 and e["method"]["sampler_selected"] == 36
    with pytest.raises(SelectionError, match="starved"):
        _fit(tiny_config(epochs=1, batch_size=4, run_name="e"), right,
             AssistEpochwise(starvation="error"))
    with pytest.raises(ValueError, match="cannot skip"):
        AssistEpochwise(starvation="skip")
    for bad in ({"starvation": "wait"}, {"margin": 1.0}, {"margin": 0}):
        with pytest.raises(ValueError):
            AssistEpochwise(**bad)


def test_registered_as_a_sampler():
    spec = available_methods()["assist-epochwise"]
    assert spec.place == "sampler" and spec.factory is AssistEpochwise
    assert build_method("assist-epochwise", {"margin": 0.2}).margin == 0.2


def test_epoch_plus_batch_through_the_engine(tiny_config):
    sampler, selector = AssistEpochwise(), AssistSelector(strict=False)
    _, result = _fit(tiny_config(epochs=2, batch_size=4), LABELS, sampler, selector)
    for e in result["epochs"]:
        m = e["method"]
        assert e["samples_loaded"] == m["sampler_selected"] == 18
        assert e["samples_forwarded"] == 36 + 18     # epoch scoring + the raw batches
        assert m["selector_forwarded"] == 18 and m["selector_accepted"] == 18
        # raw batches of 4 drawn from the 18 filtered samples: 4 full steps, 2 pending
        assert e["optimizer_steps"] == m["selector_steps"] == 4


def test_epoch_plus_batch_by_name_on_digits(tiny_config, digits):
    cfg = tiny_config(epochs=2, method=["assist-epochwise", "assist"],
                      method_args={"assist.margin": 0.2, "assist-epochwise.margin": 0.1})
    trainer = Trainer(cfg, train=digits[0], test=digits[1], **QUIET)
    result = trainer.fit()
    methods = {k: result["methods"][k] for k in ("reducer", "sampler", "selector")}
    assert methods == {"reducer": "full", "sampler": "assist-epochwise", "selector": "assist"}
    assert trainer.selector.margin == 0.2 and trainer.sampler.margin == 0.1
    n = len(digits[0])
    for e in result["epochs"]:
        m = e["method"]
        assert e["samples_loaded"] == m["sampler_selected"] <= n
        assert m["sampler_selected"] == m["sampler_misclassified"] + m["sampler_marginal"]
        assert e["samples_forwarded"] == n + e["samples_loaded"]
        assert m["selector_forwarded"] == e["samples_loaded"]
        assert e["optimizer_steps"] == m["selector_steps"]


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("with_selector", [False, True])
def test_resume_equals_uninterrupted(tiny_config, digits, with_selector):
    kw = dict(epochs=3, batch_size=32)

    def pieces():
        return {"sampler": AssistEpochwise(),
                "selector": AssistSelector() if with_selector else None}

    ref = Trainer(tiny_config(run_name="ref", **kw), train=digits[0], test=digits[1],
                  **pieces(), **QUIET)
    ref.fit()
    first = ref.history[0]["samples_loaded"]
    state = {"batches": 0}
    cut_at = -(-first // 32) + 3  # a few batches into epoch 2

    def interrupt(trainer):
        state["batches"] += 1
        if state["batches"] == cut_at:
            trainer.request_stop()

    cut = Trainer(tiny_config(run_name="cut", **kw), train=digits[0], test=digits[1],
                  **pieces(), on_batch_end=interrupt, **QUIET)
    with pytest.raises(TrainingInterrupted):
        cut.fit()
    assert len(cut.history) == 1
    resumed = Trainer.resume(cut.run_dir, train=digits[0], test=digits[1], **pieces(), **QUIET)
    result = resumed.fit()
    a, b = _weights(ref.model), _weights(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    for key in ("samples_loaded", "samples_forwarded", "samples_trained", "method"):
        assert [e[key] for e in result["epochs"]] == [e[key] for e in ref.history]


def test_state_round_trip_keeps_the_epoch_subset_and_diagnostics():
    labels = torch.tensor(LABELS)
    ctx = _ctx(labels)
    s = AssistEpochwise()
    s.setup(torch.arange(36), ctx)
    s.begin_epoch(ctx)
    state = torch.load(_save(s.state_dict()), weights_only=True)
    other = AssistEpochwise()
    other.setup(torch.arange(36), ctx)
    other.load_state_dict(state)
    assert torch.equal(other.active, s.active) and len(other) == 18
    assert other.epoch_diagnostics() == s.epoch_diagnostics()


def _save(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf
