"""Energy of training, from a real counter where one exists, else a labelled estimate.

- **RAPL** (Intel, and AMD on recent kernels): package energy counters under
  ``/sys/class/powercap/intel-rapl:*/energy_uj`` (wrap-around handled).
- **NVML** (NVIDIA GPUs): ``nvmlDeviceGetTotalEnergyConsumption``, through the optional
  ``nvidia-ml-py`` package (``pip install "thrifty[energy]"``).
- **Estimate** where neither exists: CPU seconds of this process times an assumed power per
  busy core (default 10 W) — always reported with ``measured: false`` and never mixed with
  measured figures.
"""

from __future__ import annotations

import time
from pathlib import Path

RAPL_ROOT = Path("/sys/class/powercap")


class EnergyMeter:
    """A cumulative energy counter: :meth:`read` returns joules since an arbitrary origin."""

    source = "none"
    measured = False

    def read(self) -> float:
        raise RuntimeError("EnergyMeter is abstract; use make_energy_meter()")

    def describe(self) -> str:
        return self.source


class RaplMeter(EnergyMeter):
    """Sum of the top-level RAPL package domains (``intel-rapl:N``).

    Args:
        root: the powercap folder. Default ``/sys/class/powercap``.
    """

    source = "rapl"
    measured = True

    def __init__(self, root: str | Path = RAPL_ROOT) -> None:
        self.domains = sorted(p for p in Path(root).glob("intel-rapl:*")
                              if p.name.count(":") == 1 and (p / "energy_uj").is_file())
        if not self.domains:
            raise FileNotFoundError(f"no readable RAPL domain under {root}")
        self._max = [int((d / "max_energy_range_uj").read_text()) if
                     (d / "max_energy_range_uj").is_file() else 2**63 for d in self.domains]
        self._last = [self._raw(d) for d in self.domains]
        self._total = 0.0

    @staticmethod
    def _raw(domain: Path) -> int:
        return int((domain / "energy_uj").read_text())

    def read(self) -> float:
        for i, d in enumerate(self.domains):
            now = self._raw(d)
            delta = now - self._last[i]
            if delta < 0:  # the counter wrapped around
                delta += self._max[i]
            self._total += delta * 1e-6
            self._last[i] = now
        return self._total


class NvmlMeter(EnergyMeter):
    """Total energy of one NVIDIA GPU since driver load, via NVML (millijoules).

    Args:
        index: GPU index. Default 0.
    """

    source = "nvml"
    measured = True

    def __init__(self, index: int = 0) -> None:
        import pynvml  # optional dependency: nvidia-ml-py

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        self.read()

    def read(self) -> float:
        return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) * 1e-3


class CpuTimeEstimate(EnergyMeter):
    """Estimate: this process's CPU seconds x ``watts_per_core`` (NOT a measurement).

    Args:
        watts_per_core: assumed power of one busy core. Default 10.0.
    """

    source = "estimate"
    measured = False

    def __init__(self, watts_per_core: float = 10.0) -> None:
        if watts_per_core <= 0:
            raise ValueError(f"watts_per_core must be positive, got {watts_per_core}")
        self.watts_per_core = watts_per_core

    def read(self) -> float:
        return time.process_time() * self.watts_per_core

    def describe(self) -> str:
        return f"estimate (CPU seconds x {self.watts_per_core:g} W per core)"


def make_energy_meter(kind: str = "auto", device_type: str = "cpu",
                      rapl_root: str | Path = RAPL_ROOT) -> EnergyMeter | None:
    """The best meter available: ``auto`` tries NVML (on CUDA runs), then RAPL, then falls
    back to the CPU-time estimate. ``off`` gives ``None``; ``rapl``/``nvml`` insist on that
    counter and fail clearly when it is missing; ``estimate`` forces the estimate."""
    if kind == "off":
        return None
    if kind == "estimate":
        return CpuTimeEstimate()
    errors = []
    order = {"auto": (["nvml"] if device_type == "cuda" else []) + ["rapl"],
             "rapl": ["rapl"], "nvml": ["nvml"]}
    if kind not in order:
        raise ValueError(f"energy must be auto, off, rapl, nvml or estimate, got {kind!r}")
    for name in order[kind]:
        try:
            return NvmlMeter() if name == "nvml" else RaplMeter(rapl_root)
        except Exception as exc:  # missing counter, driver or package
            errors.append(f"{name}: {exc}")
    if kind != "auto":
        raise RuntimeError(f"energy counter {kind!r} unavailable ({'; '.join(errors)}); use "
                           "--energy auto to fall back to a labelled estimate")
    return CpuTimeEstimate()
