"""Cost of the DDP record exchange (docs/scaling.md): two gloo processes on this machine,
each logging one epoch of training updates of its shard (batches of --batch samples) for a
dataset of N samples, then exchanging them (RecordLog.exchange). Prints bytes sent per
rank and seconds per exchange (median of --repeats), per N.

    python benchmarks/record_sync.py --sizes 60000 1281167 --batch 128 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from thrifty.engine.distributed import Dist, RecordLog


def _worker(rank: int, port: int, sizes: list[int], batch: int, repeats: int, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    out = {}
    for n in sizes:
        times, sent = [], 0
        for _ in range(repeats):
            record = RecordLog(n, Dist(rank, 2))
            record.begin()
            mine = torch.arange(rank, n, 2)
            for i in range(0, len(mine), batch):
                idx = mine[i:i + batch]
                record.update(idx, torch.rand(len(idx)), torch.ones(len(idx), dtype=torch.bool),
                              0, trained=True)
            dist.barrier()
            t0 = time.perf_counter()
            sent = record.exchange()
            times.append(time.perf_counter() - t0)
            assert int(record.times_trained.sum()) == n
        out[n] = {"bytes_sent_per_rank": sent, "exchange_s": statistics.median(times),
                  "updates_per_rank": -(-(n // 2) // batch)}
    queue.put((rank, out))
    dist.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[60000, 1281167])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, port, args.sizes, args.batch, args.repeats,
                                               queue)) for r in range(2)]
    for proc in procs:
        proc.start()
    results = dict(queue.get() for _ in procs)
    for proc in procs:
        proc.join()
    print(json.dumps(results[0], indent=2))


if __name__ == "__main__":
    main()
