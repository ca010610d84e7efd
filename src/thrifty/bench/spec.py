"""What a benchmark runs: a workload, seeds, and labelled method runs (each paired with the
baseline of the same seed), plus the budget baselines that simply train for fewer epochs
(the equal-time frontier), from a YAML/TOML file or command-line strings."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thrifty.engine.config import (
    RunConfig,
    budget_options,
    check_option,
    load_yaml,
    make_config,
    read_config_file,
)
from thrifty.recipes import SHARE_KEY, expand_recipe
from thrifty.workload import is_factory, resolve_factory

RUN_OPTIONS = set(RunConfig.__dataclass_fields__)

BASELINE = "baseline"
#: Default budget baselines: these shares of the benchmark's epochs (``budgets: none`` off).
DEFAULT_BUDGETS = (0.25, 0.5, 0.75)
#: Default largest accuracy drop (p.p.) the plan accepts (``--target-drop``).
DEFAULT_TARGET_DROP = 0.5


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
    budget: float | None = None  # share of the epochs, for a budget baseline
    twin: str | None = None  # the full baseline a budget baseline is compared with
    share: float | None = None  # share of the epochs, for a method run at a budget

    @property
    def group(self) -> str:
        """The grid group (its run options as text); '' outside option grids."""
        return group_name(self.options)


def check_budgets(budgets: Any, name: str = "budgets") -> list[float]:
    """Budget shares as a sorted list of floats in (0, 1); ``None``/``"none"``/``[]``: none.
    ``name`` is the option named in the error (``budgets`` or ``method_budgets``)."""
    if budgets is None or budgets == "none" or budgets == ["none"]:
        return []
    if not isinstance(budgets, (list, tuple)):
        budgets = [budgets]
    out = []
    for b in budgets:
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 < b < 1:
            raise ValueError(f"{name} are shares of the epochs in (0, 1), e.g. "
                             f"{name}: [0.25, 0.5, 0.75] (or none); got {b!r}")
        out.append(float(b))
    return sorted(set(out))


def check_target_drop(value: Any) -> float:
    """The plan's largest accepted accuracy drop in p.p.: a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            0 <= value < 100):
        raise ValueError(f"target_drop is the largest accuracy drop the plan accepts, in "
                         f"percentage points in [0, 100), e.g. 0.5; got {value!r}")
    return float(value)


# Options that do not change what a run without methods computes.
_NOT_BASELINE_RECIPE = ("run_name", "out_dir", "seed", "progress", "method", "method_args",
                        "forward_batch_size", "selection_amp", "track")


