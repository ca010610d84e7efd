"""The benchmark: run methods against paired baselines, tabulate, report."""

from thrifty.bench.calibrate import calibrate
from thrifty.bench.runner import collect, plan, run_bench
from thrifty.bench.spec import BASELINE, BenchSpec, MethodRun, load_bench_spec, parse_method_string
from thrifty.bench.table import compute_rows, to_csv, to_markdown, to_text

__all__ = ["BASELINE", "BenchSpec", "MethodRun", "calibrate", "collect", "compute_rows",
           "load_bench_spec", "parse_method_string", "plan", "run_bench", "to_csv",
           "to_markdown", "to_text"]
