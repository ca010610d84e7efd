"""The run-time core behind every driver: the engine and a user's own loop (Thrift) give the
same per-epoch counts and weights for the same seed; a Thrift resumed from its state equals
the uninterrupted run; the record defers its host copies; the step path never reads a
value back from the device; short last batches join the one before them; misuse of
Thrift is refused."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.data import DataLoader, TensorDataset

from thrifty import Thrift
from thrifty.engine import RunCore, Trainer, make_config
from thrifty.engine.core import without_small_tail
from thrifty.engine.optim import build_optimizer, build_scheduler
from thrifty.engine.record import SampleRecord

QUIET = dict(log=lambda s: None)
CASES = [("infobatch", {}), ("random-adaptive", {"ratio": 0.5, "period": 1}),
         ("stale-sb", {}), ("rpc+sb", {"rpc.alpha": 0.6})]


class Digits(TensorDataset):
    """The digits training set as a user's dataset: (x, y) pairs and `targets`."""

    def __init__(self, data):
        super().__init__(data.x, data.y)
        self.targets = data.y


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def _config(tmp_path, method, args, epochs=3):
    return make_config({"workload": "digits-mlp", "epochs": epochs, "batch_size": 64,
                        "out_dir": str(tmp_path), "progress": False, "energy": "off",
                        "method": method, "method_args": args, "run_name": "engine"})


def _engine(tmp_path, digits, method, args, model):
    trainer = Trainer(_config(tmp_path, method, args), train=digits[0], test=digits[1],
                      model=model, **QUIET)
    result = trainer.fit()
    return [(e["samples_loaded"], e["samples_forwarded"], e["samples_trained"],
             e["optimizer_steps"]) for e in result["epochs"]], trainer.model