def _recipe_key(config: RunConfig) -> str:
    d = config.to_dict()
    for k in _NOT_BASELINE_RECIPE:
        d.pop(k, None)
    return json.dumps(d, sort_keys=True, default=str)


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
    budgets: list[float] = field(default_factory=lambda: list(DEFAULT_BUDGETS))
    method_budgets: list[float] = field(default_factory=list)
    target_drop: float = DEFAULT_TARGET_DROP

    def __post_init__(self) -> None:
        self.budgets = check_budgets(self.budgets)
        self.method_budgets = check_budgets(self.method_budgets, "method_budgets")
        self.target_drop = check_target_drop(self.target_drop)
        if not self.seeds:
            raise ValueError("a benchmark needs at least one seed")
        labels = [r.label for r in self.runs]
        dup = {x for x in labels if labels.count(x) > 1}
        if dup:
            raise ValueError(f"duplicate run labels: {', '.join(sorted(dup))}")
        folders: dict[str, str] = {}
        for label in labels:  # two labels, one run folder: the second would never run
            other = folders.setdefault(safe_name(label), label)
            if other != label:
                raise ValueError(f"run labels {other!r} and {label!r} map to one run folder "
                                 f"({safe_name(label)!r}): rename one (letters, digits and "
                                 "._=+- are kept, everything else becomes _)")
        # every grid group gets its baseline twin, first in the group; groups whose options
        # do not change a run without methods (forward_batch_size, selection_amp, ...)
        # share one baseline run instead of training the same baseline again
        groups: dict[str, dict[str, Any]] = {}
        for r in self.runs:
            if r.share is None:  # a method at a share of the epochs pairs with its twin
                groups.setdefault(r.group, r.options)
        if not groups:
            groups[""] = {}
        by_recipe: dict[str, str] = {}
        self._group_baseline: dict[str, str] = {}
        for g in sorted(groups, key=lambda g: g != ""):  # the plain group's baseline first
            key = _recipe_key(make_config({**self.base, **groups[g]}))
            self._group_baseline[g] = by_recipe.setdefault(key, baseline_label(g))
        for g, opts in reversed(list(groups.items())):
            label = baseline_label(g)
            if self._group_baseline[g] == label and label not in labels:
                users = [i for i, r in enumerate(self.runs)
                         if self._group_baseline.get(r.group) == label or r.twin == label]
                self.runs.insert(min(users, default=0), MethodRun(label, options=dict(opts)))
        make_config(dict(self.base))  # validate the shared options early
        self._add_budget_runs()
        self._add_method_budget_runs()

    def _add_budget_runs(self) -> None:
        """After each group's baseline, its budget baselines; a budget run whose recipe
        equals another group's is shared, not run twice."""
        shared: dict[str, MethodRun] = {}
        self.frontier: dict[str, list[str]] = {}  # full baseline -> its budget runs
        runs: list[MethodRun] = []
        for r in self.runs:
            runs.append(r)
            if r.method or r.budget is not None or r.label != baseline_label(r.group):
                continue
            full = make_config({**self.base, **r.options})
            labels = []
            for share in self.budgets:
                opts = budget_options(full, share)
                if opts is None:
                    continue
                key = _recipe_key(make_config({**self.base, **r.options, **opts}))
                if key not in shared:
                    label = f"{r.label} {100 * share:g}% ({opts['epochs']} ep)"
                    shared[key] = MethodRun(label, options={**r.options, **opts},
                                            budget=share, twin=r.label)
                    runs.append(shared[key])
                if shared[key].label not in labels:
                    labels.append(shared[key].label)
            self.frontier[r.label] = labels
        self.runs = runs

    def _add_method_budget_runs(self) -> None:
        """After each method run, the same methods trained for each share of
        ``method_budgets`` of its epochs, every per-epoch schedule (the learning rate's and
        the methods' own, InfoBatch's annealing included) spanning the shorter run; each
        is paired with the method's full baseline."""
        if not self.method_budgets:
            return
        pair = self.baseline_of()
        runs: list[MethodRun] = []
        for r in self.runs:
            runs.append(r)
            if not r.method or r.budget is not None or r.share is not None:
                continue
            # a recipe is expanded here (its methods, arguments, options and share), so
            # that its share of the epochs is applied once
            expanded = expand_recipe({"method": list(r.method),
                                      "method_args": dict(r.method_args)})
            recipe_share = expanded.pop(SHARE_KEY, 1.0)
            full = make_config({**self.base, **r.options, **expanded})
            if recipe_share < 1:  # the recipe's own run, shortened once
                full = make_config({**full.to_dict(),
                                    **(budget_options(full, recipe_share) or {})})
            for share in self.method_budgets:
                opts = budget_options(full, share)
                if opts is None:
                    continue
                of_base = share * recipe_share
                extra = {k: v for k, v in expanded.items() if k not in ("method", "method_args")}
                runs.append(MethodRun(f"{r.label} @ {100 * of_base:g}% ({opts['epochs']} ep)",
                                      list(expanded["method"]), dict(expanded["method_args"]),
                                      {**r.options, **extra, **opts}, twin=pair[r.label],
                                      share=of_base))
        labels = [r.label for r in runs]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"method_budgets make labels that already exist: {dup}")
        self.runs = runs

    def baseline_of(self) -> dict[str, str]:
        """Label of each run -> label of its paired baseline (its grid group's, or the one
        its group shares when the group's options leave a run without methods unchanged;
        a budget baseline pairs with the full baseline it shortens)."""
        return {r.label: r.twin or self._group_baseline.get(r.group, baseline_label(r.group))
                for r in self.runs}

    def frontier_of(self) -> dict[str, list[str]]:
        """Label of each method run -> the budget baselines of its paired baseline (the
        frontier is those plus the full baseline)."""
        pair = self.baseline_of()
        return {r.label: self.frontier.get(pair[r.label], []) for r in self.runs
                if r.budget is None and r.method}

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
    An optional ``LABEL:`` prefix (may contain spaces, and ``=`` when followed by ``": "``)
    sets the label (default: the text).
    """
    label = None
    colon, equals = text.find(":"), text.find("=")
    if text.find(": ") > 0:  # "LABEL: METHOD KEY=VALUE ...", the label may hold "="
        label, _, text = text.partition(": ")
        label = label.strip()
    elif colon > 0 and (equals < 0 or colon < equals):  # "LABEL:METHOD ..."
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
        args[k] = load_yaml(v, f"method string {text!r}")
    return MethodRun(label or " ".join(words), methods, args)


def expand_grid(entry: dict[str, Any]) -> list[MethodRun]:
    """Cartesian product of a grid entry.

    ``{"method": "adonis", "args": {"theta": [0.1, 0.2], "eta": [1, 3]},
    "options": {"batch_size": [64, 128]}}`` gives 2 x 2 x 2 runs. ``args`` vary method
    hyper-parameters; ``options`` vary run options, and each combination of options forms a
    group with its own baseline twin (shared between groups whose options leave a run
    without methods unchanged). Scalars count as one value.
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
                    out_dir: str | None = None, budgets: Any = ...,
                    method_budgets: Any = ..., target_drop: Any = ...) -> BenchSpec:
    """Build a :class:`BenchSpec` from a file and/or command-line values.

    File keys: ``seeds``, ``runs`` (list of ``{label, method, method_args}`` or method
    strings), ``grid`` (entries for :func:`expand_grid`), ``out_dir``, ``budgets`` (shares
    of the epochs for the budget baselines; default 0.25, 0.5, 0.75; ``none`` for none),
    and any run option (``workload``, ``epochs``, ...) shared by all; ``method_budgets``
    (shares of the epochs at which every method also runs; default none) and
    ``target_drop`` (the plan's largest accepted drop in p.p.; default 0.5).
    ``budgets``, ``method_budgets`` and ``target_drop`` given here win over the file's.
    """
    data: dict[str, Any] = read_config_file(path) if path else {}
    where = f"{path}: " if path else ""
    file_runs = data.pop("runs", [])
    grid = data.pop("grid", [])
    file_seeds = data.pop("seeds", [0])
    file_out = data.pop("out_dir", "bench")
    file_budgets = data.pop("budgets", list(DEFAULT_BUDGETS))
    file_method_budgets = data.pop("method_budgets", [])
    file_target = data.pop("target_drop", DEFAULT_TARGET_DROP)
    if not isinstance(file_runs, list):
        raise ValueError(f"{where}runs must be a list (one '- METHOD KEY=VALUE' line, or "
                         f"'- {{method: ..., method_args: ...}}', per run), got "
                         f"{type(file_runs).__name__}")
    if not isinstance(grid, (list, dict)):
        raise ValueError(f"{where}grid must be a list of grid entries (or one entry)")
    if not isinstance(file_seeds, list) or not all(
            isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2 ** 32
            for x in file_seeds):
        raise ValueError(f"{where}seeds must be a list of whole numbers in [0, 2**32), got "
                         f"{file_seeds!r}: write seeds: [0, 1, 2]")
    if not isinstance(file_out, str):
        raise ValueError(f"{where}out_dir must be a folder name, got {file_out!r}")
    for k, v in data.items():  # the run options every run shares, checked here by name
        if k in RUN_OPTIONS and not (k in ("amp", "selection_amp") and v is False):
            check_option(k, v, str(path) if path else None)
    base = {**data, **(overrides or {})}
    if is_factory(base.get("workload")):  # FILE.py:FUNCTION, made absolute once, so
        base["workload"] = resolve_factory(base["workload"])  # every run and job finds it
    runs: list[MethodRun] = []
    for r in file_runs:
        if isinstance(r, str):
            runs.append(parse_method_string(r))
        elif not isinstance(r, dict) or set(r) - {"label", "method", "method_args"}:
            raise ValueError(f"{where}each run is a method string or a mapping with label, "
                             f"method and method_args; got {r!r}")
        else:
            m = r.get("method", [])
            runs.append(MethodRun(r.get("label") or "+".join(m if isinstance(m, list) else [m]),
                                  [m] if isinstance(m, str) else list(m),
                                  dict(r.get("method_args", {}))))
    for entry in grid if isinstance(grid, list) else [grid]:
        runs += [r for r in expand_grid(entry)
                 if not (r.label.endswith(BASELINE) and not r.method)]
    runs += [parse_method_string(m) for m in methods or []]
    return BenchSpec(base, list(seeds or file_seeds), runs, out_dir or file_out,
                     check_budgets(file_budgets if budgets is ... else budgets),
                     check_budgets(file_method_budgets if method_budgets is ...
                                   else method_budgets, "method_budgets"),
                     check_target_drop(file_target if target_drop is ... else target_drop))
