"""What a benchmark runs: a workload, seeds, and labelled method runs (each paired with the
baseline of the same seed), from a YAML/TOML file or command-line strings."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from thrifty.engine.config import RunConfig, make_config, read_config_file

BASELINE = "baseline"


@dataclass
class MethodRun:
    """One compared configuration.

    Attributes:
        label: name in tables and the run folder.
        method: method names (empty for the baseline).
        method_args: hyper-parameters (``KEY`` or ``METHOD.KEY``).
    """

    label: str
    method: list[str] = field(default_factory=list)
    method_args: dict[str, Any] = field(default_factory=dict)


@dataclass
class BenchSpec:
    """A benchmark: ``base`` run options shared by all runs, ``seeds``, ``runs``.

    The baseline is always included (first in every seed's round).
    """

    base: dict[str, Any]
    seeds: list[int]
    runs: list[MethodRun]
    out_dir: str = "bench"

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("a benchmark needs at least one seed")
        labels = [r.label for r in self.runs]
        dup = {x for x in labels if labels.count(x) > 1}
        if dup:
            raise ValueError(f"duplicate run labels: {', '.join(sorted(dup))}")
        if BASELINE not in labels:
            self.runs.insert(0, MethodRun(BASELINE))
        make_config(dict(self.base))  # validate the shared options early

    def config(self, run: MethodRun, seed: int) -> RunConfig:
        """The full run config of ``run`` at ``seed``."""
        return make_config({**self.base, "method": list(run.method),
                            "method_args": dict(run.method_args), "seed": seed,
                            "out_dir": str(Path(self.out_dir) / "runs"),
                            "run_name": f"{safe_name(run.label)}-s{seed}"})


def safe_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", label).strip("_") or "run"


def parse_method_string(text: str) -> MethodRun:
    """``"adonis eta=2 theta=0.1"`` or ``"rpc+adonis rpc.alpha=0.8"`` -> :class:`MethodRun`.

    The first word names the method(s) (``+`` combines); the rest are ``KEY=VALUE``.
    An optional ``LABEL:`` prefix sets the label (default: the whole text).
    """
    label = None
    if ":" in text.split()[0]:
        label, _, text = text.partition(":")
    words = text.split()
    if not words:
        raise ValueError("empty method string")
    methods = [] if words[0] == BASELINE else words[0].split("+")
    args: dict[str, Any] = {}
    for w in words[1:]:
        if "=" not in w:
            raise ValueError(f"expected KEY=VALUE in method string {text!r}, got {w!r}")
        k, _, v = w.partition("=")
        args[k] = yaml.safe_load(v)
    return MethodRun(label or " ".join(words), methods, args)


def load_bench_spec(path: str | Path | None = None, *, overrides: dict[str, Any] | None = None,
                    seeds: list[int] | None = None, methods: list[str] | None = None,
                    out_dir: str | None = None) -> BenchSpec:
    """Build a :class:`BenchSpec` from a file and/or command-line values.

    File keys: ``seeds``, ``runs`` (list of ``{label, method, method_args}`` or method
    strings), ``out_dir``, and any run option (``workload``, ``epochs``, ...) shared by all.
    """
    data: dict[str, Any] = read_config_file(path) if path else {}
    file_runs = data.pop("runs", [])
    file_seeds = data.pop("seeds", [0])
    file_out = data.pop("out_dir", "bench")
    base = {**data, **(overrides or {})}
    runs: list[MethodRun] = []
    for r in file_runs:
        if isinstance(r, str):
            runs.append(parse_method_string(r))
        else:
            m = r.get("method", [])
            runs.append(MethodRun(r.get("label") or "+".join(m if isinstance(m, list) else [m]),
                                  [m] if isinstance(m, str) else list(m),
                                  dict(r.get("method_args", {}))))
    runs += [parse_method_string(m) for m in methods or []]
    return BenchSpec(base, list(seeds or file_seeds), runs, out_dir or file_out)
