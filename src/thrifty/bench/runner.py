"""Run a benchmark: every method run, its paired baseline and the baseline's budget runs,
interleaved by seed so that machine drift hits all of them; resumable; a crashing run is
recorded and skipped.

Layout of ``out_dir``::

    calibration.json        per-sample forward / train-step costs on this machine
    runs/<label>-s<seed>/   one Trainer run folder each (result.json, checkpoint.pt)
    table.csv, table.md     the comparison table (see :mod:`thrifty.bench.table`)
"""

from __future__ import annotations

import json
import shutil
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from thrifty.bench.calibrate import calibrate
from thrifty.bench.spec import BenchSpec, MethodRun, safe_name
from thrifty.engine import Trainer, TrainingInterrupted
from thrifty.engine.checkpoint import write_json
from thrifty.engine.config import RunConfig
from thrifty.utils.locks import FolderBusyError, FolderLock


def plan(spec: BenchSpec, seeds: list[int] | None = None) -> list[tuple[MethodRun, int]]:
    """Run order: for each seed (of ``seeds``, default all), the baseline, its budget runs,
    then every method (interleaved)."""
    return [(run, seed) for seed in (spec.seeds if seeds is None else seeds)
            for run in spec.runs]


def run_dir(spec: BenchSpec, run: MethodRun, seed: int) -> Path:
    return Path(spec.out_dir) / "runs" / f"{safe_name(run.label)}-s{seed}"


def read_result(path: Path) -> dict[str, Any] | None:
    f = path / "result.json"
    if not f.is_file():
        return None
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError:
        return None


# what differs between two configurations of the same run without making them different
# runs: where they write, how they show progress, how many threads they use
_NOT_IDENTITY = ("out_dir", "run_name", "progress", "threads", "num_workers", "track",
                 "energy", "data_root", "eval_batch_size")


def same_run(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The options (other than :data:`_NOT_IDENTITY`) whose values differ between a stored
    run's config and the one requested. An option the stored run does not name (it was
    written by a thrifty that did not have it yet) counts as its default, which keeps the
    earlier behaviour."""
    defaults = RunConfig().to_dict()
    keys = (set(stored) | set(wanted)) - set(_NOT_IDENTITY)
    return sorted(k for k in keys if stored.get(k, defaults.get(k)) != wanted.get(k))


def check_stored_runs(spec: BenchSpec, todo: list[tuple[MethodRun, int]]) -> None:
    """Refuse (before any work) a benchmark whose run folders hold runs of another
    configuration: their results would be shown under this benchmark's labels."""
    for run, seed in todo:
        folder = run_dir(spec, run, seed)
        prev = read_result(folder)
        if not prev or "config" not in prev:
            continue
        wanted = spec.config(run, seed).to_dict()
        differ = same_run(prev["config"], wanted)
        if differ:
            shown = ", ".join(f"{k} {prev['config'].get(k)!r} (now {wanted.get(k)!r})"
                              for k in differ[:4])
            raise ValueError(
                f"{folder} holds a run of another configuration ({shown}): its result would "
                f"be shown as {run.label!r}. Use another --out for this benchmark (or move "
                "that run folder away)")


#: What a benchmark writes at the top of its folder (besides ``runs/``).
BENCH_FILES = ("spec.json", "calibration.json", "table.md", "table.csv", "plan.md", "report.md",
               "report.html", "accuracy_vs_time.png", "speedup_vs_drop.png",
               "selected_share.png")


