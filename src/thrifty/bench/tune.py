"""``thrifty tune``: search methods, hyper-parameters and budgets instead of listing them.

Optuna's multi-objective search (the optional extra ``thrifty[tune]``) proposes a method,
its hyper-parameters and a share of the epochs; each trial is one thrifty run at the
search seed, scored by two objectives: test accuracy (maximised) and reference cost
(minimised; the run's work counts at the calibrated per-sample costs, as a share of the
full baseline's, so independent of the machine's load). Then:

1. the equal-time frontier (the baseline and the baseline trained for the searched shares
   of the epochs, same seed) is trained first, as a benchmark, and gives the calibration;
2. ``trials`` trials run (a killed search continues: finished trials are kept in
   ``OUT/study.db``, a trial cut short is retried);
3. the Pareto set and the frontier go into one plot (``OUT/pareto.png``) and a table
   (``OUT/trials.csv``);
4. nothing is recommended from one seed: the ``confirm`` best Pareto configurations (by
   accuracy above the frontier at their cost) are re-run on the confirmation seeds as an
   ordinary benchmark in ``OUT/bench`` (the frontier's folder, whose runs it reuses) with
   budget baselines, and its plan (``OUT/bench/plan.md``) is the answer.

The search space (:data:`SPACE`) holds, per method, the hyper-parameters worth searching
and their ranges; a method outside it is searched with its defaults.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from thrifty.bench.spec import BenchSpec, MethodRun, budget_options, check_budgets
from thrifty.engine.config import make_config

#: Hyper-parameter ranges searched per method: ``name: (low, high)`` (floats, uniform).
SPACE: dict[str, dict[str, tuple[float, float]]] = {
    "infobatch": {"prune_ratio": (0.2, 0.8), "delta": (0.6, 0.95)},
    "random-adaptive": {"ratio": (0.3, 0.9)},
    "loss-adaptive": {"ratio": (0.3, 0.9)},
    "sb": {"beta": (0.5, 3.0)},
    "stale-sb": {"beta": (0.5, 3.0)},
}
#: Methods searched by default.
DEFAULT_METHODS = ("infobatch", "random-adaptive", "stale-sb")
#: Shares of the epochs searched by default (1.0: the full run).
DEFAULT_SHARES = (0.5, 0.75, 1.0)
STUDY = "thrifty-tune"


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ValueError("thrifty tune needs Optuna, the optional extra: pip install "
                         "'thrifty[tune]'") from None
    return optuna


def trial_label(method: str, args: dict[str, float], share: float, epochs: int) -> str:
    """A configuration as a bench label: ``infobatch prune_ratio=0.43 @ 75% (6 ep)``."""
    words = [method] + [f"{k}={v:.3g}" for k, v in sorted(args.items())]
    return " ".join(words) + ("" if share >= 1 else f" @ {100 * share:g}% ({epochs} ep)")


def _storage(optuna: Any, out: Path) -> Any:
    """The study's SQLite storage; a trial whose process died (no heartbeat for two
    minutes) is marked failed and retried once when the search continues."""
    out.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(
        f"sqlite:///{(out / 'study.db').resolve()}", heartbeat_interval=60,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
            max_retry=1))


def _share_options(base: dict[str, Any], share: float) -> dict[str, Any]:
    if share >= 1:
        return {}
    return budget_options(make_config(dict(base)), share) or {}


def tune(base: dict[str, Any], *, trials: int, out_dir: str | Path,
         methods: Sequence[str] = DEFAULT_METHODS, shares: Sequence[float] = DEFAULT_SHARES,
         seed: int = 0, confirm: int = 3, confirm_seeds: Sequence[int] = (0, 1, 2),
         log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the search (see the module docstring); return the Pareto set and the plan.

    Args:
        base: run options shared by every run (``workload``, ``epochs``, ...).
        trials: completed trials wanted (a resumed search runs only the missing ones).
        out_dir: the search's folder.
        methods: the methods searched. Default :data:`DEFAULT_METHODS`.
        shares: shares of the epochs searched, in (0, 1]. Default :data:`DEFAULT_SHARES`.
        seed: the search seed (runs and Optuna's sampler). Default 0.
        confirm: Pareto configurations re-run on ``confirm_seeds``. Default 3; 0: none.
        confirm_seeds: seeds of the confirmation benchmark. Default 0, 1, 2.
        log: where progress lines go. Default ``print``.

    Returns:
        ``{"pareto": [{label, accuracy, cost, ...}], "plan": text or None, "out": path}``.
    """
    optuna = _optuna()
    from thrifty.bench.runner import run_bench, summarize
    from thrifty.engine import Trainer
    from thrifty.methods import training_methods
    from thrifty.metrics.frontier import frontier_accuracy, reference_cost

    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials must be a whole number of at least 1, got {trials!r}")
    if isinstance(confirm, bool) or not isinstance(confirm, int) or confirm < 0:
        raise ValueError(f"confirm must be 0 or more, got {confirm!r}")
    methods = list(dict.fromkeys(methods))
    if not methods:
        raise ValueError("tune needs at least one method (--methods)")
    training_methods(methods)  # unknown names refused before any work
    shares = sorted({float(s) for s in shares})
    if not shares or any(not 0 < s <= 1 for s in shares):
        raise ValueError(f"shares are shares of the epochs in (0, 1], got {shares}")
    out = Path(out_dir)
    base = {**base, "progress": False}
    make_config(dict(base))  # the shared options, checked before any work
    # 1. the frontier at the search seed: baseline and budget baselines, with calibration
    frontier = BenchSpec(dict(base), [seed], [], str(out / "bench"),
                         check_budgets([s for s in shares if s < 1]))
    log(f"frontier: the baseline and its budget runs at seed {seed}")
    done = run_bench(frontier, log=log, trainer_kwargs={"log": lambda s: None})
    calibration = done["calibration"]
    f_cost, t_cost = calibration["forward_cost"], calibration["train_cost"]
    front_runs = [by[seed] for by in done["results"].values()
                  if by.get(seed) and by[seed].get("status") == "finished"]
    full = done["results"]["baseline"][seed]
    if not full or full.get("status") != "finished" or len(front_runs) < 2:
        raise ValueError(f"the frontier did not finish (see {out / 'bench'}: the baseline "
                         "and its budget runs); fix what failed and run the same command")
    full_cost = reference_cost(full, f_cost, t_cost)
    points = [(reference_cost(r, f_cost, t_cost) / full_cost,
               100 * r["epochs"][-1]["test_accuracy"]) for r in front_runs]

    # 2. the search: two objectives, the study stored so that a killed search continues
    with warnings.catch_warnings():  # the heartbeat is marked experimental by Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = _storage(optuna, out)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    known = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    done_before = len(optuna.load_study(study_name=STUDY, storage=storage).trials) \
        if STUDY in known else 0
    # a continued search draws on: a sampler seeded as at the start would propose its
    # first (random) configurations again
    study = optuna.create_study(study_name=STUDY, storage=storage, load_if_exists=True,
                                directions=["maximize", "minimize"],
                                sampler=optuna.samplers.TPESampler(seed=seed + done_before))
    def objective(trial: Any) -> tuple[float, float]:
        method = trial.suggest_categorical("method", methods)
        args = {k: trial.suggest_float(f"{method}.{k}", lo, hi)
                for k, (lo, hi) in SPACE.get(method, {}).items()}
        share = trial.suggest_categorical("share", shares)
        opts = _share_options(base, share)
        if not opts:  # the share rounds to every epoch: a full run
            share = 1.0
            trial.set_user_attr("share", 1.0)
        cfg = make_config({**base, **opts, "method": [method], "method_args": args,
                           "seed": seed, "out_dir": str(out / "trials"),
                           "run_name": f"trial-{trial.number}"})
        label = trial_label(method, args, share, cfg.epochs)
        log(f"trial {trial.number}: {label}")
        result = Trainer(cfg, log=lambda s: None).fit()
        accuracy = 100 * result["epochs"][-1]["test_accuracy"]
        cost = reference_cost(result, f_cost, t_cost) / full_cost
        trial.set_user_attr("label", label)
        trial.set_user_attr("run_dir", str(result["run_dir"]))
        log(f"  accuracy {accuracy:.2f} %, cost {cost:.2f} of the baseline's")
        return accuracy, cost

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    missing = trials - len(complete)
    if missing > 0:
        log(f"search: {missing} trial(s) ({len(complete)} done earlier)")
        # a trial that fails (a diverged run included) is recorded failed; the search goes on
        study.optimize(objective, n_trials=missing,
                       catch=(ValueError, RuntimeError, FloatingPointError))

    # 3. the Pareto set, the table and the plot
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    pareto_ids = {t.number for t in study.best_trials}
    rows = []
    for t in complete:
        acc, cost = t.values
        at = frontier_accuracy(points, cost)
        rows.append({"trial": t.number, "label": t.user_attrs.get("label", str(t.params)),
                     "method": t.params["method"],
                     "share": t.user_attrs.get("share", t.params["share"]),
                     "params": {k: v for k, v in t.params.items()
                                if k not in ("method", "share")},
                     "accuracy": acc, "cost": cost, "pareto": t.number in pareto_ids,
                     "gain_vs_frontier": None if at is None else acc - at})
    _write_trials(out, rows, points)
    pareto = sorted((r for r in rows if r["pareto"]), key=lambda r: r["cost"])
    for r in pareto:
        gain = "–" if r["gain_vs_frontier"] is None else f"{r['gain_vs_frontier']:+.2f}"
        log(f"pareto: {r['label']}: {r['accuracy']:.2f} %, cost {r['cost']:.2f}, vs frontier "
            f"{gain} p.p. (seed {seed})")

    # 4. the best few, re-run on the confirmation seeds before anything is recommended
    ranked = sorted(pareto, key=lambda r: -(r["gain_vs_frontier"]
                                            if r["gain_vs_frontier"] is not None
                                            else -math.inf))
    chosen, seen = [], set()
    for r in ranked:  # a configuration proposed twice is confirmed once
        key = (r["method"], json.dumps(r["params"], sort_keys=True), r["share"])
        if key not in seen and len(chosen) < confirm:
            seen.add(key)
            chosen.append(r)
    labels = [r["label"] for r in chosen]
    for r in chosen:  # equal labels, different values beyond 3 digits: tell them apart
        if labels.count(r["label"]) > 1:
            r["label"] += f" (trial {r['trial']})"
    plan = None
    if chosen:
        runs = []
        for r in chosen:
            prefix = f"{r['method']}."
            args = {k[len(prefix):]: v for k, v in r["params"].items() if k.startswith(prefix)}
            runs.append(MethodRun(r["label"], [r["method"]], args,
                                  _share_options(base, r["share"]), twin="baseline"
                                  if r["share"] < 1 else None,
                                  share=r["share"] if r["share"] < 1 else None))
        # the same folder as the frontier: its seed's baseline and budget runs are reused
        spec = BenchSpec(dict(base), list(confirm_seeds), runs, str(out / "bench"),
                         check_budgets([s for s in shares if s < 1]))
        log(f"confirming {len(chosen)} configuration(s) on seeds "
            f"{', '.join(map(str, confirm_seeds))}")
        run_bench(spec, log=log, trainer_kwargs={"log": lambda s: None})
        summarize(spec)
        plan = (out / "bench" / "plan.md").read_text()
    return {"pareto": pareto, "plan": plan, "out": str(out)}


def _write_trials(out: Path, rows: list[dict[str, Any]],
                  points: list[tuple[float, float]]) -> None:
    """``trials.csv`` (every trial, Pareto flagged) and ``pareto.png`` (trials, the Pareto
    set and the equal-cost frontier of the budget baselines)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "trials.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["trial", "label", "method", "share", "accuracy",
                                          "cost", "pareto", "gain_vs_frontier", "params"])
        w.writeheader()
        for r in rows:
            w.writerow({**r, "params": json.dumps(r["params"], sort_keys=True)})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    front = sorted(points)
    ax.plot([c for c, _ in front], [a for _, a in front], "k--o", label="train for fewer "
            "epochs (baseline, budget runs)")
    ax.scatter([r["cost"] for r in rows if not r["pareto"]],
               [r["accuracy"] for r in rows if not r["pareto"]], c="0.6", label="trials")
    best = sorted((r for r in rows if r["pareto"]), key=lambda r: r["cost"])
    ax.plot([r["cost"] for r in best], [r["accuracy"] for r in best], "r-s",
            label="Pareto set")
    ax.set_xlabel("reference cost (share of the full baseline's)")
    ax.set_ylabel("test accuracy %")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "pareto.png", dpi=120)
    plt.close(fig)
