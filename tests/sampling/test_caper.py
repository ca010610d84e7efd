from __future__ import annotations

import pytest
import torch
from torch import nn

from thrifty.data import TensorData
from thrifty.engine import Trainer, TrainingInterrupted
from thrifty.methods import build_method
from thrifty.models.small import MLP, SmallCNN
from thrifty.pruning import filter_sensitivity
from thrifty.sampling import (
    Caper,
    feature_layers,
    feature_shift,
    layer_channels,
    layer_sensitivity,
    most_sensitive,
    next_consumer,
    noise_scores,
    removal_count,
    window_layers,
)

from .curriculum_helpers import make_ctx, resume_from_epoch_start


class Gated(nn.Module):
    """Two channels gated by a ReLU, then an identity conv (the tapped last conv layer) and
    a classifier that weighs channel 0 nine times more than channel 1. An input of +10 in a
    channel passes the noise to the tapped layer; -10 blocks it (ReLU(-10 + delta) = 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 2, 1, bias=False)
        self.conv2 = nn.Conv2d(2, 2, 1, bias=False)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            eye = torch.eye(2).reshape(2, 2, 1, 1)
            self.conv1.weight.copy_(eye)
            self.conv2.weight.copy_(eye)
            self.fc.weight.copy_(torch.tensor([[9.0, 1.0], [9.0, 1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.conv2(torch.relu(self.conv1(x))), 1))


def gated_data() -> tuple[TensorData, torch.Tensor, torch.Tensor]:
    """30 samples: P (noise reaches channel 0), Q (channel 1), R (nothing), interleaved."""
    patterns = torch.tensor([[10.0, -10.0], [-10.0, 10.0], [-10.0, -10.0]])
    kind = torch.arange(30) % 3
    x = patterns[kind].reshape(30, 2, 1, 1)
    data = TensorData(x, torch.arange(30) % 2, 2, "gated")
    return data, torch.nonzero(kind == 0).flatten(), torch.nonzero(kind == 1).flatten()


def fit_gated(tiny_config, sampler: Caper, epochs: int = 2) -> Trainer:
    data, _, _ = gated_data()
    trainer = Trainer(tiny_config(epochs=epochs, batch_size=8, run_name="gated"), train=data,
                      test=data, model=Gated(), sampler=sampler, log=lambda s: None)
    trainer.fit()
    return trainer


def test_removes_the_samples_whose_sensitive_channel_reacts_to_noise(tiny_config):
    _, p, q = gated_data()
    trainer = fit_gated(tiny_config, Caper(tau=0, remove=10, channels=1))
    assert torch.equal(trainer.sampler.removed, p)  # channel 0 is the sensitive one
    h = trainer.history
    assert [e["samples_forwarded"] for e in h] == [60, 0]  # clean + noisy, once, at tau
    assert [e["samples_loaded"] for e in h] == [20, 20]
    assert [e["method"]["removed"] for e in h] == [10, 10]
    assert h[0]["time"]["selection_forward"] > 0
    assert trainer.model.training  # the eval-mode scoring restored the mode


def test_selection_pass_is_counted_unaugmented_and_in_eval_mode(tiny_config, digits_aug):
    from thrifty.engine.accounting import EpochStats

    train, test = digits_aug
    trainer = Trainer(tiny_config(eval_batch_size=50), train=train, test=test,
                      log=lambda s: None)
    trainer._stats = stats = EpochStats(0)  # as inside an epoch
    idx = torch.arange(120, 0, -1)
    modes = []

    def fn(b):
        modes.append(trainer.model.training)
        return b.x, b.idx

    parts = trainer.selection_pass(idx, fn, forwards=2)
    assert [len(p[1]) for p in parts] == [50, 50, 20]
    assert torch.equal(torch.cat([p[1] for p in parts]), idx)
    assert torch.equal(torch.cat([p[0] for p in parts]), train.x[idx])  # no augmentation
    assert modes == [False] * 3 and trainer.model.training
    assert stats.samples_forwarded == 240 and stats.time["selection_forward"] > 0


def test_all_channels_count_when_not_restricted(tiny_config):
    _, p, q = gated_data()
    trainer = fit_gated(tiny_config, Caper(tau=0, remove=20, channels=None))
    assert torch.equal(trainer.sampler.removed, torch.cat([p, q]).sort().values)


def test_before_tau_the_whole_pool_is_loaded(tiny_config, digits):
    cfg = tiny_config(epochs=4, method=["caper"], method_args={"tau": 2, "remove": 30})
    result = Trainer(cfg, train=digits[0], test=digits[1], log=lambda s: None).fit()
    n = len(digits[0])
    assert [e["samples_loaded"] for e in result["epochs"]] == [n, n, n - 30, n - 30]
    assert [e["samples_forwarded"] for e in result["epochs"]] == [0, 0, 2 * n, 0]
    assert [e["method"]["scored"] for e in result["epochs"]] == [0, 0, n, 0]


def test_random_variant_removes_as_many_without_forwards(tiny_config, digits):
    runs = {}
    for seed in (0, 0, 1):
        cfg = tiny_config(epochs=3, seed=seed, run_name=f"r{seed}-{len(runs)}",
                          method=["caper"], method_args={"tau": 1, "remove": 0.05,
                                                         "score": "random"})
        trainer = Trainer(cfg, train=digits[0], test=digits[1], log=lambda s: None)
        result = trainer.fit()
        assert sum(e["samples_forwarded"] for e in result["epochs"]) == 0
        runs.setdefault(seed, []).append(trainer.sampler.removed)
    count = removal_count(0.05, len(digits[0]))
    assert all(len(r) == count for rs in runs.values() for r in rs)
    assert torch.equal(runs[0][0], runs[0][1])  # reproducible per seed
    assert not torch.equal(runs[0][0], runs[1][0])


def test_default_tau_is_a_fifth_of_the_run():
    labels = torch.arange(100) % 4
    for epochs, tau in [(10, 2), (5, 1), (1, 0), (100, 20)]:
        s = Caper(score="random")
        s.setup(torch.arange(100), make_ctx(labels, epochs=epochs))
        assert s.tau == tau


def test_noise_scores_min_max_normalise_each_channel_and_average_the_chosen():
    shifts = {"a": torch.tensor([[0.0, 5.0, 1.0], [2.0, 5.0, 3.0], [1.0, 5.0, 2.0]])}
    xi = noise_scores(shifts, {"a": torch.tensor([0, 1])})
    assert torch.allclose(xi, torch.tensor([0.0, 0.5, 0.25]))  # constant channel 1 gives 0
    both = noise_scores({**shifts, "b": shifts["a"][:, 2:]},
                        {"a": torch.tensor([2]), "b": torch.tensor([0])})
    assert torch.allclose(both, torch.tensor([0.0, 2.0, 1.0]))  # summed over layers


def test_feature_shift_is_reproducible_and_scales_with_the_noise():
    model = Gated().eval()
    x = torch.tensor([[10.0, -10.0]]).reshape(1, 2, 1, 1).repeat(200, 1, 1, 1)
    with torch.no_grad():
        a = feature_shift(model, x, ["conv2"], 0.5, torch.Generator().manual_seed(3))
        b = feature_shift(model, x, ["conv2"], 0.5, torch.Generator().manual_seed(3))
        c = feature_shift(model, x, ["conv2"], 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(a["conv2"], b["conv2"])
    assert torch.allclose(c["conv2"], 2 * a["conv2"], atol=1e-5)  # float32 around 10
    assert a["conv2"][:, 0].std() == pytest.approx(0.5 * (1 - 2 / torch.pi) ** 0.5, rel=0.2)
    assert torch.all(a["conv2"][:, 1] == 0)


def test_windows_over_conv_layers_and_linear_fallback():
    cnn = SmallCNN(widths=(4, 6, 8))
    assert feature_layers(cnn) == ["features.0", "features.4", "features.8"]
    assert window_layers(cnn, "last") == ["features.8"]
    assert window_layers(cnn, "first-half") == ["features.0"]
    assert window_layers(cnn, "second-half") == ["features.4", "features.8"]
    mlp = MLP(hidden=(16, 12))
    assert window_layers(mlp, "last") == ["body.3"]
    assert window_layers(mlp, "first-half") == ["body.1"]
    with pytest.raises(ValueError, match="neither"):
        window_layers(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), "last")
    with pytest.raises(ValueError, match="window must be"):
        window_layers(cnn, "gaussian")


def test_sensitivity_comes_from_the_next_layer_that_takes_the_channels():
    cnn = SmallCNN(widths=(4, 6, 8))
    x = torch.randn(1, 1, 8, 8)
    assert torch.allclose(layer_sensitivity(cnn, "features.4", x),
                          filter_sensitivity(cnn.features[8].weight, 6))
    # the last conv (2x2 output) -> global pooling -> the classifier's 8 inputs
    assert next_consumer(cnn, "features.8", x)[0] == "classifier"
    assert torch.allclose(layer_sensitivity(cnn, "features.8", x),
                          filter_sensitivity(cnn.classifier.weight, 8))
    gated = Gated()
    assert torch.allclose(layer_sensitivity(gated, "conv2", torch.ones(1, 2, 1, 1)),
                          torch.tensor([1.8, 0.2]))
    mlp = MLP(hidden=(16, 12))
    assert next_consumer(mlp, "body.1", torch.randn(1, 64))[0] == "body.3"
    with pytest.raises(ValueError, match="no layer after"):
        layer_sensitivity(cnn, "classifier", x)
    with pytest.raises(ValueError, match="not a Conv2d/Linear layer"):
        layer_sensitivity(cnn, "features.1", x)  # a BatchNorm


class Flat(nn.Module):
    """conv (3 channels, 2x2 output) -> in-place ReLU -> flatten -> Linear(12): the
    classifier reads each channel at 4 positions."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(12, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.relu(self.conv(x)), 1))


