"""The one per-sample record every method reads and every forward pass writes.

Updates are deferred: :meth:`SampleRecord.update` keeps the batch's losses where they were
computed (the training device) and copies nothing to the host, so the training step never
waits for the GPU. The pending updates are applied, in the order they were made, with one
host copy when anything reads the record (every attribute below flushes first), at the
epoch's end, or when more than :data:`FLUSH_AFTER` samples wait.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

#: The kinds of loss a pass writes, in the order of ``SampleRecord.loss_kind``'s codes 1-3
#: (0: never seen). ``train``: the training pass (train mode, augmented input, the targets
#: trained on); ``probe``: an in-batch selector's no-grad forward of a loaded batch;
#: ``score``: a counted scoring pass over the evaluation view (``ctx.score``).
LOSS_KINDS = ("train", "probe", "score")

#: Pending samples after which an update flushes by itself (bounds the device memory held).
FLUSH_AFTER = 1 << 22

_FIELDS = ("loss", "loss_kind", "loss_epoch", "correct", "times_trained", "times_forwarded")


def _kind_code(kind: str) -> int:
    if kind not in LOSS_KINDS:
        raise ValueError(f"loss kind must be one of {', '.join(LOSS_KINDS)}, got {kind!r}")
    return LOSS_KINDS.index(kind) + 1


class Update(NamedTuple):
    """One batch's update, as :meth:`SampleRecord.update` received it."""

    idx: torch.Tensor
    losses: torch.Tensor
    correct: torch.Tensor | None
    epoch: int
    trained: bool
    kind: str


class Flat(NamedTuple):
    """Updates flattened per sample, in the order they were made (CPU tensors)."""

    idx: torch.Tensor
    losses: torch.Tensor
    kind: torch.Tensor  # int8 codes, 1-based (LOSS_KINDS)
    epoch: torch.Tensor  # int32
    trained: torch.Tensor  # bool
    correct: torch.Tensor | None  # bool, where has_correct
    has_correct: torch.Tensor | None  # bool

    @staticmethod
    def cat(parts: list[Flat]) -> Flat:
        """One :class:`Flat` of several, in order."""
        if not parts:
            e = torch.empty(0)
            return Flat(e.long(), e, e.to(torch.int8), e.int(), e.bool(), None, None)
        marks = any(p.correct is not None for p in parts)

        def fill(p: Flat) -> tuple[torch.Tensor, torch.Tensor]:
            if p.correct is None or p.has_correct is None:
                z = torch.zeros(len(p.idx), dtype=torch.bool)
                return z, z
            return p.correct, p.has_correct

        filled = [fill(p) for p in parts] if marks else []
        return Flat(torch.cat([p.idx for p in parts]), torch.cat([p.losses for p in parts]),
                    torch.cat([p.kind for p in parts]), torch.cat([p.epoch for p in parts]),
                    torch.cat([p.trained for p in parts]),
                    torch.cat([c for c, _ in filled]) if marks else None,
                    torch.cat([h for _, h in filled]) if marks else None)


