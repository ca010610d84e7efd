"""What a benchmark runs: a workload, seeds, and labelled method runs (each paired with the
baseline of the same seed), from a YAML/TOML file or command-line strings."""

from __future__ import annotations

import itertools
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
    options: dict[str, Any] = field(default_factory=dict)  # run options of its grid group

    @property
    def group(self) -> str:
        """The grid group (its run options as text); '' outside option grids."""
        return group_name(self.options)


def group_name(options: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(options.items()))


def baseline_label(group: str) -> str:
    return f"{group} | {BASELINE}" if group else BASELINE


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
        # every grid group gets its baseline twin, first in the group
        groups: dict[str, dict[str, Any]] = {}
        for r in self.runs:
            groups.setdefault(r.group, r.options)
        if not groups:
            groups[""] = {}
        for g, opts in reversed(list(groups.items())):
            if baseline_label(g) not in labels:
                pos = next(i for i, r in enumerate(self.runs) if r.group == g) \
                    if any(r.group == g for r in self.runs) else 0
                self.runs.insert(pos, MethodRun(baseline_label(g), options=dict(opts)))
        make_config(dict(self.base))  # validate the shared options early

    def baseline_of(self) -> dict[str, str]:
        """Label of each run -> label of its paired baseline (same grid group)."""
        return {r.label: baseline_label(r.group) for r in self.runs}

    def config(self, run: MethodRun, seed: int) -> RunConfig:
        """The full run config of ``run`` at ``seed``."""
        return make_config({**self.base, **run.options, "method": list(run.method),
                            "method_args": dict(run.method_args), "seed": seed,
                            "out_dir": str(Path(self.out_dir) / "runs"),
                            "run_name": f"{safe_name(run.label)}-s{seed}"})


def safe_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", label).strip("_") or "run"


def parse_method_string(text: str) -> MethodRun:
    """``"adonis eta=2 theta=0.1"`` or ``"rpc+adonis rpc.alpha=0.8"`` -> :class:`MethodRun`.

    The first word names the method(s) (``+`` combines); the rest are ``KEY=VALUE``.
    An optional ``LABEL:`` prefix (may contain spaces) sets the label (default: the text).
    """
    label = None
    colon, equals = text.find(":"), text.find("=")
    if colon > 0 and (equals < 0 or colon < equals):  # "LABEL: METHOD KEY=VALUE ..."
        label, text = text[:colon].strip(), text[colon + 1:]
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


def expand_grid(entry: dict[str, Any]) -> list[MethodRun]:
    """Cartesian product of a grid entry.

    ``{"method": "adonis", "args": {"theta": [0.1, 0.2], "eta": [1, 3]},
    "options": {"batch_size": [64, 128]}}`` gives 2 x 2 x 2 runs. ``args`` vary method
    hyper-parameters; ``options`` vary run options, and each combination of options forms a
    group with its own baseline twin. Scalars count as one value.
    """
    method = entry.get("method", [])
    methods = [method] if isinstance(method, str) else list(method)
    args = {k: v if isinstance(v, list) else [v] for k, v in entry.get("args", {}).items()}
    opts = {k: v if isinstance(v, list) else [v] for k, v in entry.get("options", {}).items()}
    unknown = set(entry) - {"method", "args", "options"}
    if unknown:
        raise ValueError(f"grid entries take method, args and options; got {sorted(unknown)}")
    runs = []
    for ovals in itertools.product(*opts.values()):
        options = dict(zip(opts, ovals))
        for avals in itertools.product(*args.values()):
            margs = dict(zip(args, avals))
            name = "+".join(methods) or BASELINE
            words = [name] + [f"{k}={v}" for k, v in margs.items()]
            label = " ".join(words)
            if options:
                label = f"{group_name(options)} | {label}"
            runs.append(MethodRun(label, methods, margs, options))
    return runs


def load_bench_spec(path: str | Path | None = None, *, overrides: dict[str, Any] | None = None,
                    seeds: list[int] | None = None, methods: list[str] | None = None,
                    out_dir: str | None = None) -> BenchSpec:
    """Build a :class:`BenchSpec` from a file and/or command-line values.

    File keys: ``seeds``, ``runs`` (list of ``{label, method, method_args}`` or method
    strings), ``grid`` (entries for :func:`expand_grid`), ``out_dir``, and any run option
    (``workload``, ``epochs``, ...) shared by all.
    """
    data: dict[str, Any] = read_config_file(path) if path else {}
    file_runs = data.pop("runs", [])
    grid = data.pop("grid", [])
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
    for entry in grid if isinstance(grid, list) else [grid]:
        runs += [r for r in expand_grid(entry)
                 if not (r.label.endswith(BASELINE) and not r.method)]
    runs += [parse_method_string(m) for m in methods or []]
    return BenchSpec(base, list(seeds or file_seeds), runs, out_dir or file_out)