def _own_loop(digits, method, args, model, epochs=3, start=0, state=None, stop=None):
    """A user's loop with the engine's recipe (digits-mlp: SGD, Nesterov, cosine)."""
    cfg = make_config({"workload": "digits-mlp", "epochs": epochs})
    opt = build_optimizer(model, cfg.optimizer, cfg.lr, cfg.momentum, cfg.nesterov,
                          cfg.weight_decay)
    sched = build_scheduler(opt, cfg.schedule, epochs)
    thrift = Thrift(method, Digits(digits[0]), epochs=epochs, batch_size=64,
                    method_args=args, **QUIET)
    if state is not None:
        thrift.load_state_dict(state["thrift"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
    loader = DataLoader(thrift.dataset, batch_size=64, sampler=thrift.sampler)
    counts = []
    for _ in range(start, stop or epochs):
        for x, y, idx in thrift.epoch(loader, model):
            loss = thrift.loss(F.cross_entropy(model(x), y, reduction="none"), idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        c = thrift.epoch_counts
        counts.append((c["loaded"], c["forwarded"], c["trained"], c["steps"]))
    saved = {"thrift": thrift.state_dict(), "opt": opt.state_dict(),
             "sched": sched.state_dict()}
    return counts, thrift, saved


@pytest.mark.parametrize("method,args", CASES)
def test_engine_and_own_loop_give_the_same_counts_and_weights(tmp_path, digits, method, args):
    model = _mlp()
    engine_counts, engine_model = _engine(tmp_path, digits, method, args, copy.deepcopy(model))
    own_counts, _, _ = _own_loop(digits, method, args, model)
    assert own_counts == engine_counts
    a, b = engine_model.state_dict(), model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.mark.parametrize("method,args", CASES)
def test_own_loop_resumed_from_its_state_equals_the_uninterrupted_run(digits, method, args):
    whole, _, _ = _own_loop(digits, method, args, _mlp())
    model = _mlp()
    first, _, saved = _own_loop(digits, method, args, model, stop=1)
    saved = copy.deepcopy(saved)
    resumed_model = _mlp(seed=5)  # a new process: fresh objects, the saved weights
    resumed_model.load_state_dict(model.state_dict())
    rest, thrift, _ = _own_loop(digits, method, args, resumed_model, start=1, state=saved)
    assert first + rest == whole
    assert thrift.current_epoch == 2 and thrift.counts["steps"] == sum(c[3] for c in whole)


def test_the_record_defers_host_copies_until_read():
    record = SampleRecord(10)
    idx = torch.tensor([1, 2, 3])
    record.update(idx, torch.ones(3, device="meta"), None, 0, trained=True)  # no host copy
    assert record.pending == 3
    with pytest.raises(NotImplementedError):  # reading copies: a meta tensor cannot
        _ = record.loss
    record = SampleRecord(10)
    record.update(idx, torch.tensor([1.0, 2.0, 3.0]), torch.tensor([True, False, True]), 2,
                  trained=True)
    record.update(torch.tensor([3]), torch.tensor([9.0]), None, 2, trained=False)
    assert record.loss[[1, 2, 3]].tolist() == [1.0, 2.0, 9.0]  # applied in order
    assert record.times_trained[[1, 2, 3]].tolist() == [1, 1, 1]
    assert record.times_forwarded[3] == 1 and record.pending == 0
    with pytest.raises(IndexError, match="outside 0..9"):
        record.update(torch.tensor([10]), torch.tensor([1.0]), None, 0, trained=True)
        record.flush()


class _Reads(TorchDispatchMode):
    """Counts the operations that read a tensor's value back to Python (a host sync on
    a GPU: .item(), bool(), .tolist() of a device tensor)."""

    def __init__(self):
        super().__init__()
        self.reads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.reads += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("method", [[], ["infobatch"]])
def test_the_engines_training_step_reads_nothing_back(tmp_path, digits, method):
    trainer = Trainer(_config(tmp_path, method, {}, epochs=2), train=digits[0],
                      test=digits[1], **QUIET)
    spy, real = _Reads(), trainer._train_step

    def step(batch, stats):
        with spy:
            real(batch, stats)

    trainer._train_step = step
    trainer.fit()
    # 21 steps per epoch, fewer than the 32 between two finiteness checks
    assert spy.reads == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_no_host_sync_in_the_training_steps_on_cuda(tmp_path, digits):
    cfg = _config(tmp_path, ["infobatch"], {}, epochs=2)
    cfg.device = "cuda"
    trainer = Trainer(cfg, train=digits[0], test=digits[1], **QUIET)
    real = trainer._train_step

    def step(batch, stats):
        torch.cuda.set_sync_debug_mode("error")
        try:
            real(batch, stats)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    trainer._train_step = step
    result = trainer.fit()  # a synchronising call inside a training step raises
    assert result["status"] == "finished"
    assert result["final"]["optimizer_steps"] == sum(e["optimizer_steps"]
                                                     for e in result["epochs"]) > 0


class _BN(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(),
                                 nn.Linear(16, 10))
        self.sizes: list[int] = []

    def forward(self, x):
        if self.training and torch.is_grad_enabled():
            self.sizes.append(len(x))
        return self.net(x)


def test_no_batch_of_one_in_the_engine(tmp_path, digits):
    train = digits[0]
    n = 64 * 20 + 1  # k * b + 1
    model = _BN()
    cfg = _config(tmp_path, [], {}, epochs=1)
    cfg.train_limit = n
    result = Trainer(cfg, train=train, test=digits[1], model=model, **QUIET).fit()
    assert result["epochs"][0]["samples_trained"] == n
    assert min(model.sizes) == 64 and max(model.sizes) == 65 and len(model.sizes) == 20


def test_no_batch_of_one_in_the_own_loop(digits):
    data = Digits(digits[0])
    subset = TensorDataset(data.tensors[0][:64 * 5 + 1], data.tensors[1][:64 * 5 + 1])
    subset.targets = data.targets[:64 * 5 + 1]
    thrift = Thrift(None, subset, epochs=1, batch_size=64, **QUIET)
    loader = DataLoader(thrift.dataset, batch_size=64, sampler=thrift.sampler)
    model = _mlp()
    sizes = []
    for x, y, idx in thrift.epoch(loader, model):
        sizes.append(len(idx))
        thrift.loss(F.cross_entropy(model(x), y, reduction="none"), idx).backward()
    assert sizes == [64] * 4 + [65] and thrift.counts["trained"] == 321


def test_short_tails_are_decided_the_same_on_every_rank():
    # a loader's last batch joins the previous one only when it is short
    merged = list(without_small_tail(iter([[1, 2], [3, 4], [5]]), len,
                                     lambda a, b: a + b, 2, True))
    assert merged == [[1, 2], [3, 4, 5]]
    assert list(without_small_tail(iter([[1, 2], [3, 4]]), len, lambda a, b: a + b, 2,
                                   True)) == [[1, 2], [3, 4]]
    core = Thrift(None, Digits(_digits_small()), epochs=1, **QUIET).core
    # one process: 1347 samples, batch 64 -> a tail of 3 joins
    assert core.tail_merges(1347, 64) and not core.tail_merges(64 * 21 + 40, 64)
    from thrifty.engine.distributed import Dist

    core.dist = Dist(0, 2)
    # 2 ranks share 64*2*3 + 64 + 1 = 449: shares 225 and 224 (tails 33 and 32): both keep
    assert not core.tail_merges(449, 64)
    # 2 ranks share 447: shares 224 and 223 (tails 32 and 31): both merge, the same count
    assert core.tail_merges(447, 64)


def _digits_small():
    from thrifty.data import load_digits

    return load_digits()[0]


def test_thrift_refuses_misuse(digits):
    data = Digits(digits[0])
    model = _mlp()
    thrift = Thrift("infobatch", data, epochs=1, **QUIET)
    loader = DataLoader(thrift.dataset, batch_size=64, sampler=thrift.sampler)
    batches = thrift.epoch(loader, model)
    x, y, idx = next(batches)
    with pytest.raises(ValueError, match="not the labels"):
        thrift.loss(F.cross_entropy(model(x), y, reduction="none"), y)  # labels for indices
    thrift.loss(F.cross_entropy(model(x), y, reduction="none"), idx)
    with pytest.raises(ValueError, match="already came back"):
        thrift.loss(F.cross_entropy(model(x), y, reduction="none"), idx)  # twice
    with pytest.raises(ValueError, match="1-D integer"):
        thrift.loss(F.cross_entropy(model(x), y, reduction="none"), idx.float())
    for x, y, idx in batches:
        thrift.loss(F.cross_entropy(model(x), y, reduction="none"), idx)
    assert thrift.diagnostics  # current as soon as the epoch's last batch was trained
    with pytest.raises(RuntimeError, match="set up for 1 epochs"):
        next(thrift.epoch(loader, model))  # more epochs than told
    state = thrift.state_dict()
    other = Thrift("random-adaptive", data, epochs=1, **QUIET)
    with pytest.raises(ValueError, match="another run: methods"):
        other.load_state_dict(state)
    longer = Thrift("infobatch", data, epochs=2, **QUIET)
    with pytest.raises(ValueError, match="another run: epochs"):
        longer.load_state_dict(state)
    mid = Thrift("infobatch", data, epochs=2, **QUIET)
    next(mid.epoch(DataLoader(mid.dataset, batch_size=64, sampler=mid.sampler), model))
    with pytest.raises(ValueError, match="middle of epoch 1"):
        longer.load_state_dict(mid.state_dict())
    with pytest.raises(ValueError, match="not a thrifty run-time state"):
        longer.load_state_dict({"record": {}})


def test_a_selector_whose_losses_never_come_back_is_refused(digits):
    thrift = Thrift("stale-sb", Digits(digits[0]), epochs=2, batch_size=32, **QUIET)
    loader = DataLoader(thrift.dataset, batch_size=64, sampler=thrift.sampler)
    model = _mlp()
    for _ in thrift.epoch(loader, model):
        pass
    with pytest.raises(RuntimeError, match="'stale-sb' needs the training losses"):
        next(iter(thrift.epoch(loader, model)))  # refused before the next epoch starts


def test_the_core_is_what_the_drivers_share(tmp_path, digits):
    thrift = Thrift("infobatch", Digits(digits[0]), epochs=1, **QUIET)
    trainer = Trainer(_config(tmp_path, ["infobatch"], {}), train=digits[0], test=digits[1],
                      **QUIET)
    assert isinstance(thrift.core, RunCore) and isinstance(trainer.core, RunCore)
    assert thrift.record is thrift.core.record and trainer.record is trainer.core.record


@pytest.mark.parametrize("method,args", CASES[:2])
def test_lightning_gives_the_own_loops_counts_and_weights(tmp_path, digits, method, args):
    # samplers only: Lightning fetches one batch ahead of training it, so an in-batch
    # selector's forward there sees the model one step older (README, Lightning)
    L = pytest.importorskip("lightning.pytorch")
    from thrifty.integrations.lightning import ThriftyCallback

    model, own_model = _mlp(), _mlp()
    own_counts, _, _ = _own_loop(digits, method, args, own_model)
    cfg = make_config({"workload": "digits-mlp", "epochs": 3})
    thrift = Thrift(method, Digits(digits[0]), epochs=3, batch_size=64, method_args=args,
                    **QUIET)
    counts = []

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = model

        def train_dataloader(self):
            loader = DataLoader(thrift.dataset, batch_size=64, sampler=thrift.sampler)
            return thrift.loader(loader, self.net)

        def training_step(self, batch, batch_idx):
            x, y, idx = batch
            return thrift.loss(F.cross_entropy(self.net(x), y, reduction="none"), idx)

        def on_train_epoch_end(self):
            c = thrift.epoch_counts
            counts.append((c["loaded"], c["forwarded"], c["trained"], c["steps"]))

        def configure_optimizers(self):
            opt = build_optimizer(self.net, cfg.optimizer, cfg.lr, cfg.momentum, cfg.nesterov,
                                  cfg.weight_decay)
            return {"optimizer": opt, "lr_scheduler": build_scheduler(opt, cfg.schedule, 3)}

    trainer = L.Trainer(max_epochs=3, accelerator="cpu", devices=1, logger=False,
                        callbacks=[ThriftyCallback(thrift)], enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(Module())
    assert counts == own_counts
    a, b = own_model.state_dict(), model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_thrift_refuses_an_epoch_of_nan_losses(digits):
    thrift = Thrift("infobatch", Digits(digits[0]), epochs=2, **QUIET)
    loader = DataLoader(thrift.dataset, batch_size=256, sampler=thrift.sampler)
    with pytest.raises(FloatingPointError, match="epoch 1 are NaN or infinite"):
        for _x, _y, idx in thrift.epoch(loader, _mlp()):
            thrift.loss(torch.full((len(idx),), float("nan"), requires_grad=True), idx)


@pytest.mark.parametrize("method", ["loss-adaptive", "assist-epochwise"])
def test_samplers_that_score_the_pool_work_from_the_first_epoch(digits, method):
    thrift = Thrift(method, Digits(digits[0]), epochs=2, **QUIET)
    loader = DataLoader(thrift.dataset, batch_size=128, sampler=thrift.sampler)
    model = _mlp()
    for _ in range(2):
        for x, y, idx in thrift.epoch(loader, model):
            thrift.loss(F.cross_entropy(model(x), y, reduction="none"), idx).backward()
    assert thrift.counts["forwarded"] > 0 and thrift.current_epoch == 1


def test_a_loop_that_fetches_one_batch_ahead_is_accepted(digits):
    thrift = Thrift("infobatch", Digits(digits[0]), epochs=2, **QUIET)
    loader = DataLoader(thrift.dataset, batch_size=128, sampler=thrift.sampler)
    model = _mlp()
    for _ in range(2):
        it = iter(thrift.epoch(loader, model))
        ahead = next(it, None)
        while ahead is not None:
            x, y, idx = ahead
            ahead = next(it, None)  # fetched before this batch's loss (a prefetcher)
            thrift.loss(F.cross_entropy(model(x), y, reduction="none"), idx).backward()
        assert thrift.core.epoch_done and thrift.diagnostics  # ended by its last loss
    with pytest.raises(RuntimeError, match="already run"):
        thrift.start_epoch(0)
