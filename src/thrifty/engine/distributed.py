"""Training on several processes (``torchrun``, any backend: gloo on CPU, NCCL on GPU).

How the engine stays exact and comparable under DDP:

- **One choice, disjoint shards.** Every rank holds the same per-sample record and the
  same seeded methods, so every sampler makes the same choice on every rank; each rank
  loads ``order[rank::world]`` of it (no padding, nothing dropped: the global work counts
  equal a single process's, shards differ by at most one sample).
- **Uneven steps never hang.** Ranks may take different numbers of optimizer steps (a
  selector keeps different numbers of samples per shard; shards differ by one sample):
  the epoch's batches run inside DDP's ``join`` context, which lets a rank that ran out
  shadow the others' gradient all-reduces (gradients averaged over the ranks still
  stepping).
- **The record is exchanged once per epoch.** During an epoch each rank writes the losses
  of its own samples; at the epoch's end every rank receives every other rank's updates
  (:class:`RecordLog`), so all records are identical before the next epoch's choice. No
  method reads another rank's losses within an epoch (samplers choose at the epoch's start,
  stale selectors read earlier epochs), and one exchange per epoch costs far less than one
  per step (see ``docs/scaling.md``).
- **Counted once.** Work counts are summed over ranks at the epoch's end (optimizer steps:
  the most any rank took, the number of synchronised updates); ``ctx.score`` passes are
  sharded and gathered, other counted passes (CAPER's) run whole on every rank and count
  the work every rank did; evaluation is sharded and gathered.
- **One optimizer state.** A rank that ran out of batches shadows the others' all-reduces
  but takes no optimizer step, so at the epoch's end every rank takes the optimizer (and
  AMP scaler) state of the rank that stepped most, whose weights DDP's ``join`` kept.
- **Stops at an epoch's end.** A stop request (Ctrl-C, SIGTERM, ``request_stop``) on any
  rank ends the run on every rank after the current epoch, with a checkpoint.
- **Rank 0 writes.** Only rank 0 writes ``result.json`` and checkpoints (with
  ``world_size``); the other ranks use the run folder rank 0 chose.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from thrifty.engine.record import Flat, SampleRecord

DEFAULT_TIMEOUT_S = 300


@dataclass(frozen=True)
class Dist:
    """Where this process stands: ``rank`` of ``world_size`` (1: not distributed)."""

    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment(device: torch.device) -> Dist:
    """The process group of a ``torchrun`` launch (``WORLD_SIZE`` > 1), started here if it
    is not yet (gloo on CPU, NCCL on CUDA; ``THRIFTY_DDP_TIMEOUT`` seconds before a stuck
    collective fails, default 300); a single process otherwise."""
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch has no torch.distributed")
    timeout = _dt.timedelta(seconds=float(os.environ.get("THRIFTY_DDP_TIMEOUT",
                                                         DEFAULT_TIMEOUT_S)))
    # NCCL carries the gradients on GPUs; thrifty's own exchanges (record, counts) are CPU
    # tensors, which gloo carries
    dist.init_process_group("cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo",
                            timeout=timeout)
    return Dist(dist.get_rank(), dist.get_world_size())


def shard(order: torch.Tensor, d: Dist) -> torch.Tensor:
    """This rank's share of an epoch's order: every ``world_size``-th index from ``rank``."""
    return order[d.rank::d.world_size] if d.enabled else order


def gather_cat(t: torch.Tensor, d: Dist) -> list[torch.Tensor]:
    """Every rank's ``t`` (1-D or N-D, any length along dim 0), in rank order."""
    if not d.enabled:
        return [t]
    n = torch.tensor([len(t)], dtype=torch.long)
    sizes = [torch.zeros(1, dtype=torch.long) for _ in range(d.world_size)]
    dist.all_gather(sizes, n)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros((longest, *t.shape[1:]), dtype=t.dtype)
    padded[:len(t)] = t.cpu()
    out = [torch.zeros_like(padded) for _ in range(d.world_size)]
    dist.all_gather(out, padded)
    return [o[:int(s.item())] for o, s in zip(out, sizes)]


def gather_in_order(values: torch.Tensor, d: Dist) -> torch.Tensor:
    """Values computed for ``order[rank::world]`` on every rank, put back in ``order``'s
    order (the inverse of :func:`shard`)."""
    if not d.enabled:
        return values
    parts = gather_cat(values, d)
    total = sum(len(p) for p in parts)
    out = torch.empty((total, *values.shape[1:]), dtype=values.dtype)
    for r, p in enumerate(parts):
        out[r::d.world_size] = p
    return out


