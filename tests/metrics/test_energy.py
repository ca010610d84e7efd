import math
import sys
import types

import pytest

from thrifty.bench.table import compute_rows
from thrifty.metrics.energy import (
    CpuTimeEstimate,
    NvmlMeter,
    RaplMeter,
    cuda_index,
    cuda_uuid,
    make_energy_meter,
)


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


# ---------------------------------------------------------------------- NVML: the run's GPU
class FakeNvml(types.ModuleType):
    """A stand-in for ``pynvml`` with two GPUs; records how handles are requested."""

    GPUS = {"GPU-aaaa0000-0000-0000-0000-000000000000": 0,
            "GPU-bbbb1111-1111-1111-1111-111111111111": 1}

    def __init__(self):
        super().__init__("pynvml")
        self.requests: list[tuple[str, object]] = []

    def nvmlInit(self):
        pass

    def nvmlDeviceGetHandleByUUID(self, uuid):
        text = uuid.decode() if isinstance(uuid, bytes) else uuid
        self.requests.append(("uuid", text))
        if text not in self.GPUS:
            raise RuntimeError("NVML_ERROR_NOT_FOUND")
        return ("handle", self.GPUS[text])

    def nvmlDeviceGetHandleByIndex(self, index):
        self.requests.append(("index", index))
        return ("handle", index)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        return 1000.0 * (handle[1] + 1)  # millijoules: 1 J for GPU 0, 2 J for GPU 1


class Props:
    def __init__(self, uuid):
        self.uuid = uuid


@pytest.fixture
def fake_gpus(monkeypatch):
    """Two fake CUDA devices whose torch UUIDs are those of FakeNvml (without "GPU-")."""
    import torch

    nvml = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    uuids = [u.removeprefix("GPU-") for u in FakeNvml.GPUS]
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: Props(uuids[i]))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return nvml


def test_nvml_meters_the_runs_gpu_by_uuid(fake_gpus):
    import torch

    meter = make_energy_meter("nvml", torch.device("cuda:1"))
    assert isinstance(meter, NvmlMeter) and meter.read() == 2.0
    assert fake_gpus.requests == [("uuid", "GPU-bbbb1111-1111-1111-1111-111111111111")]
    assert "GPU-bbbb1111" in meter.describe()
    fake_gpus.requests.clear()
    # "cuda" without an index is the current CUDA device; "auto" tries NVML on CUDA runs
    assert make_energy_meter("auto", "cuda").read() == 2.0
    assert fake_gpus.requests == [("uuid", "GPU-bbbb1111-1111-1111-1111-111111111111")]
    fake_gpus.requests.clear()
    assert make_energy_meter("nvml", "cuda:0").read() == 1.0
    assert fake_gpus.requests == [("uuid", "GPU-aaaa0000-0000-0000-0000-000000000000")]


def test_nvml_uuid_ignores_cuda_visible_devices_order(fake_gpus, monkeypatch):
    # CUDA_VISIBLE_DEVICES=1 makes NVML's GPU 1 CUDA's device 0: its UUID says which it is
    import torch

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: Props("bbbb1111-1111-1111-1111-111111111111"))
    assert make_energy_meter("nvml", "cuda:0").read() == 2.0
    assert fake_gpus.requests == [("uuid", "GPU-bbbb1111-1111-1111-1111-111111111111")]


def test_nvml_falls_back_to_the_index(fake_gpus, monkeypatch):
    import torch

    def no_uuid(i):
        raise AttributeError("no uuid in this torch")

    monkeypatch.setattr(torch.cuda, "get_device_properties", no_uuid)
    assert cuda_uuid(0) is None
    assert make_energy_meter("nvml", "cuda:1").read() == 2.0
    assert fake_gpus.requests == [("index", 1)]
    fake_gpus.requests.clear()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")  # CUDA device 0 is NVML's GPU 1
    assert make_energy_meter("nvml", "cuda:0").read() == 2.0
    assert fake_gpus.requests == [("index", 1)]
    fake_gpus.requests.clear()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-bbbb1111-1111-1111-1111-111111111111")
    assert make_energy_meter("nvml", "cuda:0").read() == 2.0
    assert fake_gpus.requests == [("uuid", "GPU-bbbb1111-1111-1111-1111-111111111111")]
    fake_gpus.requests.clear()
    # a UUID that NVML does not know (e.g. another naming): the index is used
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    meter = NvmlMeter(0, "GPU-unknown")
    assert meter.read() == 1.0 and fake_gpus.requests == [("uuid", "GPU-unknown"), ("index", 0)]


def test_uuid_format_and_cpu_runs_never_ask_nvml(fake_gpus, monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: Props("MIG-1234"))
    assert cuda_uuid(0) == "MIG-1234"
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: Props("abcd"))
    assert cuda_uuid(0) == "GPU-abcd"
    assert cuda_index(torch.device("cuda", 3)) == 3 and cuda_index("cuda") == 1
    make_energy_meter("auto", torch.device("cpu"), rapl_root=tmp_path / "none")
    assert fake_gpus.requests == []


def test_trainer_passes_its_device_to_the_meter(tiny_config, digits, monkeypatch):
    import torch

    import thrifty.engine.loop as loop

    seen = []
    monkeypatch.setattr(loop, "make_energy_meter", lambda kind, device: seen.append(device))
    loop.Trainer(tiny_config(energy="auto"), train=digits[0], test=digits[1],
                 log=lambda s: None)
    assert seen == [torch.device("cpu")]