def clear_bench(out: Path) -> list[Path]:
    """Remove what a benchmark wrote in ``out`` (its ``spec.json`` says it is one): the run
    folders under ``runs/`` that hold a thrifty result or checkpoint, and its tables, report
    and plots. Anything else stays; returns what stayed. A folder without ``spec.json``
    is refused: thrifty did not write it."""
    if not out.exists():
        return []
    if not (out / "spec.json").is_file():
        raise ValueError(f"{out} is not a thrifty benchmark folder (no spec.json): --fresh "
                         "removes only what thrifty wrote. Choose another --out, or empty "
                         "it yourself")
    kept = []
    runs = out / "runs"
    for folder in sorted(runs.iterdir()) if runs.is_dir() else []:
        if folder.is_dir() and ((folder / "result.json").is_file()
                                or (folder / "checkpoint.pt").is_file()):
            shutil.rmtree(folder)
        else:
            kept.append(folder)
    for name in BENCH_FILES:
        (out / name).unlink(missing_ok=True)
    for lock in out.glob(".lock*"):  # the benchmark's own lock files
        if lock.is_file():
            lock.unlink()
    if runs.is_dir() and not any(runs.iterdir()):
        runs.rmdir()
    kept += [p for p in out.iterdir() if p.name != "runs"]
    return kept


def set_aside(folder: Path) -> Path:
    """Rename ``folder`` to the first free ``NAME.failed-N`` beside it (nothing deleted)."""
    i = 1
    while (aside := folder.with_name(f"{folder.name}.failed-{i}")).exists():
        i += 1
    folder.rename(aside)
    return aside


def _record_failure(folder: Path, run: MethodRun, seed: int, exc: BaseException) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    existing = read_result(folder) or {}
    write_json(folder / "result.json", {
        **existing, "format": "thrifty-run/1", "status": "failed",
        "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
        "bench": {"label": run.label, "seed": seed}})


def run_bench(spec: BenchSpec, log: Callable[[str], None] = print,
              trainer_kwargs: dict[str, Any] | None = None,
              seeds: list[int] | None = None) -> dict[str, Any]:
    """Run (or continue) the benchmark; return ``{"results": {label: {seed: result}},
    "calibration": ...}``. ``seeds`` restricts this call to some seeds (one job of
    :func:`~thrifty.bench.executor.run_bench_submitit`); default all.

    Finished runs are skipped, interrupted runs resume from their checkpoint, failed runs
    are retried. SIGINT/SIGTERM stop the benchmark after saving the current run's
    checkpoint; the same command continues it.
    """
    validate_spec(spec)  # every configuration is checked before the first run trains
    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seeds = spec.seeds if seeds is None else seeds
    # one process per seed of a benchmark folder: a second bench on the same folder (or the
    # same seeds) is refused instead of training every run twice
    locks = [FolderLock(out, f".lock.s{seed}", what=f"benchmark folder (seed {seed})")
             for seed in seeds]
    held: list[FolderLock] = []
    try:
        for lock in locks:
            held.append(lock.acquire())
        return _run_locked(spec, out, seeds, log, trainer_kwargs)
    finally:
        for lock in held:
            lock.release()