def test_a_flattened_output_gives_channel_times_position_inputs():
    model = Flat()
    assert torch.allclose(layer_sensitivity(model, "conv", torch.randn(1, 1, 2, 2)),
                          filter_sensitivity(model.fc.weight, 3))


class Concat(nn.Module):
    """Two conv branches of 4 channels each, concatenated, pooled, then one Linear(8): the
    classifier's 8 inputs are not 4 channels x 2 positions of either branch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(1, 4, 3, padding=1)
        self.conv_b = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.conv_a(x), self.conv_b(x)], 1)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1))


class ConcatConv(Concat):
    """The same branches concatenated into a conv of 8 input channels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_c = nn.Conv2d(8, 4, 1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_c(torch.cat([self.conv_a(x), self.conv_b(x)], 1))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1))


@pytest.mark.parametrize("model, consumer", [(Concat(), "fc"), (ConcatConv(), "conv_c")])
def test_a_concatenation_is_not_taken_as_the_next_layer(model, consumer):
    x = torch.randn(1, 1, 4, 4)
    for layer in ("conv_a", "conv_b"):  # conv_b does not read conv_a's output: skipped
        with pytest.raises(ValueError, match=rf"{layer}.*'{consumer}'.*layers=.*channels=None"):
            layer_sensitivity(model, layer, x)
        # all channels need no sensitivity: no trace, no refusal
        assert layer_channels(model, layer, None, x) is None
        assert layer_channels(model, layer, 4, x) is None
    with pytest.raises(ValueError, match="conv_b"):
        layer_channels(model, "conv_b", 2, x)


