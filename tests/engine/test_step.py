"""The one selection step (forward -> record -> select -> pack) and the typed context."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from thrifty.data import Batch
from thrifty.engine import (
    BatchSelector,
    Packer,
    PackingRule,
    SampleRecord,
    SelectionStep,
    TrainContext,
    no_grad_forward,
)


class EveryOther(BatchSelector):
    name = "every-other"
    identity = False
    packing = PackingRule()

    def __init__(self, fresh=True, mode="eval"):
        self.fresh, self.filter_mode, self.seen = fresh, mode, []

    def needs_forward(self, ctx):
        return self.fresh

    def select(self, batch, ctx):
        self.seen.append(batch)
        return torch.arange(0, len(batch.idx), 2)


def _ctx(record, epoch=3):
    return TrainContext(epoch=epoch, epochs=5, record=record, batch_size=4, seed=0,
                        generator=torch.Generator(), num_classes=3,
                        labels=torch.zeros(10, dtype=torch.long))


def _batch(idx):
    idx = torch.as_tensor(idx)
    return Batch(torch.randn(len(idx), 2), idx % 3, idx)


def test_fresh_step_records_probe_losses_selects_and_packs():
    torch.manual_seed(0)
    model = nn.Linear(2, 3)
    record = SampleRecord(10)
    calls = []

    def forward(x, y, mode):
        calls.append(mode)
        return no_grad_forward(model, x, y, mode=mode)

    sel = EveryOther(mode="train")
    step = SelectionStep(sel, Packer(4), record, forward)
    phases = []

    class Phase:
        def __init__(self, name):
            phases.append(name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    first = step(_batch([0, 1, 2, 3, 4, 5]), _ctx(record), phase=Phase)
    assert calls == ["train"]  # the selector's filter_mode reaches the forward
    assert phases == ["selection_forward", "selection_logic"]
    assert (first.forwarded, first.selected, first.ready) == (6, 3, [])  # 3 < rho = 4
    assert record.times_forwarded[:6].tolist() == [1] * 6
    assert record.loss_kind[:6].tolist() == [2] * 6 and record.loss_epoch[0].item() == 3
    assert sel.seen[0].fresh and sel.seen[0].logits is not None
    second = step(_batch([6, 7, 8, 9]), _ctx(record))
    assert [b.idx.tolist() for b in second.ready] == [[0, 2, 4, 6]]
    # flush: 1 left, under half of rho = 4, waits for the next epoch; dropped after the last
    assert step.end_epoch() == [] and step.packer.count == 1
    assert step.end_epoch(last=True) == [] and step.packer.end_dropped == 1


def test_stale_step_reads_the_record_and_runs_no_forward():
    record = SampleRecord(10)
    record.update(torch.tensor([1, 2]), torch.tensor([0.5, 1.5]), None, 0, trained=True)

    def forward(x, y, mode):
        raise AssertionError("a stale step must not forward")

    sel = EveryOther(fresh=False)
    done = SelectionStep(sel, Packer(1), record, forward)(_batch([1, 2]), _ctx(record))
    assert done.forwarded == 0 and done.selected == 1
    assert sel.seen[0].losses.tolist() == [0.5, 1.5] and not sel.seen[0].fresh
    no_record = SelectionStep(EveryOther(fresh=False), Packer(1), None, forward)
    out = no_record(_batch([1, 2]), _ctx(record))
    assert out.selected == 1 and torch.isnan(no_record.selector.seen[0].losses).all()


def test_identity_selector_passes_the_batch_through():
    b = _batch([0, 1, 2])
    done = SelectionStep(BatchSelector(), Packer(4), None, lambda *a: 1 / 0)(b, _ctx(None))
    assert done.ready == [b] and done.forwarded == 0 and done.selected == 3


def test_context_services_outside_a_driver_say_what_is_missing():
    ctx = _ctx(SampleRecord(2))
    for call in (lambda: ctx.score(torch.arange(2)),
                 lambda: ctx.selection_pass(torch.arange(2), lambda b: b),
                 lambda: ctx.warmup(nn.Linear(2, 2), 1)):
        with pytest.raises(RuntimeError, match="not available here"):
            call()
