"""The one per-sample record every method reads and every forward pass writes."""

from __future__ import annotations

import torch

#: The kinds of loss a pass writes, in the order of ``SampleRecord.loss_kind``'s codes 1-3
#: (0: never seen). ``train``: the training pass (train mode, augmented input, the targets
#: trained on); ``probe``: an in-batch selector's no-grad forward of a loaded batch;
#: ``score``: a counted scoring pass over the evaluation view (``ctx.score``).
LOSS_KINDS = ("train", "probe", "score")


def _kind_code(kind: str) -> int:
    if kind not in LOSS_KINDS:
        raise ValueError(f"loss kind must be one of {', '.join(LOSS_KINDS)}, got {kind!r}")
    return LOSS_KINDS.index(kind) + 1


class SampleRecord:
    """What is known about each training sample, keyed by its dataset index.

    Attributes (all tensors of length ``size`` on the CPU):
        loss: the latest per-sample loss, whichever pass wrote it; NaN if never seen.
        loss_kind: which kind of pass wrote ``loss`` (0 never, then :data:`LOSS_KINDS`
            in order: 1 train, 2 probe, 3 score).
        loss_epoch: epoch in which ``loss`` was computed; -1 if never.
        by_kind: ``{kind: losses}``, the latest loss of each kind (NaN where that kind of
            pass has not seen the sample). A method that wants one kind reads
            :meth:`losses` with it (InfoBatch: ``"train"``).
        correct: whether the last prediction was correct.
        times_trained: how many times the sample got a backward pass.
        times_forwarded: how many times it went through a no-grad selection forward.

    Any forward pass may call :meth:`update`; samplers and selectors read the tensors.
    """

    def __init__(self, size: int) -> None:
        if size <= 0:
            raise ValueError(f"a SampleRecord needs at least one sample, got size={size}")
        self.size = size
        self.loss = torch.full((size,), float("nan"))
        self.loss_kind = torch.zeros(size, dtype=torch.int8)
        self.loss_epoch = torch.full((size,), -1, dtype=torch.int32)
        self.by_kind = {k: torch.full((size,), float("nan")) for k in LOSS_KINDS}
        self.correct = torch.zeros(size, dtype=torch.bool)
        self.times_trained = torch.zeros(size, dtype=torch.int32)
        self.times_forwarded = torch.zeros(size, dtype=torch.int32)

    def update(self, idx: torch.Tensor, losses: torch.Tensor, correct: torch.Tensor | None,
               epoch: int, trained: bool, kind: str | None = None) -> None:
        """Store the losses (and correctness) of the samples ``idx`` seen in ``epoch``.

        Args:
            idx: dataset indices (CPU long tensor).
            losses: per-sample losses, any device; detached and moved to the CPU.
            correct: per-sample correctness or ``None``.
            epoch: the current epoch (0-based).
            trained: ``True`` for a training pass, ``False`` for a no-grad forward.
            kind: the pass's kind (:data:`LOSS_KINDS`). Default ``None``: ``"train"`` when
                ``trained``, else ``"probe"``.
        """
        kind = kind or ("train" if trained else "probe")
        values = losses.detach().float().cpu()
        self.loss[idx] = values
        self.by_kind[kind][idx] = values
        self.loss_kind[idx] = _kind_code(kind)
        self.loss_epoch[idx] = epoch
        if correct is not None:
            self.correct[idx] = correct.detach().cpu()
        if trained:
            self.times_trained[idx] += 1
        else:
            self.times_forwarded[idx] += 1

    def losses(self, idx: torch.Tensor, kind: str | None = None) -> torch.Tensor:
        """The stored losses of ``idx``: the latest of any kind (``kind=None``, default) or
        the latest of one kind (NaN where that kind of pass has not seen the sample)."""
        if kind is None:
            return self.loss[idx]
        _kind_code(kind)
        return self.by_kind[kind][idx]

    def state_dict(self) -> dict:
        return {"size": self.size, "loss": self.loss, "loss_kind": self.loss_kind,
                "loss_epoch": self.loss_epoch, "by_kind": dict(self.by_kind),
                "correct": self.correct, "times_trained": self.times_trained,
                "times_forwarded": self.times_forwarded}

    def load_state_dict(self, state: dict) -> None:
        if state["size"] != self.size:
            raise ValueError(f"record of {state['size']} samples cannot be loaded into one of "
                             f"{self.size}: the checkpoint belongs to another dataset")
        for key in ("loss", "loss_kind", "loss_epoch", "correct", "times_trained",
                    "times_forwarded"):
            setattr(self, key, state[key].clone())
        self.by_kind = {k: state["by_kind"][k].clone() for k in LOSS_KINDS}
