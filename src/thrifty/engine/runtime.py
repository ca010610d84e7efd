"""Where a run runs: device, mixed precision, and the environment recorded with it."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

import thrifty


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; refuses an unavailable CUDA device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available here; "
                         "use --device cpu (or auto)")
    return device


def resolve_amp(amp: str, device: torch.device, option: str = "--amp"
                ) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device`` (``None``: full precision); ``option``
    names the flag in the error (``--amp`` or ``--selection-amp``)."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp in ("auto", "fp16"):
        if device.type != "cuda":
            raise ValueError(f"fp16 mixed precision needs a CUDA device; on CPU use {option} "
                             f"bf16 or {option} off")
        return torch.float16
    return torch.bfloat16


def environment(device: torch.device) -> dict[str, Any]:
    """Where a run ran: versions, CPU/GPU, threads, date."""
    env = {
        "thrifty": thrifty.__version__, "python": platform.python_version(),
        "torch": torch.__version__, "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "device": str(device),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    with contextlib.suppress(Exception):
        env["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).parent).stdout.strip() or None
    return env
