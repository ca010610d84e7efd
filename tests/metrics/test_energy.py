import math

import pytest

from thrifty.bench.table import compute_rows
from thrifty.metrics.energy import CpuTimeEstimate, RaplMeter, make_energy_meter


def fake_rapl(root, values, max_range=1000):
    for i, v in enumerate(values):
        d = root / f"intel-rapl:{i}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "energy_uj").write_text(str(v))
        (d / "max_energy_range_uj").write_text(str(max_range))
    sub = root / "intel-rapl:0:0"  # a sub-zone: must not be double counted
    sub.mkdir(exist_ok=True)
    (sub / "energy_uj").write_text("5")


def test_rapl_sums_packages_and_handles_wraparound(tmp_path):
    fake_rapl(tmp_path, [100, 200])
    meter = RaplMeter(tmp_path)
    assert meter.read() == 0.0
    fake_rapl(tmp_path, [400, 50])  # package 1 wrapped: 200 -> 1000 -> 50 = +850
    assert meter.read() == pytest.approx((300 + 850) * 1e-6)
    assert meter.measured and meter.source == "rapl"


def test_auto_falls_back_to_labelled_estimate(tmp_path):
    meter = make_energy_meter("auto", "cpu", rapl_root=tmp_path / "none")
    assert isinstance(meter, CpuTimeEstimate) and not meter.measured
    assert "estimate" in meter.describe()
    assert make_energy_meter("off") is None
    with pytest.raises(RuntimeError, match="unavailable.*--energy auto"):
        make_energy_meter("rapl", rapl_root=tmp_path / "none")
    with pytest.raises(ValueError, match="energy must be"):
        make_energy_meter("joulemeter")
    with pytest.raises(ValueError, match="positive"):
        CpuTimeEstimate(0)


def test_engine_records_energy_with_its_source(tiny_config, digits):
    from thrifty.engine import Trainer

    result = Trainer(tiny_config(epochs=1, energy="estimate"), train=digits[0],
                     test=digits[1], log=lambda s: None).fit()
    assert result["energy"]["source"] == "estimate" and result["energy"]["measured"] is False
    assert result["epochs"][0]["energy_j"] > 0
    assert result["final"]["energy_j"] == pytest.approx(result["epochs"][0]["energy_j"])


def run(energy, source, measured):
    epochs = [{"test_accuracy": 0.9, "train_time": 1.0, "samples_trained": 10,
               "samples_forwarded": 0, "samples_loaded": 10, "optimizer_steps": 1,
               "time": {"selection_logic": 0.0}}]
    return {"status": "finished", "epochs": epochs, "energy": {"source": source,
                                                               "measured": measured},
            "final": {"energy_j": energy, "test_loss": {"q0.9": 0, "worst": 0}}}


def test_energy_gain_only_between_same_sources():
    rows = compute_rows({"baseline": {0: run(100.0, "rapl", True)},
                         "m": {0: run(60.0, "rapl", True)},
                         "mixed": {0: run(50.0, "estimate", False)}})
    by = {r["label"]: r for r in rows}
    assert by["m"]["energy_gain"] == pytest.approx(40.0)
    assert by["m"]["energy_source"] == "measured"
    assert math.isnan(by["mixed"]["energy_gain"]) and by["mixed"]["energy_source"] == "estimated"


class FakeMeter:
    """An energy meter whose joules are whatever the test's pieces add."""

    source, measured = "fake", True

    def __init__(self):
        self.joules = 0.0

    def read(self):
        return self.joules

    def describe(self):
        return "fake counter"


def test_energy_covers_preparation_and_the_samplers_selection_pass(tiny_config, digits):
    from thrifty.engine import Trainer
    from thrifty.engine.interfaces import EpochSampler, Reducer

    meter = FakeMeter()

    class CostlyReducer(Reducer):  # e.g. an embedding pass before training
        name = "costly"

        def fit(self, labels, **kwargs):
            meter.joules += 7.0
            return super().fit(labels, **kwargs)

    class ScoringSampler(EpochSampler):  # e.g. loss-adaptive's selection forward
        name = "scoring"

        def begin_epoch(self, ctx):
            meter.joules += 5.0

    trainer = Trainer(tiny_config(epochs=2, energy="estimate"), train=digits[0],
                      test=digits[1], reducer=CostlyReducer(), sampler=ScoringSampler(),
                      log=lambda s: None)
    trainer.energy_meter = meter
    result = trainer.fit()
    assert [e["energy_j"] for e in result["epochs"]] == [5.0, 5.0]  # training adds nothing
    assert result["final"]["energy_j"] == 10.0
    assert result["final"]["prep_energy_j"] == 7.0


def test_energy_gain_counts_preparation():
    base, reduced = run(100.0, "rapl", True), run(60.0, "rapl", True)
    reduced["final"]["prep_energy_j"] = 20.0
    rows = compute_rows({"baseline": {0: base}, "ids": {0: reduced}})
    assert rows[1]["energy_gain"] == pytest.approx(20.0)
