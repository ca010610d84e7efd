"""The one per-sample record every method reads and every forward pass writes."""

from __future__ import annotations

import torch


class SampleRecord:
    """What is known about each training sample, keyed by its dataset index.

    Attributes (all tensors of length ``size`` on the CPU):
        loss: last per-sample loss seen (training or selection forward); NaN if never seen.
        loss_epoch: epoch in which ``loss`` was computed; -1 if never.
        correct: whether the last prediction was correct.
        times_trained: how many times the sample got a backward pass.
        times_forwarded: how many times it went through a no-grad selection forward.
        extra: named tensors a method adds for itself (saved with checkpoints).

    Any forward pass may call :meth:`update`; samplers and selectors read the tensors.
    """

    def __init__(self, size: int) -> None:
        if size <= 0:
            raise ValueError(f"a SampleRecord needs at least one sample, got size={size}")
        self.size = size
        self.loss = torch.full((size,), float("nan"))
        self.loss_epoch = torch.full((size,), -1, dtype=torch.int32)
        self.correct = torch.zeros(size, dtype=torch.bool)
        self.times_trained = torch.zeros(size, dtype=torch.int32)
        self.times_forwarded = torch.zeros(size, dtype=torch.int32)
        self.extra: dict[str, torch.Tensor] = {}

    def update(self, idx: torch.Tensor, losses: torch.Tensor, correct: torch.Tensor | None,
               epoch: int, trained: bool) -> None:
        """Store the losses (and correctness) of the samples ``idx`` seen in ``epoch``.

        Args:
            idx: dataset indices (CPU long tensor).
            losses: per-sample losses, any device; detached and moved to the CPU.
            correct: per-sample correctness or ``None``.
            epoch: the current epoch (0-based).
            trained: ``True`` for a training pass, ``False`` for a selection forward.
        """
        self.loss[idx] = losses.detach().float().cpu()
        self.loss_epoch[idx] = epoch
        if correct is not None:
            self.correct[idx] = correct.detach().cpu()
        if trained:
            self.times_trained[idx] += 1
        else:
            self.times_forwarded[idx] += 1

    def fresh(self, idx: torch.Tensor, epoch: int, max_age: int) -> torch.Tensor:
        """Mask of samples whose stored loss is at most ``max_age`` epochs old."""
        seen = self.loss_epoch[idx]
        return (seen >= 0) & (epoch - seen <= max_age)

    def state_dict(self) -> dict:
        return {"size": self.size, "loss": self.loss, "loss_epoch": self.loss_epoch,
                "correct": self.correct, "times_trained": self.times_trained,
                "times_forwarded": self.times_forwarded, "extra": dict(self.extra)}

    def load_state_dict(self, state: dict) -> None:
        if state["size"] != self.size:
            raise ValueError(f"record of {state['size']} samples cannot be loaded into one of "
                             f"{self.size}: the checkpoint belongs to another dataset")
        for key in ("loss", "loss_epoch", "correct", "times_trained", "times_forwarded"):
            setattr(self, key, state[key].clone())
        self.extra = {k: v.clone() for k, v in state["extra"].items()}