class SampleRecord:
    """What is known about each training sample, keyed by its dataset index.

    Attributes (all tensors of length ``size`` on the CPU; reading one applies the pending
    updates first):
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
        self._data: dict[str, torch.Tensor] = {
            "loss": torch.full((size,), float("nan")),
            "loss_kind": torch.zeros(size, dtype=torch.int8),
            "loss_epoch": torch.full((size,), -1, dtype=torch.int32),
            "correct": torch.zeros(size, dtype=torch.bool),
            "times_trained": torch.zeros(size, dtype=torch.int32),
            "times_forwarded": torch.zeros(size, dtype=torch.int32)}
        self._by_kind = {k: torch.full((size,), float("nan")) for k in LOSS_KINDS}
        self._pending: list[Update] = []
        self._pending_n = 0

    # every field reads through the pending updates
    def _field(name: str) -> property:  # type: ignore[misc]  # noqa: N805
        def get(self: SampleRecord) -> torch.Tensor:
            self.flush()
            return self._data[name]

        def put(self: SampleRecord, value: torch.Tensor) -> None:
            self.flush()
            self._data[name] = value

        return property(get, put)

    loss = _field("loss")
    loss_kind = _field("loss_kind")
    loss_epoch = _field("loss_epoch")
    correct = _field("correct")
    times_trained = _field("times_trained")
    times_forwarded = _field("times_forwarded")
    del _field

    @property
    def by_kind(self) -> dict[str, torch.Tensor]:
        self.flush()
        return self._by_kind

    @property
    def pending(self) -> int:
        """Samples whose updates wait to be applied."""
        return self._pending_n

    def update(self, idx: torch.Tensor, losses: torch.Tensor, correct: torch.Tensor | None,
               epoch: int, trained: bool, kind: str | None = None) -> None:
        """Store the losses (and correctness) of the samples ``idx`` seen in ``epoch``.

        Nothing is copied to the host here (see the module's docstring).

        Args:
            idx: dataset indices (CPU long tensor).
            losses: per-sample losses, any device (detached here).
            correct: per-sample correctness or ``None``.
            epoch: the current epoch (0-based).
            trained: ``True`` for a training pass, ``False`` for a no-grad forward.
            kind: the pass's kind (:data:`LOSS_KINDS`). Default ``None``: ``"train"`` when
                ``trained``, else ``"probe"``.
        """
        kind = kind or ("train" if trained else "probe")
        if kind not in LOSS_KINDS:
            _kind_code(kind)  # raises with the kinds
        if not isinstance(idx, torch.Tensor):
            idx = torch.as_tensor(idx)
        if idx.dim() != 1 or losses.shape != idx.shape:
            raise ValueError(f"one loss per index: {tuple(idx.shape)} indices, losses of shape "
                             f"{tuple(losses.shape)}")
        if idx.is_floating_point() or idx.dtype == torch.bool:
            raise ValueError(f"record indices must be integers (dataset indices), got "
                             f"{idx.dtype}")
        self._pending.append(Update(idx.long(), losses.detach(),
                                    None if correct is None else correct.detach(), epoch,
                                    trained, kind))
        self._pending_n += len(idx)
        if self._pending_n > FLUSH_AFTER:
            self.flush()

    def flush(self) -> None:
        """Apply the pending updates in the order they were made (one host copy)."""
        if not self._pending:
            return
        pending, self._pending, self._pending_n = self._pending, [], 0
        device = pending[0].losses.device
        sizes = torch.tensor([len(u.idx) for u in pending])

        def per_sample(values: list[int]) -> torch.Tensor:
            return torch.repeat_interleave(torch.tensor(values), sizes)

        marks = [u.correct is not None for u in pending]
        correct = None
        if any(marks):
            correct = torch.cat([u.correct.reshape(-1).to(device, torch.bool)
                                 if u.correct is not None
                                 else torch.zeros(len(u.idx), dtype=torch.bool, device=device)
                                 for u in pending]).cpu()
        flat = Flat(torch.cat([u.idx for u in pending]).cpu(),
                    torch.cat([u.losses.reshape(-1).to(device) for u in pending]).float().cpu(),
                    per_sample([_kind_code(u.kind) for u in pending]).to(torch.int8),
                    per_sample([u.epoch for u in pending]).to(torch.int32),
                    per_sample([int(u.trained) for u in pending]).bool(),
                    correct, per_sample([int(m) for m in marks]).bool() if correct is not None
                    else None)
        self._apply(flat)
        self._applied(flat)

    def _apply(self, f: Flat) -> None:
        """Apply the updates in ``f`` as if one after the other, in one vectorised pass:
        for each sample the last update wins; the times counters add every update (a
        sample twice in one batch, a packer's carried copy, counts twice)."""
        idx = f.idx
        if not len(idx):
            return
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= self.size:
            raise IndexError(f"record update for dataset index {lo}..{hi}, outside "
                             f"0..{self.size - 1}: give the batch's dataset indices (the last "
                             "element of a thrifty batch)")
        pos = torch.arange(len(idx))

        def last(mask: torch.Tensor | None = None) -> torch.Tensor:
            """Positions of each sample's last update (among ``mask``)."""
            p = pos if mask is None else pos[mask]
            i = idx if mask is None else idx[mask]
            at = torch.full((self.size,), -1, dtype=torch.long).scatter_reduce_(
                0, i, p, reduce="amax")
            return at[at >= 0]

        d = self._data
        sel = last()
        at = idx[sel]
        d["loss"][at] = f.losses[sel]
        d["loss_kind"][at] = f.kind[sel]
        d["loss_epoch"][at] = f.epoch[sel]
        kinds = f.kind.unique().tolist()
        for code in kinds:
            k = sel if len(kinds) == 1 else last(f.kind == code)
            self._by_kind[LOSS_KINDS[code - 1]][idx[k]] = f.losses[k]
        if f.correct is not None and f.has_correct is not None:
            c = sel if bool(f.has_correct.all()) else last(f.has_correct)
            d["correct"][idx[c]] = f.correct[c]
        for flag, name in ((True, "times_trained"), (False, "times_forwarded")):
            m = f.trained if flag else ~f.trained
            n = int(m.sum())
            if n:
                d[name].index_add_(0, idx if n == len(idx) else idx[m],
                                   torch.ones(n, dtype=d[name].dtype))

    def _applied(self, flat: Flat) -> None:
        """Called with the updates just applied, on the CPU (the DDP log keeps them)."""

    def losses(self, idx: torch.Tensor, kind: str | None = None) -> torch.Tensor:
        """The stored losses of ``idx``: the latest of any kind (``kind=None``, default) or
        the latest of one kind (NaN where that kind of pass has not seen the sample)."""
        if kind is None:
            return self.loss[idx]
        _kind_code(kind)
        return self.by_kind[kind][idx]

    def state_dict(self) -> dict[str, Any]:
        self.flush()
        return {"size": self.size, **self._data, "by_kind": dict(self._by_kind)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["size"] != self.size:
            raise ValueError(f"record of {state['size']} samples cannot be loaded into one of "
                             f"{self.size}: the checkpoint belongs to another dataset")
        self._pending, self._pending_n = [], 0
        for key in _FIELDS:
            self._data[key] = state[key].clone()
        self._by_kind = {k: state["by_kind"][k].clone() for k in LOSS_KINDS}
