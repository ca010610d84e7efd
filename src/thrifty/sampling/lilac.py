"""LILAC: Learning with Incremental Labels and Adaptive Compensation (seed 003, Ch. 5).

Ganesh & Corso, "Rethinking curriculum learning with incremental labels and adaptive
compensation" (BMVC 2020); M. R. Ganesh, PhD thesis, Univ. of Michigan, 2022, Ch. 5.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from thrifty.engine.interfaces import EpochSampler, Pieces, TrainContext
from thrifty.methods import register_method
from thrifty.utils.random import draw_generator


def _int_at_least(name: str, value: Any, low: int, hint: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low} ({hint}), got {value!r}")
    return value


def compensated_targets(y: torch.Tensor, wrong: torch.Tensor, num_classes: int,
                        epsilon: float) -> torch.Tensor:
    """LILAC's adaptive-compensation targets (thesis eq. 5.1), as class probabilities.

    A sample whose previous prediction was wrong gets
    ``((eps*L - 1)/(L - 1)) * onehot(y) + ((1 - eps)/(L - 1)) * ones``: probability ``eps`` on
    its true class and ``(1 - eps)/(L - 1)`` on each other class. The others keep
    ``onehot(y)``.

    Args:
        y: true labels ``[B]`` (long).
        wrong: ``[B]`` bool, which samples to compensate.
        num_classes: L (>= 2).
        epsilon: the true-class probability of a compensated sample, in (0, 1].

    Returns:
        A float tensor ``[B, L]`` on ``y``'s device whose rows sum to 1.
    """
    onehot = torch.nn.functional.one_hot(y, num_classes).float()
    other = (1.0 - epsilon) / (num_classes - 1)
    smooth = onehot * (epsilon - other) + other
    return torch.where(wrong.to(y.device).unsqueeze(1), smooth, onehot)


def balanced_order(s_idx: torch.Tensor, u_idx: torch.Tensor, batch_size: int,
                   generator: torch.Generator) -> torch.Tensor:
    """An epoch order whose consecutive chunks of ``batch_size`` hold half S, half U samples.

    Every S sample appears once, in a random order. Each chunk takes ``batch_size // 2`` S
    samples (the last chunk what is left, ``c``) and tops them up with U samples up to
    ``batch_size`` (the last chunk: ``c`` U samples), so #U = #S in every batch of an even
    ``batch_size`` (an odd one gives U one sample more). U samples come from consecutive
    random permutations of U: each U sample is drawn at most once while U is larger than
    what is needed, and otherwise as evenly as possible (the thesis's "randomly duplicate or
    drop U samples, uniform prior over U").

    Args:
        s_idx: dataset indices of S (non-empty).
        u_idx: dataset indices of U; empty gives the shuffled S.
        batch_size: the training batch size (>= 2).
        generator: the random source.
    """
    s = s_idx[torch.randperm(len(s_idx), generator=generator)]
    if len(u_idx) == 0:
        return s
    half = batch_size // 2
    chunks = list(torch.split(s, half))
    u_counts = [batch_size - half if len(c) == half else len(c) for c in chunks]
    need = sum(u_counts)
    perms = [torch.randperm(len(u_idx), generator=generator)
             for _ in range(math.ceil(need / len(u_idx)))]
    u = u_idx[torch.cat(perms)[:need]]
    parts = []
    for c, u_part in zip(chunks, torch.split(u, u_counts)):
        parts += [c, u_part]
    return torch.cat(parts)


@register_method("lilac", "sampler",
                 "incremental label introduction then adaptive compensation (seed 003 Ch. 5)")
class Lilac(EpochSampler):
    """LILAC: labels revealed a few at a time, then smoothed targets for mistaken samples.

    **IL phase** (incremental labels). Labels are revealed in ascending order: in epoch
    ``t`` the first ``k_t = min(L, b + m * floor(t / E))`` labels are known. S is the pool's
    samples of a known label (trained with their label), U the rest, trained with the
    pseudo-label rho. Each epoch loads every S sample once and as many U samples, arranged
    so that every training batch holds half S and half U samples. Once all labels are
    known (from epoch ``E * ceil((L - b) / m)``), each epoch is a plain shuffle of the pool.

    **AC phase** (adaptive compensation). From epoch ``ac_start`` on, a sample whose
    prediction in its previous training pass was wrong is trained on the soft target of
    :func:`compensated_targets` (``epsilon`` on its true class, ``(1 - epsilon)/(L - 1)``
    on each other); the others keep their one-hot label.

    Args:
        initial: b, the labels known from the start, in [1, L). Default 2.
        step: m, labels revealed at each interval, >= 1. Default 2 (the thesis's value for
            10-class datasets; it uses 1 for CIFAR-100).
        interval: E, epochs per interval, >= 1. Default 1 (short runs; the thesis's best
            are 7 for CIFAR-10, 3 for CIFAR-100, 10 for STL-10 over 300+ epochs).
        epsilon: the true-class probability of a compensated target, in (0, 1]
            (1 = no compensation). Default 0.4 (the thesis's best on CIFAR-10/100).
        ac_start: T, the first epoch (0-based) with compensation. Default ``None``: one
            epoch after IL ends (the first epoch all of whose cached predictions come from
            a pass with every label known), or epoch 1 without IL. With IL it must be at
            least ``E * ceil((L - b) / m) + 1`` (refused otherwise).
        pseudo_label: rho, the class index U samples are trained with, or ``"last"`` for
            L - 1 (the label revealed last). Default ``"last"``. With IL, rho must be a
            label revealed in the last interval (>= ``b + m * (ceil((L - b)/m) - 1)``), so
            that no S sample is trained with it while U is; otherwise refused.
        incremental: run the IL phase. Default ``True`` (``False``: "Only AC").
        compensate: run the AC phase. Default ``True`` (``False``: "Only IL").

    Decisions (the thesis leaves them open, spec ambiguity 10): rho reuses an existing
    output, label L - 1 by default ("no change to the outputs"); the run's ``epochs``
    include the IL phase (the thesis adds it on top of the baseline's epochs; add
    ``E * ceil((L - b)/m)`` to ``--epochs`` for that). The batch size stays the run's:
    each chunk of ``batch_size`` samples of the epoch order is half S, half U, where the
    thesis's batch grows to 2 * #S. S is drawn uniformly over samples (the thesis samples
    "uniformly over the GT labels": the same for class-balanced data). Predictions of
    theta^{e-1} are the ``correct`` flags of the engine's record, written by each sample's
    previous training pass (train mode, with augmentation, made during epoch e - 1 before
    the step on its batch): no extra forward pass. Samples never trained keep their
    one-hot label. The IL-phase learning rate is the run's.

    Refused before any work (:meth:`check_composition`): with IL, an in-batch selector (not
    the identity: it would drop samples by their loss against the true labels and break the
    half-S/half-U batches; only AC, ``incremental=False``, may run with one); a rho revealed
    before IL's last interval (S and U would share it); ``ac_start`` below IL length + 1.

    Per-epoch diagnostics: ``revealed`` (k_t), ``u_share`` (share of the loaded samples
    trained with rho), ``compensated_share`` (share of the trained samples given soft
    targets), ``loaded_share`` (loaded samples / pool).
    """

    name = "lilac"
    needs_labels = True
    relabels = True
    _state_attrs = ("active", "revealed", "compensating", "diag", "_seen", "_soft")

    def __init__(self, initial: int = 2, step: int = 2, interval: int = 1,
                 epsilon: float = 0.4, ac_start: int | None = None,
                 pseudo_label: int | str = "last", incremental: bool = True,
                 compensate: bool = True) -> None:
        super().__init__()
        self.initial = _int_at_least("initial (b, labels known at the start)", initial, 1,
                                     "2 for 10 classes")
        self.step = _int_at_least("step (m, labels revealed per interval)", step, 1,
                                  "the thesis uses 2 for 10 classes, 1 for 100")
        self.interval = _int_at_least("interval (E, epochs per interval)", interval, 1,
                                      "the thesis uses 3-10")
        if not (isinstance(epsilon, (int, float)) and 0.0 < epsilon <= 1.0):
            raise ValueError(f"epsilon (true-class probability of a compensated target) must "
                             f"be in (0, 1]; the thesis's best is 0.4, got {epsilon!r}")
        if ac_start is not None:
            _int_at_least("ac_start (first epoch of compensation)", ac_start, 0,
                          "or leave it unset")
        if pseudo_label != "last":
            _int_at_least("pseudo_label (rho)", pseudo_label, 0, "a class index or 'last'")
        if not (incremental or compensate):
            raise ValueError("incremental=False and compensate=False leave nothing of LILAC; "
                             "run without --method lilac for the baseline")
        self.epsilon = float(epsilon)
        self.ac_start = ac_start
        self.pseudo_label = pseudo_label
        self.incremental = bool(incremental)
        self.compensate = bool(compensate)
        self.revealed = 0
        self.compensating = False
        self.diag: dict[str, float] = {}
        self._seen = 0
        self._soft = 0
        self.record: Any = None
        self.num_classes = 0
        self.labels = torch.empty(0, dtype=torch.long)

    # ------------------------------------------------------------------ schedule
    def il_epochs(self, num_classes: int) -> int:
        """Epochs of the IL phase for L = ``num_classes`` (0 without IL)."""
        if not self.incremental:
            return 0
        return self.interval * math.ceil((num_classes - self.initial) / self.step)

    def revealed_at(self, epoch: int, num_classes: int) -> int:
        """k_t: labels known in ``epoch`` (all of them after IL or without IL)."""
        if not self.incremental:
            return num_classes
        return min(num_classes, self.initial + self.step * (epoch // self.interval))

    def first_ac_epoch(self, num_classes: int) -> int:
        """T: ``ac_start``, or one epoch after IL ends (epoch 1 without IL)."""
        return self.ac_start if self.ac_start is not None else self.il_epochs(num_classes) + 1

    def last_revealed_first(self, num_classes: int) -> int:
        """The first label revealed in the last IL interval, ``b + m * (n - 1)`` with
        ``n = ceil((L - b) / m)`` intervals: labels below it are known during IL."""
        n = math.ceil((num_classes - self.initial) / self.step)
        return self.initial + self.step * (n - 1)

    @property
    def rho(self) -> int:
        """The pseudo-label of U samples."""
        return self.num_classes - 1 if self.pseudo_label == "last" else int(self.pseudo_label)

    # ------------------------------------------------------------------ engine hooks
    def check_composition(self, pieces: Pieces) -> None:
        """With IL, refuse an in-batch selector: each batch must train every loaded sample."""
        if self.incremental and not pieces.selector.identity:
            raise ValueError(
                f"LILAC's IL phase cannot run with the in-batch selector "
                f"{pieces.selector.name!r}: each batch must "
                "train every loaded sample, half S and half U, and a selector that keeps "
                "samples by their loss against the true labels breaks that balance. Run "
                "LILAC alone, or with incremental=false (only AC) next to the selector")

    def setup(self, pool: torch.Tensor, ctx: TrainContext) -> None:
        super().setup(pool, ctx)
        L = ctx.num_classes
        if self.incremental and self.initial >= L:
            raise ValueError(f"initial (b = {self.initial}) must be below the number of "
                             f"classes ({L}) so that some labels remain to reveal")
        if self.incremental and ctx.batch_size < 2:
            raise ValueError("LILAC's IL phase needs a batch size >= 2 (half S, half U)")
        if self.pseudo_label != "last" and int(self.pseudo_label) >= L:
            raise ValueError(f"pseudo_label (rho) must be a class index below {L} or "
                             f"'last', got {self.pseudo_label!r}")
        il = self.il_epochs(L)
        if self.incremental:
            last = self.last_revealed_first(L)
            rho = L - 1 if self.pseudo_label == "last" else int(self.pseudo_label)
            if rho < last:
                when = "from the start" if rho < self.initial else (
                    f"at epoch {self.interval * ((rho - self.initial) // self.step + 1)}")
                raise ValueError(
                    f"pseudo_label (rho = {rho}) is revealed {when}, before the IL phase ends, "
                    f"while U samples are still trained with it, so S and U would share a "
                    f"label: use a class revealed in the last interval, "
                    f"pseudo_label in [{last}, {L - 1}], or 'last' (the default)")
        if il >= ctx.epochs:
            raise ValueError(
                f"the IL phase takes {il} epochs (E x ceil((L - b)/m) = {self.interval} x "
                f"ceil(({L} - {self.initial})/{self.step})) but the run has {ctx.epochs}: "
                "raise --epochs, step or initial, or lower interval")
        if self.compensate:
            t = self.first_ac_epoch(L)
            if self.incremental and t < il + 1:
                raise ValueError(
                    f"ac_start ({t}) must be at least {il + 1}: the IL phase takes epochs "
                    f"0-{il - 1}, and in epoch {il} the cached predictions still come from "
                    f"IL epoch {il - 1} (U samples trained with rho); compensation starts "
                    f"one epoch after IL: use ac_start >= {il + 1} or leave it unset")
            if t >= ctx.epochs:
                raise ValueError(f"compensation would start at epoch {t} of a {ctx.epochs}-"
                                 "epoch run, so never: lower ac_start or raise --epochs")
        self.record = ctx.record
        self.num_classes = L
        self.labels = ctx.labels

    def begin_epoch(self, ctx: TrainContext) -> None:
        L = self.num_classes
        self.revealed = self.revealed_at(ctx.epoch, L)
        self.compensating = self.compensate and ctx.epoch >= self.first_ac_epoch(L)
        g = draw_generator(self.seed, ctx.epoch, self.name)
        if self.revealed < L:
            known = self.labels[self.pool] < self.revealed
            s_idx, u_idx = self.pool[known], self.pool[~known]
            if len(s_idx) == 0:
                raise ValueError(f"the pool has no sample of the first {self.revealed} labels "
                                 "(the offline reducer dropped them); raise initial")
            self.active = balanced_order(s_idx, u_idx, ctx.batch_size, g)
        else:
            self.active = self.pool[torch.randperm(len(self.pool), generator=g)]
        u = (self.labels[self.active] >= self.revealed).sum().item()
        self._seen = self._soft = 0
        self.diag = {"revealed": float(self.revealed), "u_share": u / len(self.active),
                     "loaded_share": len(self.active) / len(self.pool)}

    def __iter__(self):
        return iter(self.active.tolist())  # the order was built in begin_epoch

    def train_targets(self, idx: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """rho for U samples in the IL phase; compensated soft targets in the AC phase;
        ``None`` (the labels) otherwise."""
        self._seen += len(idx)
        if self.revealed < self.num_classes:
            return torch.where(y < self.revealed, y, torch.full_like(y, self.rho))
        if not self.compensating:
            return None
        idx = idx.cpu()
        wrong = ~self.record.correct[idx] & (self.record.loss_epoch[idx] >= 0)
        self._soft += int(wrong.sum())
        return compensated_targets(y, wrong, self.num_classes, self.epsilon)

    def epoch_diagnostics(self) -> dict[str, float]:
        diag = {**self.diag, "compensated_share": self._soft / max(self._seen, 1)}
        self.diag = {}
        return diag
