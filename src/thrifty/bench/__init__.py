"""The benchmark: run methods against paired baselines, tabulate, report.

Names are imported on first use, so that a benchmark file's errors are reported before
PyTorch is imported (``thrifty.bench.spec`` needs only the standard library and PyYAML).
"""

from __future__ import annotations

from thrifty.utils.lazy import lazy_exports

_WHERE = {
    "calibrate": "calibrate",
    "collect": "runner", "plan": "runner", "run_bench": "runner",
    "BASELINE": "spec", "BenchSpec": "spec", "MethodRun": "spec", "load_bench_spec": "spec",
    "parse_method_string": "spec",
    "compute_rows": "table", "to_csv": "table", "to_markdown": "table", "to_text": "table",
}

__all__, __getattr__, __dir__ = lazy_exports("thrifty.bench", _WHERE, globals())
