"""thrifty.Thrift in a plain PyTorch loop: the README snippets as written, every place and a
composition, DataLoader workers, dict batches, a regression loss, and each misuse's error."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from thrifty import Thrift
from thrifty.data import load_digits
from thrifty.sampling import InfoBatch


class Digits(TensorDataset):
    """scikit-learn digits as a map-style dataset with `targets` (what users have)."""

    def __init__(self, data):
        super().__init__(data.x, data.y)
        self.targets = data.y


@pytest.fixture(scope="module")
def digits_sets():
    train, test = load_digits()
    return Digits(train), test


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def _accuracy(model, test):
    with torch.no_grad():
        return (model(test.x).argmax(1) == test.y).float().mean().item()


def test_readme_snippet_infobatch(digits_sets):
    train_set, test = digits_sets
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    # --- the README snippet (four changed lines against a plain loop) ---
    from thrifty import Thrift

    thrift = Thrift("infobatch", train_set, epochs=8)                              # added
    loader = DataLoader(thrift.dataset, batch_size=128, sampler=thrift.sampler)    # changed
    for _epoch in range(8):
        for x, y, idx in thrift.epoch(loader, model):                              # changed
            loss = thrift.loss(F.cross_entropy(model(x), y, reduction="none"), idx)  # changed
            opt.zero_grad()
            loss.backward()
            opt.step()
    # ---
    n = len(train_set)
    assert thrift.current_epoch == 7
    assert thrift.counts["trained"] == thrift.counts["loaded"] < 8 * n  # InfoBatch pruned
    assert thrift.record.times_trained.sum().item() == thrift.counts["trained"]
    assert _accuracy(model, test) > 0.85


def test_random_renewal_loads_the_chosen_share_each_epoch(digits_sets):
    train_set, _ = digits_sets
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    thrift = Thrift("random-adaptive", train_set, epochs=3,
                    method_args={"ratio": 0.5, "period": 1})
    loader = DataLoader(thrift.dataset, batch_size=64, sampler=thrift.sampler)
    seen = []
    for _ in range(3):
        ids = []
        for x, y, idx in thrift.epoch(loader, model):
            ids += idx.tolist()
            loss = thrift.loss(F.cross_entropy(model(x), y, reduction="none"), idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
        seen.append(ids)
    half = -(-len(train_set) // 2)
    assert [len(s) for s in seen] == [half] * 3 and all(len(set(s)) == half for s in seen)
    assert set(seen[0]) != set(seen[1])  # renewed


def test_selector_and_composition_train_what_was_chosen(digits_sets):
    train_set, _ = digits_sets
    for method in ("stale-sb", ["rpc", "sb"]):
        model = _model()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        args = {"rpc.alpha": 0.5} if isinstance(method, list) else {}
        thrift = Thrift(method, train_set, epochs=2, batch_size=32, method_args=args)
        loader = DataLoader(thrift.dataset, batch_size=128, sampler=thrift.sampler)
        sizes = []
        for _ in range(2):
            for x, y, idx in thrift.epoch(loader, model):
                sizes.append(len(idx))
                loss = thrift.loss(F.cross_entropy(model(x), y, reduction="none"), idx)
                opt.zero_grad()
                loss.backward()
                opt.step()
        c = thrift.counts
        pool = len(thrift.pieces.reducer.indices_)
        assert c["loaded"] == 2 * pool and c["forwarded"] > 0
        assert 0 < c["trained"] < c["loaded"] and c["trained"] == sum(sizes)
        assert all(s == 32 for s in sizes[:-1])  # packed into full batches
        assert thrift.record.times_forwarded.sum().item() == c["forwarded"]


def test_workers_see_the_exact_subset_every_epoch(digits_sets):
    train_set, _ = digits_sets
    thrift = Thrift("random-adaptive", train_set, epochs=3,
                    method_args={"ratio": 0.3, "period": 1})
    loader = DataLoader(thrift.dataset, batch_size=50, sampler=thrift.sampler, num_workers=2,
                        persistent_workers=True)
    model = _model()
    for _ in range(3):
        got = []
        for _x, _y, idx in thrift.epoch(loader, model):
            got += idx.tolist()
        assert got == thrift._order.tolist()  # exactly the sampler's subset, in its order


class DictData(Dataset):
    def __init__(self, data):
        self.data = data
        self.targets = data.y

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return {"pixel_values": self.data.x[i], "labels": self.data.y[i]}


class TakesKeywords(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _model()

    def forward(self, pixel_values):
        return self.net(pixel_values)


def test_dict_batches_and_a_model_taking_keywords(digits_sets):
    train, _ = load_digits()
    model = TakesKeywords()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    thrift = Thrift("sb", DictData(train), epochs=1, batch_size=32)
    loader = DataLoader(thrift.dataset, batch_size=128, sampler=thrift.sampler)
    trained = 0
    for batch in thrift.epoch(loader, model):
        assert set(batch) == {"pixel_values", "labels", "index"}
        out = model(pixel_values=batch["pixel_values"])
        loss = thrift.loss(F.cross_entropy(out, batch["labels"], reduction="none"),
                           batch["index"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        trained += len(batch["index"])
    assert 0 < trained == thrift.counts["trained"] < len(train)


def test_a_regression_loss(digits_sets):
    torch.manual_seed(0)
    x = torch.randn(300, 5)
    y = x @ torch.arange(1.0, 6.0) + 0.1 * torch.randn(300)
    model = nn.Linear(5, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    def mse(output, target):
        return (output.squeeze(-1) - target) ** 2

    for method in ("sb", "infobatch"):
        thrift = Thrift(method, TensorDataset(x, y), epochs=3, batch_size=20, loss_fn=mse)
        loader = DataLoader(thrift.dataset, batch_size=60, sampler=thrift.sampler)
        for _ in range(3):
            for xb, yb, idx in thrift.epoch(loader, model):
                loss = thrift.loss(mse(model(xb), yb), idx)
                opt.zero_grad()
                loss.backward()
                opt.step()
        assert 0 < thrift.counts["trained"] <= 900
    assert ((model(x).squeeze(-1) - y) ** 2).mean().item() < 1.0


def test_misuse_is_refused_with_what_to_call(digits_sets):
    train_set, _ = digits_sets
    # a thrifty sampler handed to a DataLoader directly yields nothing: refused
    with pytest.raises(RuntimeError, match="before it was set up"):
        list(DataLoader(train_set, sampler=InfoBatch(), batch_size=10))
    thrift = Thrift("infobatch", train_set, epochs=3)
    loader = DataLoader(thrift.dataset, batch_size=128, sampler=thrift.sampler)
    with pytest.raises(RuntimeError, match="before an epoch was started"):
        list(loader)
    model = _model()
    for _ in thrift.epoch(loader, model):  # the losses are never given back
        pass
    with pytest.raises(RuntimeError, match=r"thrift.loss\(per_sample_losses, idx\)"):
        next(iter(thrift.epoch(loader, model)))  # refused before the next epoch starts
    plain = Thrift(None, train_set, epochs=2)
    wrong = DataLoader(plain.dataset, batch_size=128)  # not drawing from thrift.sampler
    with pytest.raises(RuntimeError, match="sampler=thrift.sampler"):
        list(plain.epoch(wrong, model))
    ok = Thrift(None, train_set, epochs=2)
    x, y, idx = next(iter(ok.epoch(DataLoader(ok.dataset, batch_size=8, sampler=ok.sampler),
                                   model)))
    with pytest.raises(ValueError, match="reduction='none'"):
        ok.loss(F.cross_entropy(model(x), y), idx)
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        Thrift("infobatch", train_set, epochs=0)
    with pytest.raises(ValueError, match="changes the training targets"):
        Thrift("lilac", train_set, epochs=30)
    with pytest.raises(ValueError, match="unknown method"):
        Thrift("nope", train_set, epochs=2)


def test_methods_that_read_classes_are_refused_without_targets():
    # a TensorDataset has no `targets`: class-wise methods would see one class (-1) and
    # silently stop being class-wise, so they are refused with the fix
    no_targets = TensorDataset(torch.randn(60, 4), torch.randint(0, 3, (60,)))
    for method, args in (("rpc", {}), ("assist-epochwise", {}), ("ssp", {}),
                         ("random-adaptive", {"stratified": True})):
        with pytest.raises(ValueError, match=f"{method} reads the class of every sample.*"
                                             "TensorDataset exposes no 1-D `targets`"):
            Thrift(method, no_targets, epochs=2, method_args=args, log=lambda s: None)
    # methods that need only the number of samples still run on it
    for method in ("rpd", "random-adaptive", "infobatch", "sb"):
        Thrift(method, no_targets, epochs=2, log=lambda s: None)



def test_plus_joined_method_names_in_thrift(digits_sets):
    thrift = Thrift("infobatch+stale-sb", digits_sets[0], epochs=2, log=lambda s: None)
    assert (thrift.pieces.sampler.name, thrift.pieces.selector.name) == ("infobatch",
                                                                         "stale-sb")
    with pytest.raises(ValueError, match="method names must be non-empty"):
        Thrift("rpc+", digits_sets[0], epochs=2, log=lambda s: None)