def test_caper_on_a_concat_network_refuses_or_uses_all_channels(tiny_config):
    data = TensorData(torch.randn(40, 1, 4, 4), torch.arange(40) % 2, 2, "concat")

    def fit(**kw):
        cfg = tiny_config(epochs=2, batch_size=8, run_name=f"c{len(kw)}")
        trainer = Trainer(cfg, train=data, test=data, model=Concat(),
                          sampler=Caper(tau=1, remove=4, **kw), log=lambda s: None)
        return trainer, trainer.fit

    _, run = fit(channels=2)
    with pytest.raises(ValueError, match="conv_b.*'fc'"):
        run()
    trainer, run = fit(channels=None)
    run()
    assert len(trainer.sampler.removed) == 4


def test_degenerate_scores_are_refused():
    assert most_sensitive(torch.tensor([0.1, 0.3, 0.2, 0.3]), 2).tolist() == [1, 3]
    with pytest.raises(ValueError, match="all 4 CAPER noise scores are equal"):
        most_sensitive(torch.zeros(4), 2)
    with pytest.raises(ValueError, match="NaN or infinite"):
        most_sensitive(torch.tensor([0.1, float("nan"), 0.2]), 1)
    shifts = {"a": torch.tensor([[0.0, 1.0], [float("nan"), 2.0], [1.0, 3.0]])}
    with pytest.raises(ValueError, match="'a' are NaN or infinite for 1 of 3"):
        noise_scores(shifts, {"a": None})
    with pytest.raises(ValueError, match="NaN or infinite"):
        noise_scores({"a": torch.tensor([[float("inf")], [0.0]])}, {})


def test_a_layer_blind_to_the_noise_stops_the_run_instead_of_removing_the_first(tiny_config):
    # only R samples (-10, -10): the ReLU blocks the noise, every shift and score is 0
    x = torch.tensor([-10.0, -10.0]).reshape(1, 2, 1, 1).repeat(24, 1, 1, 1)
    data = TensorData(x, torch.arange(24) % 2, 2, "blind")
    trainer = Trainer(tiny_config(epochs=2, batch_size=8, run_name="blind"), train=data,
                      test=data, model=Gated(), sampler=Caper(tau=1, remove=3),
                      log=lambda s: None)
    with pytest.raises(ValueError, match="all 24 CAPER noise scores are equal"):
        trainer.fit()
    assert trainer.sampler.removed is None


