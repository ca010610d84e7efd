"""The benchmark: run methods against paired baselines, tabulate, report.

Names are imported on first use, so that a benchmark file's errors are reported before
PyTorch is imported (``thrifty.bench.spec`` needs only the standard library and PyYAML).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "calibrate": "calibrate",
    "collect": "runner", "plan": "runner", "run_bench": "runner",
    "BASELINE": "spec", "BenchSpec": "spec", "MethodRun": "spec", "load_bench_spec": "spec",
    "parse_method_string": "spec",
    "compute_rows": "table", "to_csv": "table", "to_markdown": "table", "to_text": "table",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'thrifty.bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"thrifty.bench.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