def _run_locked(spec: BenchSpec, out: Path, seeds: list[int], log: Callable[[str], None],
                trainer_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    write_json(out / "spec.json", {"base": spec.base, "seeds": spec.seeds,
                                   "runs": [vars(r) for r in spec.runs],
                                   "baseline_of": spec.baseline_of(),
                                   "budgets": spec.budgets, "frontier_of": spec.frontier_of()})
    cal_path = out / "calibration.json"
    if cal_path.is_file():
        calibration = json.loads(cal_path.read_text())
    else:
        log("calibrating per-sample forward and train-step costs ...")
        calibration = calibrate(spec.config(spec.runs[0], spec.seeds[0]))
        write_json(cal_path, calibration)
    todo = plan(spec, seeds)
    check_stored_runs(spec, todo)  # before any work: never show another run's result
    kwargs = trainer_kwargs or {}
    for i, (run, seed) in enumerate(todo, 1):
        folder = run_dir(spec, run, seed)
        prev = read_result(folder)
        status = prev["status"] if prev else None
        if status == "finished":
            log(f"[{i}/{len(todo)}] {run.label} seed {seed}: finished earlier, skipped")
            continue
        if folder.exists() and _busy(folder):
            log(f"[{i}/{len(todo)}] {run.label} seed {seed}: in use by another process "
                f"({_busy(folder)}), skipped")
            continue
        log(f"[{i}/{len(todo)}] {run.label} seed {seed}")
        try:
            trainer = None
            if (folder / "checkpoint.pt").is_file():
                # a checkpoint is resumed whatever the run's status says (a second Ctrl-C
                # can record a run as failed after its checkpoint was written)
                try:
                    trainer = Trainer.resume(folder, **kwargs)
                except (ValueError, RuntimeError, OSError) as exc:
                    log(f"  cannot resume {folder} ({exc})")
            if trainer is None:
                if folder.exists():  # a failed or broken attempt: kept aside, not deleted
                    aside = set_aside(folder)
                    log(f"  an earlier failed attempt is kept in {aside}; starting again")
                trainer = Trainer(spec.config(run, seed), **kwargs)
            trainer._bench = {"label": run.label, "seed": seed}  # in every result.json write
            result = trainer.fit()
            result["bench"] = {"label": run.label, "seed": seed}
            write_json(folder / "result.json", result)
        except (TrainingInterrupted, KeyboardInterrupt):
            log("benchmark interrupted; run the same command again to continue")
            raise
        except Exception as exc:  # isolate the failure, keep going
            log(f"  FAILED: {type(exc).__name__}: {exc}")
            _record_failure(folder, run, seed, exc)
    return collect(spec) | {"calibration": calibration}


def _busy(folder: Path) -> str | None:
    """The holder of a run folder's lock (a run continued by hand), or ``None``."""
    try:
        FolderLock(folder, what="run folder").acquire().release()
    except FolderBusyError as exc:
        return str(exc).split(" is in use by ")[-1].split(":")[0]
    return None


def validate_spec(spec: BenchSpec) -> None:
    """Build every configuration of ``spec`` (its options and its methods with their
    hyper-parameters) without data, so that a typo or an out-of-range value is refused
    before the first run, not after the baselines have trained."""
    from thrifty.methods import build_pieces, training_methods

    problems = []
    for run in spec.runs:
        try:
            cfg = spec.config(run, spec.seeds[0])
            training_methods(cfg.method)
            build_pieces(cfg.method, cfg.method_args)
        except (ValueError, TypeError) as exc:
            problems.append(f"{run.label!r}: {exc}")
    if problems:
        raise ValueError("the benchmark has configurations that cannot run (nothing was "
                         "trained):\n  " + "\n  ".join(problems))


def failed_runs(spec: BenchSpec) -> list[str]:
    """``label seed N: error`` of every run whose stored result says it failed."""
    return [f"{label} seed {seed}: {r.get('error')}"
            for label, by_seed in collect(spec)["results"].items()
            for seed, r in by_seed.items() if r and r.get("status") == "failed"]


def collect(spec: BenchSpec) -> dict[str, Any]:
    """Stored results by label and seed (``None`` for runs not finished)."""
    results: dict[str, dict[int, dict[str, Any] | None]] = {}
    for run in spec.runs:
        results[run.label] = {}
        for seed in spec.seeds:
            r = read_result(run_dir(spec, run, seed))
            results[run.label][seed] = r
    return {"results": results}


def summarize(spec: BenchSpec, calibration: dict[str, float] | None = None
              ) -> list[dict[str, Any]]:
    """Compute the comparison table from the stored results; write table.csv, table.md and
    the plan (plan.md, :mod:`thrifty.bench.recommend`)."""
    from thrifty.bench.recommend import make_plan
    from thrifty.bench.table import compute_rows, to_csv, to_markdown

    out = Path(spec.out_dir)
    if calibration is None and (out / "calibration.json").is_file():
        calibration = json.loads((out / "calibration.json").read_text())
    rows = compute_rows(collect(spec)["results"], calibration, spec.baseline_of(),
                        spec.frontier_of())
    (out / "table.csv").write_text(to_csv(rows))
    (out / "table.md").write_text(to_markdown(rows))
    (out / "plan.md").write_text(make_plan(rows, spec))
    return rows
