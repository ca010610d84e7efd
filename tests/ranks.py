"""Two (or more) CPU processes in one test, as under torchrun: a free port, the gloo group,
and the reports each rank puts on a queue."""

from __future__ import annotations

import datetime
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join_group(rank: int, port: int, world: int) -> None:
    """In a worker: torchrun's environment and the gloo process group, one thread."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))


def run_ranks(worker: Callable[..., None], args: tuple[Any, ...], world: int = 2,
              timeout: float = 120) -> tuple[list[dict[str, Any]], float]:
    """``worker(rank, port, *args, queue)`` in ``world`` spawned processes; their reports
    (dicts with ``"rank"``) sorted by rank, and the seconds it took."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=worker, args=(r, port, *args, queue)) for r in range(world)]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    reports = [queue.get(timeout=timeout) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    return sorted(reports, key=lambda r: r["rank"]), time.monotonic() - t0


@contextmanager
def reporting(rank: int, queue: Any) -> Iterator[dict[str, Any]]:
    """In a worker: the rank's report, put on ``queue`` however the work ends (an exception
    goes in as ``error`` and ``traceback``), then the process group destroyed. Arrays go
    in as numpy copies: tensors would be shared through the sender's memory, gone once it
    exits."""
    report: dict[str, Any] = {"rank": rank}
    try:
        yield report
    except Exception as exc:  # noqa: BLE001 - reported to the test
        report["error"] = f"{type(exc).__name__}: {exc}"
        report["traceback"] = traceback.format_exc()
    finally:
        queue.put(report)
        dist.destroy_process_group()
