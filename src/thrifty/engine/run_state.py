"""The engine's checkpoint (``checkpoint.pt``): the model, optimizer, schedule and scaler,
the run-time core's one state (record, methods, packer, counts), the augmentation and
global RNGs, the history so far and, mid-epoch, the epoch's order and position. Under DDP
every rank's own parts are gathered; rank 0 writes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from thrifty.engine.accounting import EpochStats
from thrifty.engine.checkpoint import rng_state, save_checkpoint, set_rng_state
from thrifty.engine.distributed import broadcast_object

if TYPE_CHECKING:
    from thrifty.engine.loop import Trainer

#: The format ``checkpoint.pt`` is written in; another one is refused with the fix.
CHECKPOINT_FORMAT = 2
# what differs between the ranks of a DDP run besides the core's own per-rank parts
PER_RANK = ("aug_generator", "rng")

Part = tuple[Callable[[], Any], Callable[[Any], None]]


def components(t: Trainer) -> dict[str, Part]:
    """The checkpoint's parts: ``{key: (save, restore)}``, restored in this order (the
    global RNG last)."""

    def attr(name: str) -> Part:
        return (lambda: getattr(t, name), lambda value: setattr(t, name, value))

    parts: dict[str, Part] = {
        name: (obj.state_dict, obj.load_state_dict) for name, obj in (
            ("model", t.model), ("optimizer", t.optimizer), ("scheduler", t.scheduler),
            ("scaler", t.scaler))}
    parts["core"] = (t.core.state_dict,
                     lambda state: t.core.load_state_dict(state, device=t.device, reducer=False))
    parts["aug_generator"] = (t.aug_generator.get_state,
                              lambda value: None if t.aug_generator.set_state(value) else None)
    parts["history"] = (lambda: t.history, lambda value: setattr(t, "history", list(value)))
    parts["prep_time"] = attr("prep_time")
    parts["prep_energy_j"] = attr("prep_energy_j")
    parts["rng"] = (rng_state, set_rng_state)
    return parts


def run_state(t: Trainer, epoch: int, position: int | None, order: torch.Tensor | None,
              stats: EpochStats | None) -> dict[str, Any]:
    """The checkpoint of ``t`` now (a collective under DDP: every rank calls it)."""
    parts = {key: save() for key, (save, _) in components(t).items()}
    state = {
        "format": CHECKPOINT_FORMAT, "config": t.config.to_dict(), "epoch": epoch,
        "position": position, "order": order, "world_size": t.dist.world_size,
        "stats": None if stats is None else stats.to_dict(), **parts,
    }
    if t.dist.enabled:
        gathered: list[Any] = [None] * t.dist.world_size
        torch.distributed.all_gather_object(gathered, {k: parts[k] for k in PER_RANK})
        state["per_rank"] = gathered
    return state


def save_run(t: Trainer, epoch: int, position: int | None = None,
             order: torch.Tensor | None = None, stats: EpochStats | None = None) -> Path:
    """Write ``run_dir/checkpoint.pt`` (rank 0); return its path."""
    path = t.run_dir / "checkpoint.pt"
    state = run_state(t, epoch, position, order, stats)
    if t.dist.is_main:
        with t.stops.protect():  # a second Ctrl-C waits for the write
            save_checkpoint(path, state)
    return path


def restore_run(t: Trainer, state: dict[str, Any]
                ) -> tuple[int, int | None, torch.Tensor | None, EpochStats | None]:
    """Restore ``state`` into ``t``; return ``(epoch, position, order, stats)`` to continue
    from. Refuses another world size or checkpoint format, with the fix."""
    saved = state.get("world_size", 1)
    if saved != t.dist.world_size:
        raise ValueError(f"the checkpoint was written by a run of {saved} process(es), this "
                         f"one has {t.dist.world_size}: resume it with the same world size "
                         f"(torchrun --nproc_per_node={saved} ...)")
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"the checkpoint has format {state.get('format')!r}, written by an "
                         f"older thrifty; this one reads format {CHECKPOINT_FORMAT}: start the "
                         "run again (thrifty bench --fresh, or a new run folder)")
    epoch, epochs = state.get("epoch"), t.config.epochs
    mid = state.get("position") is not None
    if not isinstance(epoch, int) or epoch < 0 or epoch > epochs or (mid and epoch == epochs):
        raise ValueError(f"the checkpoint says epoch {epoch!r} of a {epochs}-epoch run: it does "
                         "not belong to this run (or is damaged); start the run again")
    if t.dist.enabled:
        state = {**state, **state["per_rank"][t.dist.rank]}
    for key, (_, restore) in components(t).items():
        restore(state[key])
    stats = None if state["stats"] is None else EpochStats.from_dict(state["stats"])
    return state["epoch"], state["position"], state["order"], stats


def prepare_run_dir(t: Trainer) -> None:
    """A new run's folder, made by rank 0 and shared with every rank; a folder holding a
    finished result is never written over (``NAME-1``, ``NAME-2``, ... instead)."""
    if t._resume_state is not None:
        return
    if t.dist.is_main:
        base, i = t.run_dir, 1
        while (t.run_dir / "result.json").exists():
            t.run_dir = base.with_name(f"{base.name}-{i}")
            i += 1
        t.run_dir.mkdir(parents=True, exist_ok=True)
    t.run_dir = Path(broadcast_object(str(t.run_dir), t.dist))  # rank 0's
