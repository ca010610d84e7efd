"""Energy of training, from a real counter where one exists, else a labelled estimate.

- **RAPL** (Intel, and AMD on recent kernels): package energy counters under
  ``/sys/class/powercap/intel-rapl:*/energy_uj`` (wrap-around handled).
- **NVML** (NVIDIA GPUs): ``nvmlDeviceGetTotalEnergyConsumption`` of the run's own GPU,
  through the optional ``nvidia-ml-py`` package (``pip install "thrifty[energy]"``). The GPU
  is found by its UUID, which CUDA and NVML share; NVML's indices ignore
  ``CUDA_VISIBLE_DEVICES`` and may order the GPUs differently from CUDA.
- **Estimate** where neither exists: CPU seconds of this process times an assumed power per
  busy core (default 10 W) — always reported with ``measured: false`` and never mixed with
  measured figures.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

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


def cuda_index(device: Any = "cuda") -> int:
    """The CUDA ordinal of ``device`` (a :class:`torch.device` or a string such as
    ``"cuda:1"``): its index, else the current CUDA device, else 0.

    Args:
        device: the run's device. Default ``"cuda"``.
    """
    import torch

    device = torch.device(device)
    if device.index is not None:
        return device.index
    try:
        return torch.cuda.current_device()
    except Exception:  # CUDA not initialisable here
        return 0


def cuda_uuid(index: int) -> str | None:
    """NVML's UUID of CUDA device ``index`` (``"GPU-..."``; ``"MIG-..."`` kept as is), from
    ``torch.cuda.get_device_properties(index).uuid``; ``None`` where torch cannot tell.

    Args:
        index: the CUDA ordinal (it counts the devices ``CUDA_VISIBLE_DEVICES`` leaves).
    """
    try:
        import torch

        text = str(torch.cuda.get_device_properties(index).uuid).strip()
    except Exception:  # no CUDA, or a torch without the uuid property
        return None
    if not text:
        return None
    return text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}"


def _visible_device(index: int) -> str | None:
    """Entry ``index`` of ``CUDA_VISIBLE_DEVICES`` (an NVML index or a UUID), if set."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return None
    entries = [e.strip() for e in visible.split(",") if e.strip()]
    return entries[index] if 0 <= index < len(entries) else None


class NvmlMeter(EnergyMeter):
    """Total energy of one NVIDIA GPU since driver load, via NVML (millijoules).

    The handle is requested by ``uuid`` when one is given (what
    :func:`make_energy_meter` does for the run's CUDA device); without a UUID, or when NVML
    does not know it, by index: the entry ``index`` of ``CUDA_VISIBLE_DEVICES`` when that
    variable is set (an NVML index or a UUID), else ``index`` itself. The index fallback
    assumes NVML's order (PCI bus) equals CUDA's, which holds with
    ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` or a single GPU.

    Args:
        index: CUDA ordinal of the GPU. Default 0.
        uuid: its UUID as NVML writes it (``"GPU-..."``). Default ``None``.
    """

    source = "nvml"
    measured = True

    def __init__(self, index: int = 0, uuid: str | None = None) -> None:
        import pynvml  # optional dependency: nvidia-ml-py

        pynvml.nvmlInit()
        self._nvml = pynvml
        self.index, self.uuid = index, uuid
        self._handle, self.found_by = self._find(pynvml, index, uuid)
        self.read()

    @staticmethod
    def _find(pynvml: Any, index: int, uuid: str | None) -> tuple[Any, str]:
        visible = _visible_device(index)
        if uuid is None and visible and not visible.isdigit():
            uuid = visible  # CUDA_VISIBLE_DEVICES names the GPU by UUID
        if uuid:
            try:  # bytes: accepted by every nvidia-ml-py version
                return pynvml.nvmlDeviceGetHandleByUUID(uuid.encode()), f"uuid {uuid}"
            except Exception:  # an NVML without this UUID (e.g. MIG naming): use the index
                pass
        nvml_index = int(visible) if visible and visible.isdigit() else index
        return pynvml.nvmlDeviceGetHandleByIndex(nvml_index), f"index {nvml_index}"

    def read(self) -> float:
        return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) * 1e-3

    def describe(self) -> str:
        return f"nvml (GPU by {self.found_by})"


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


def make_energy_meter(kind: str = "auto", device: Any = "cpu",
                      rapl_root: str | Path = RAPL_ROOT) -> EnergyMeter | None:
    """The best meter available: ``auto`` tries NVML (on CUDA runs), then RAPL, then falls
    back to the CPU-time estimate. ``off`` gives ``None``; ``rapl``/``nvml`` insist on that
    counter and fail clearly when it is missing; ``estimate`` forces the estimate.

    Args:
        kind: ``auto`` (default), ``off``, ``rapl``, ``nvml`` or ``estimate``.
        device: the run's device, a :class:`torch.device` or a string (``"cpu"``,
            ``"cuda"``, ``"cuda:1"``); NVML meters that GPU, found by its UUID. Default
            ``"cpu"``.
        rapl_root: the powercap folder of RAPL. Default ``/sys/class/powercap``.
    """
    if kind == "off":
        return None
    if kind == "estimate":
        return CpuTimeEstimate()
    errors = []
    is_cuda = str(device).split(":")[0] == "cuda"
    order = {"auto": (["nvml"] if is_cuda else []) + ["rapl"],
             "rapl": ["rapl"], "nvml": ["nvml"]}
    if kind not in order:
        raise ValueError(f"energy must be auto, off, rapl, nvml or estimate, got {kind!r}")
    for name in order[kind]:
        try:
            if name == "rapl":
                return RaplMeter(rapl_root)
            index = cuda_index(device if is_cuda else "cuda")
            return NvmlMeter(index, cuda_uuid(index))
        except Exception as exc:  # missing counter, driver or package
            errors.append(f"{name}: {exc}")
    if kind != "auto":
        raise RuntimeError(f"energy counter {kind!r} unavailable ({'; '.join(errors)}); use "
                           "--energy auto to fall back to a labelled estimate")
    return CpuTimeEstimate()