def test_works_on_a_pool_shrunk_by_an_offline_reducer(tiny_config, digits):
    train, test = digits
    cfg = tiny_config(epochs=3, method=["rpc", "caper"],
                      method_args={"rpc.alpha": 0.5, "caper.tau": 1, "caper.remove": 20})
    trainer = Trainer(cfg, train=train, test=test, log=lambda s: None)
    result = trainer.fit()
    pool = trainer.sampler.pool
    assert len(pool) < 0.6 * len(train)
    removed = trainer.sampler.removed
    assert len(removed) == 20 and bool(torch.isin(removed, pool).all())
    assert len(trainer.sampler.scores) == len(pool)
    n = len(pool)
    assert [e["samples_loaded"] for e in result["epochs"]] == [n, n - 20, n - 20]
    assert [e["samples_forwarded"] for e in result["epochs"]] == [0, 2 * n, 0]


@pytest.mark.parametrize("stop", [10, 30])  # in epoch 0 (before tau), in epoch 1 (after)
def test_resume_equals_uninterrupted(tiny_config, digits, stop):
    train, test = digits

    def run(name, **kw):
        cfg = tiny_config(epochs=4, run_name=name, method=["caper"],
                          method_args={"tau": 1, "remove": 40})
        return Trainer(cfg, train=train, test=test, log=lambda s: None, **kw)

    ref = run("ref")
    ref.fit()
    seen = {"n": 0}

    def interrupt(trainer):
        seen["n"] += 1
        if seen["n"] == stop:
            trainer.request_stop()

    cut = run("cut", on_batch_end=interrupt)
    with pytest.raises(TrainingInterrupted):
        cut.fit()
    resumed = Trainer.resume(cut.run_dir, train=train, test=test, log=lambda s: None)
    resumed.fit()
    assert torch.equal(resumed.sampler.removed, ref.sampler.removed)
    a, b = ref.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    keys = ("samples_loaded", "samples_forwarded", "samples_trained")
    # every diagnostic but the scoring time, which differs between runs
    assert [[e[k] for k in keys] + [e["method"]["removed"], e["method"]["scored"]]
            for e in resumed.history] == [
        [e[k] for k in keys] + [e["method"]["removed"], e["method"]["scored"]]
        for e in ref.history]


def test_resume_from_the_epoch_boundary_checkpoint_at_tau(tiny_config, digits, tmp_path):
    ref, resumed, result = resume_from_epoch_start(
        lambda **kw: tiny_config(epochs=3, **kw), digits, lambda: Caper(tau=1, remove=40),
        1, tmp_path)
    assert torch.equal(resumed.sampler.removed, ref.sampler.removed)
    assert torch.equal(resumed.sampler.scores, ref.sampler.scores)
    n = len(digits[0])
    assert [e["samples_forwarded"] for e in result["epochs"]] == [0, 2 * n, 0]
    assert [e["samples_loaded"] for e in result["epochs"]] == [n, n - 40, n - 40]


def test_noise_scores_need_the_engine():
    labels = torch.arange(40) % 4
    ctx = make_ctx(labels, epochs=3)
    s = Caper(tau=0, remove=2)
    s.setup(torch.arange(40), ctx)
    with pytest.raises(ValueError, match="ctx.model"):
        s.begin_epoch(ctx)


@pytest.mark.parametrize("kwargs, match", [
    ({"tau": -1}, "tau"), ({"remove": 0}, "remove"), ({"remove": 1.0}, "remove"),
    ({"remove": True}, "remove"), ({"noise_std": 0}, "noise_std"),
    ({"channels": 0}, "channels"), ({"window": "all"}, "window"), ({"score": "loss"}, "score"),
])
def test_refuses_impossible_hyper_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Caper(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"tau": 5}, r"in \[0, 5\)"), ({"remove": 40}, "pool holds 40"),
])
def test_refuses_settings_impossible_for_the_run(kwargs, match):
    labels = torch.arange(40) % 4
    with pytest.raises(ValueError, match=match):
        Caper(**kwargs).setup(torch.arange(40), make_ctx(labels, epochs=5))


def test_removal_count_and_flops_saved():
    assert removal_count(13, 1000) == 13
    assert removal_count(0.01, 1347) == 13
    assert removal_count(0.0001, 100) == 1
    s = Caper(tau=2, remove=25, score="random")
    s.setup(torch.arange(100), make_ctx(torch.arange(100) % 4, epochs=10))
    assert s.flops_saved(1e6, 10) == 1e6 * 25 * 8


def test_registered_and_built_by_name(tiny_config, digits):
    s = build_method("caper", {"remove": 5, "window": "first-half", "tau": 0})
    assert isinstance(s, Caper) and s.window == "first-half"
    trainer = Trainer(tiny_config(epochs=1, model="cnn"), train=digits[0], test=digits[1],
                      sampler=s, log=lambda m: None)
    result = trainer.fit()
    assert s.count == 5 and len(s.removed) == 5
    assert result["epochs"][0]["samples_loaded"] == len(digits[0]) - 5
    # first-half of the CNN's 3 conv layers: the first one
    assert window_layers(trainer.model, "first-half") == ["features.0"]
