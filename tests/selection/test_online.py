import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from thrifty.selection import Adonis, OnlineSelection, SelectiveBackprop, StaleSB


def _setup(digits, seed=0):
    torch.manual_seed(seed)
    train, test = digits
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(TensorDataset(train.x, train.y), batch_size=64, shuffle=True,
                        generator=g)
    return model, opt, loader, test


def _accuracy(model, test):
    with torch.no_grad():
        return (model(test.x).argmax(1) == test.y).float().mean().item()


def test_readme_snippet_trains_with_fewer_backward_samples(digits):
    model, opt, loader, test = _setup(digits)
    before = _accuracy(model, test)
    # --- the README snippet: a plain loop plus two added lines and one changed line ---
    from thrifty.selection import Adonis, OnlineSelection
    online = OnlineSelection(Adonis(), batch_size=64)
    for _epoch in range(8):
        for xb, yb in online.batches(model, loader):  # was: for xb, yb in loader:
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    # ---
    n = len(digits[0])
    assert online.forwarded == 8 * n and online.epoch == 8
    assert 0 < online.trained <= online.selected < online.forwarded
    assert online.trained % 64 == 0  # ADONIS carries partial batches: every step is full
    assert online.diagnostics["selector_considered"] == n
    assert before < 0.3 and _accuracy(model, test) > 0.6  # it learns


def test_selection_forward_runs_in_eval_mode_and_restores_mode(digits):
    model, _, loader, _ = _setup(digits)
    model.append(nn.Dropout(0.5))
    seen = []
    model.register_forward_hook(lambda m, i, o: seen.append(m.training))
    online = OnlineSelection(SelectiveBackprop(), batch_size=64)
    x, y = next(iter(loader))
    model.train()
    list(online.step(model, x, y))
    assert seen == [False] and model.training
    model.eval()
    list(online.step(model, x, y))
    assert not model.training


def test_stale_selector_needs_indices_and_skips_forwards(digits):
    model, opt, _, _ = _setup(digits)
    train = digits[0]
    with pytest.raises(ValueError, match="num_samples"):
        OnlineSelection(StaleSB(), batch_size=32)
    online = OnlineSelection(StaleSB(), batch_size=32, num_samples=len(train))
    loader = DataLoader(TensorDataset(train.x, train.y, torch.arange(len(train))),
                        batch_size=64, shuffle=True)
    forwarded = []
    for _ in range(4):
        start = online.forwarded
        for xb, yb in online.batches(model, loader):
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
        forwarded.append(online.forwarded - start)
    n = len(train)
    assert forwarded == [n, 0, n, 0]
    assert online.record.times_forwarded.eq(2).all()
    assert online.diagnostics["selector_stale_batches"] == len(loader)
    x, y, _ = next(iter(loader))
    with pytest.raises(ValueError, match="pass idx"):
        list(online.step(model, x, y))


def test_step_and_end_epoch_with_flush(digits):
    model, _, loader, _ = _setup(digits)
    online = OnlineSelection(Adonis(end_of_epoch="flush"), batch_size=64)
    sizes = [len(yb) for x, y in loader for _, yb in online.step(model, x, y)]
    rest = online.end_epoch()
    assert all(s == 64 for s in sizes) and len(rest) <= 1
    assert all(len(y) >= 32 for _, y in rest)  # a flushed batch is at least half of 64
    pending = online.packer.count  # a smaller remainder waits for the next epoch
    assert online.epoch == 1 and pending < 32 and (pending == 0) == bool(rest)
    assert sum(sizes) + sum(len(y) for _, y in rest) == online.trained
    assert online.trained + pending == online.selected


def test_state_dict_round_trip(tmp_path, digits):
    model, _, loader, _ = _setup(digits)
    n = len(digits[0])
    online = OnlineSelection(Adonis(eta=2), batch_size=64, num_samples=n, seed=3)
    batches = list(DataLoader(TensorDataset(digits[0].x, digits[0].y, torch.arange(n)),
                              batch_size=64))
    for x, y, i in batches[:5]:
        list(online.step(model, x, y, i))
    torch.save(online.state_dict(), tmp_path / "online.pt")
    copy = OnlineSelection(Adonis(eta=2), batch_size=64, num_samples=n)
    copy.load_state_dict(torch.load(tmp_path / "online.pt", weights_only=True))
    assert copy.packer.count == online.packer.count and copy.selected == online.selected
    x, y, i = batches[5]
    a = [yb for _, yb in online.step(model, x, y, i)] + [online.packer.count]
    b = [yb for _, yb in copy.step(model, x, y, i)] + [copy.packer.count]
    assert len(a) == len(b) and all(torch.equal(u, v) for u, v in zip(a[:-1], b[:-1]))
    assert a[-1] == b[-1]
    torch.testing.assert_close(online.record.loss, copy.record.loss, equal_nan=True)


def test_online_selection_honours_the_selectors_filter_mode(digits):
    """The same selection step as the engine: ASSIST with filter_mode="train" forwards in
    train mode (batch statistics) and leaves the running statistics as they were."""
    from thrifty.selection.assist import AssistSelector

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(),
                          nn.Linear(16, 10))
    modes = []
    model.register_forward_hook(lambda m, i, o: modes.append(m.training))
    x, y = digits[0].x[:64], digits[0].y[:64]
    for mode in ("eval", "train"):
        model.eval()
        running = model[2].running_mean.clone()
        online = OnlineSelection(AssistSelector(filter_mode=mode), batch_size=16)
        list(online.step(model, x, y))
        assert modes[-1] == (mode == "train") and not model.training
        assert torch.equal(model[2].running_mean, running)
        assert online.forwarded == 64


def test_dict_batches_are_refused_with_a_pointer_to_thrift():
    online = OnlineSelection(SelectiveBackprop(), batch_size=4)
    loader = [{"pixel_values": torch.zeros(4, 64), "labels": torch.zeros(4).long()}]
    with pytest.raises(TypeError, match="thrifty.Thrift"):
        list(online.batches(nn.Linear(64, 10), loader))