def sum_counts(counts: dict[str, int], d: Dist, maxed: tuple[str, ...] = ()) -> dict[str, int]:
    """``counts`` summed over ranks (the keys in ``maxed``: the largest)."""
    if not d.enabled:
        return counts
    keys = sorted(counts)
    t = torch.tensor([float(counts[k]) for k in keys], dtype=torch.float64)
    summed, maxes = t.clone(), t.clone()
    dist.all_reduce(summed, op=dist.ReduceOp.SUM)
    dist.all_reduce(maxes, op=dist.ReduceOp.MAX)
    return {k: int((maxes if k in maxed else summed)[i].item()) for i, k in enumerate(keys)}


def broadcast_object(value: Any, d: Dist, src: int = 0) -> Any:
    """Rank ``src``'s ``value`` (default rank 0's) on every rank."""
    if not d.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def agree(flag: bool, d: Dist) -> bool:
    """Whether any rank says ``flag``."""
    if not d.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


class RecordLog(SampleRecord):
    """A :class:`SampleRecord` that keeps this rank's updates of the epoch so that
    :meth:`exchange` can make every rank's record the same: the record as the epoch began,
    then rank 0's updates in the order it made them, then rank 1's, and so on (two ranks
    may write the same sample in one epoch: a sample one rank carries over in its packer
    while the other loads it again)."""

    def __init__(self, size: int, d: Dist) -> None:
        super().__init__(size)
        self.dist = d
        self._log: list[Flat] = []
        self._start: dict | None = None

    def begin(self) -> None:
        """Mark the start of an epoch (the state every rank shares)."""
        if self.dist.enabled:
            self._start = {k: (v.clone() if isinstance(v, torch.Tensor) else
                               {n: t.clone() for n, t in v.items()} if isinstance(v, dict)
                               else v) for k, v in self.state_dict().items()}
            self._log = []

    def _applied(self, flat: Flat) -> None:
        if self.dist.enabled:
            self._log.append(flat)

    def exchange(self) -> int:
        """Make this rank's record every rank's: the epoch's start, then every rank's updates
        (rank by rank, each in the order it was made); return the bytes this rank sent."""
        if not self.dist.enabled:
            return 0
        self.flush()
        mine, self._log = Flat.cat(self._log), []
        # correctness as int8: -1 where an update carried none
        correct = torch.full((len(mine.idx),), -1, dtype=torch.int8)
        if mine.correct is not None and mine.has_correct is not None:
            correct[mine.has_correct] = mine.correct[mine.has_correct].to(torch.int8)
        sent = (mine.idx, mine.losses, correct, mine.kind, mine.epoch,
                mine.trained.to(torch.int8))
        parts = [gather_cat(t, self.dist) for t in sent]
        if self._start is None:
            raise RuntimeError("RecordLog.exchange() without begin() at the epoch's start")
        self.load_state_dict(self._start)
        for r in range(self.dist.world_size):
            idx, loss, c, kind, epoch, trained = (p[r] for p in parts)
            has = c >= 0
            self._apply(Flat(idx, loss, kind, epoch, trained.bool(), c.clamp(min=0).bool(), has))
        return sum(t.numel() * t.element_size() for t in sent)


def sync_optimizer(optimizer: torch.optim.Optimizer, steps: int, d: Dist,
                   scaler: Any = None) -> bool:
    """Under DDP, after an epoch in which ranks took different numbers of optimizer steps
    (``steps``: this rank's): every rank takes the optimizer (and AMP ``scaler``) state of
    the rank that stepped most, whose weights DDP's ``join`` kept. A collective; returns
    whether states were copied."""
    if not d.enabled:
        return False
    from thrifty.data.tensor import to_device

    all_steps = gather_cat(torch.tensor([steps, -d.rank]), d)
    src = -int(max(all_steps, key=lambda t: (int(t[0]), int(t[1])))[1])
    if all(int(t[0]) == int(all_steps[0][0]) for t in all_steps):
        return False
    state = broadcast_object(to_device({"optimizer": optimizer.state_dict(),
                                        "scaler": None if scaler is None
                                        else scaler.state_dict()}, "cpu"), d, src=src)
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None:
        scaler.load_state_dict(state["scaler"])
    return True
