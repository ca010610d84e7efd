"""Benchmark grids on a cluster or as local processes, through submitit (optional extra
``thrifty[submitit]``): ``thrifty bench --executor submitit --max-parallel N``.

One job per seed runs that seed's baseline, its budget baselines and every method one
after the other on one node (the in-process runner's order), so the times within a seed
stay comparable. submitit picks SLURM when ``sbatch`` is there and local processes
otherwise. Submitting again skips finished runs (each job is :func:`run_bench` for its
seed); a preempted or timed-out job is requeued (submitit's checkpointing) and its
interrupted run resumes from its checkpoint. Job logs go to ``OUT/submitit/``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from thrifty.bench.runner import collect, run_bench
from thrifty.bench.spec import BenchSpec

try:
    import submitit
except ModuleNotFoundError as exc:  # pragma: no cover - exercised without the extra
    raise ModuleNotFoundError("thrifty bench --executor submitit needs submitit: "
                              "pip install 'thrifty[submitit]'") from exc


class SeedJob(submitit.helpers.Checkpointable):
    """One seed of a benchmark, run to the end (finished runs skipped); requeued as is on
    preemption, when its interrupted run resumes from the run's checkpoint."""

    def __init__(self, spec: BenchSpec, seed: int) -> None:
        self.spec, self.seed = spec, seed

    def __call__(self) -> dict[str, Any]:
        run_bench(self.spec, seeds=[self.seed], trainer_kwargs={"log": print})
        return {"seed": self.seed}


def run_bench_submitit(spec: BenchSpec, *, max_parallel: int = 1, cluster: str | None = None,
                       timeout_min: int = 24 * 60, poll_s: float = 2.0,
                       log: Callable[[str], None] = print,
                       parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the benchmark as one submitit job per seed, at most ``max_parallel`` at once;
    wait for them; return what :func:`run_bench` returns (results and calibration).

    Args:
        spec: the benchmark.
        max_parallel: jobs running at once (SLURM: the array's parallelism). Default 1.
        cluster: ``"slurm"``, ``"local"`` or ``None`` (default: SLURM when available).
        timeout_min: a job's time limit in minutes (then requeued). Default one day.
        poll_s: seconds between checks of the running jobs. Default 2.
        log: prints progress lines. Default ``print``.
        parameters: more executor parameters (``slurm_partition``, ``gpus_per_node``, ...).
            Default ``None``.

    Raises:
        RuntimeError: some job failed; names the seeds and the jobs' log folder.
    """
    if isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1:
        raise ValueError(f"--max-parallel must be a positive integer, got {max_parallel!r}")
    folder = Path(spec.out_dir) / "submitit"
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    executor.update_parameters(timeout_min=timeout_min, name="thrifty-bench",
                               **({"slurm_array_parallelism": max_parallel}
                                  if executor.cluster == "slurm" else {}),
                               **(parameters or {}))
    pending = list(spec.seeds)
    running: list[tuple[int, Any]] = []
    failed: list[str] = []
    log(f"submitit ({executor.cluster}): {len(pending)} seed job(s), at most {max_parallel} "
        f"at once; logs in {folder}/")
    while pending or running:
        while pending and len(running) < max_parallel:
            seed = pending.pop(0)
            job = executor.submit(SeedJob(spec, seed))
            log(f"  seed {seed}: job {job.job_id}")
            running.append((seed, job))
        time.sleep(poll_s)
        for seed, job in list(running):
            if job.done():
                running.remove((seed, job))
                try:
                    job.result()
                    log(f"  seed {seed}: done")
                except Exception as exc:  # noqa: BLE001 - reported below, others go on
                    failed.append(f"seed {seed} (job {job.job_id}): {type(exc).__name__}")
                    log(f"  seed {seed}: FAILED ({type(exc).__name__}); see {folder}/")
    if failed:
        raise RuntimeError(f"{len(failed)} benchmark job(s) failed: {'; '.join(failed)}. "
                           f"Their logs are in {folder}/; the same command continues")
    out = collect(spec)
    cal = Path(spec.out_dir) / "calibration.json"
    out["calibration"] = json.loads(cal.read_text()) if cal.is_file() else None
    return out
