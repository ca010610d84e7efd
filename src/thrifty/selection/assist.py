"""ASSIST: train only on the samples the model misclassifies (seed 004).

Smedås, *ASSIST: Accuracy-driven Sampling Strategies for Improved Supervised Training*,
master's thesis, NTNU, 2021. A *hard accuracy filter* (Alg 7): from each shuffled raw batch,
a no-grad forward keeps the samples with ``argmax(logits) != y``; the kept samples are
accumulated in a buffer and a training step is taken on ``batch_size`` of them (Alg 10).

Functional core (pure tensor functions, usable in any framework):

- :func:`misclassified`: the hard filter's mask.
- :func:`top2_margin`: ``p1 - p2`` of the two largest softmax probabilities.
- :func:`accuracy_filter`: the hard filter plus the soft-accuracy margin of Alg 6.

:class:`AssistSelector` (``"assist"``) is the batchwise method with all its variants; the
epochwise variant (Alg 8) is :class:`thrifty.sampling.assist_epochwise.AssistEpochwise`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from thrifty.engine.interfaces import (
    BatchSelector,
    PackingRule,
    SelectionError,
    SelectionInput,
    TrainContext,
    min_batch,
)
from thrifty.methods import register_method
from thrifty.selection.loss_selectors import LossSelector
from thrifty.utils.params import Boolean, Interval, Options, Param, validate_params
from thrifty.utils.schedules import EpochRatio

STARVATION = ("random", "skip", "error")
FILTER_MODES = ("eval", "train")
FILLS = ("none", "random")

#: the soft accuracy filter's margin alpha (Alg 6): in (0, 1), or ``None`` (hard filter only)
MARGIN = Param(Interval(float, 0, 1, closed="neither"), None, label="alpha",
               hint="None turns the soft filter off")


# ---------------------------------------------------------------------- functional core
def misclassified(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mask (CPU bool) of the samples whose predicted class ``argmax(logits)`` is not the
    label (the hard accuracy filter, Alg 7).

    Args:
        logits: ``(n, classes)`` logits of a forward pass (any device).
        targets: ``(n,)`` integer labels.
    """
    return (logits.argmax(1) != targets.to(logits.device)).cpu()


def top2_margin(logits: torch.Tensor) -> torch.Tensor:
    """``p1 - p2`` (CPU float) of each sample's two largest softmax probabilities, taken in
    **descending** order (Alg 6 writes ``sort(...)[0:2]``, which in ascending order would be
    the two smallest).

    Args:
        logits: ``(n, classes)`` logits, at least two classes.
    """
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError("the soft-accuracy margin needs logits of shape (n, classes) with at "
                         f"least two classes, got {tuple(logits.shape)}")
    top = torch.topk(torch.softmax(logits.detach().float(), 1), 2, dim=1).values
    return (top[:, 0] - top[:, 1]).cpu()


def accuracy_filter(logits: torch.Tensor, targets: torch.Tensor, margin: float | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ASSIST filter: ``(wrong, marginal)`` CPU bool masks.

    ``wrong`` marks the misclassified samples; ``marginal`` marks the *correctly* classified
    samples whose top-2 softmax probabilities are within the margin, ``p1 - p2 <= margin``
    (the soft accuracy of Alg 6). A sample is accepted when ``wrong | marginal``.

    Args:
        logits: ``(n, classes)`` logits of a forward pass (any device).
        targets: ``(n,)`` integer labels.
        margin: alpha in (0, 1), or ``None`` for the hard filter alone (``marginal`` is all
            ``False``). Default ``None``.
    """
    margin = validate_params("accuracy_filter", {"margin": margin}, {"margin": MARGIN})["margin"]
    wrong = misclassified(logits, targets)
    if margin is None:
        return wrong, torch.zeros_like(wrong)
    return wrong, ~wrong & (top2_margin(logits) <= margin)


# ---------------------------------------------------------------------- the selector
@register_method("assist", "selector",
                 "ASSIST: train on the misclassified samples, accumulated into full batches")
class AssistSelector(BatchSelector):
    """ASSIST batchwise filtering (Smedås 2021, seed 004): each raw batch gets a no-grad
    forward (eval mode by default); the samples it misclassifies are accepted into a buffer
    that releases training batches of the run's ``batch_size`` (Alg 10, "batch
    accumulation").

    The raw batch size is the run's ``forward_batch_size`` (the thesis'
    ``accumulation_batch_size``; default the training batch size, as in the thesis). The
    defaults are the thesis' method: buffer kept across epochs, a step only when the buffer
    holds **more** than ``batch_size`` samples, the overflow discarded, at most one step per
    raw batch.

    Args:
        strict: step when the buffer holds *more* than ``batch_size`` (Alg 10's ``>``; with
            raw size = batch size at least two raw batches per step). ``False``: at
            ``batch_size`` (``>=``). Default ``True``.
        overflow: ``"discard"`` (default, the thesis) drops the accepted samples beyond
            ``batch_size`` after a step; ``"carry"`` keeps them for the next batch.
        repeat: ``False`` (default, the thesis' "if"): at most one step per raw batch;
            ``True`` ("while"): as many steps as the buffer allows.
        end_of_epoch: ``"carry"`` (default, the thesis: the buffer persists across epochs;
            what is pending when training ends is never used), ``"flush"`` (one smaller step
            at the end of every epoch; a remainder under half the batch size waits for the
            next epoch instead, so no tiny batch meets BatchNorm) or ``"drop"``.
        accumulate: ``True`` (default, Alg 10). ``False``: the unstable batch size variant
            (Alg 9): one step on each raw batch's accepted samples, whatever their number,
            and no step for a raw batch that accepts nothing; ``strict``, ``overflow``,
            ``repeat`` and ``end_of_epoch`` then do not apply.
        margin: alpha in (0, 1) of the soft accuracy filter (Alg 6): also accept correctly
            classified samples whose two largest softmax probabilities satisfy
            ``p1 - p2 <= alpha``. Default ``None`` (hard filter only). Needs
            ``filter="hard"``.
        filter: ``"hard"`` (default): the accuracy filter; ``"none"``: every sample is a
            candidate (a loss selector alone, as in the thesis' preliminary work).
        selector: loss selector applied *after* the filter, to the misclassified samples of
            each raw batch ("selectors x filters", §5.4): ``"all"`` (default: keep them all,
            pure ASSIST), ``"top-k"``, ``"top-q"``, ``"weighted"`` or ``"q-split"``; see
            :mod:`thrifty.selection.loss_selectors`. As in Alg 6 the margin's samples are
            added after the selector, not ranked by it.
        k: top-k / weighted / q-split: a count per raw batch (integer >= 1) or a share in
            (0, 1) of the candidates. Default ``None`` = 0.5.
        q: top-q quantile in (0, 1). Default ``None`` = 0.5.
        p: q-split power > 0. Default ``None`` = 2.0.
        buckets: q-split buckets >= 2. Default ``None`` = 2.
        fill: ``"none"`` (default, Alg 10's accumulation) or ``"random"``: Alg 5's "if fewer
            than k remain, fill with random samples": when the selector returns fewer than
            ``min(k, raw batch)`` samples, the rest is drawn uniformly without replacement
            (``ctx.generator``) from the raw batch's other samples. Needs ``k`` as a count
            and ``selector`` top-k, weighted or q-split.
        starvation: what happens once the model classifies everything correctly (the rule
            accepted nothing in the last ``patience`` forwarded samples, or the previous
            epoch ended without a step and an empty buffer), for every further raw batch
            that accepts nothing: ``"random"`` (default) trains on the whole raw batch (plain
            SGD for that batch, like the fallback of the thesis' preliminary Alg 5; it goes
            through the same buffer); ``"skip"`` takes no step and counts the batch (Alg 10
            as written: no step ever again); ``"error"`` raises
            :class:`~thrifty.engine.SelectionError`.
        patience: forwarded samples in a row without an accepted one before ``starvation``
            applies. Default ``None`` = one epoch's worth: the samples the selector was
            given in the previous epoch (measured, so it follows a sampler or reducer that
            loads less than the training set); in the first epoch the size of the training
            set (unknown outside the engine: the epoch-end rule below then applies alone).
            Set it to the raw batch size to react to every empty raw batch.
        filter_mode: model mode of the filter forward: ``"eval"`` (default; BatchNorm uses
            its running statistics, dropout is off) or ``"train"`` (BatchNorm normalises with
            the raw batch's own statistics, dropout is active). In train mode the engine
            saves the running statistics of every normalisation layer before the forward
            and restores them after, so the filter never updates them (spec §6.1). Read by
            the engine only; :class:`~thrifty.selection.OnlineSelection` forwards in eval
            mode.
        schedule: a decreasing share kept by the loss selector, read once per epoch:
            ``constant`` (default: no schedule), ``exponential``, ``linear``, ``cosine`` or
            ``step`` (:class:`~thrifty.utils.schedules.RatioSchedule` with R = 1 over the
            run's epochs). The share is ``k`` (top-k, weighted, q-split, with ``k`` a share in
            (0, 1)) or ``1 - q`` (top-q: epoch t uses ``q_t = 1 - S_t``); ``selector="all"``
            and a count ``k`` have no share and are refused.
        final_ratio: target share in the last epoch, in (0, S_0]. Default ``None``.
        alpha: decay per epoch of the exponential schedule, >= 0. Default ``None``.
        gamma: factor of each drop of the step schedule, in (0, 1]. Default ``None``.
        mean_ratio: target mean share over the run, in (0, S_0]. Default ``None``.
        mean_over: ``"renewals"`` (default) or ``"epochs"``; the same here (R = 1).
        step_size: epochs between drops of the step schedule, >= 1. Default ``None``.

    Starvation at the end of an epoch: an epoch that ends with no optimizer step and an
    empty buffer also counts as starved (``selector_starved_epochs``): with
    ``end_of_epoch="drop"`` an epoch that accepts at most ``batch_size`` samples loses them
    and, every accepted sample restarting the ``patience`` count, would otherwise never take
    a step again. ``"random"`` and ``"skip"`` then apply to every raw batch of the next
    epoch that accepts nothing (a step-less epoch can thus alternate with a fallback epoch);
    ``"error"`` raises at once. With ``"carry"`` a step-less epoch whose accepted samples wait
    in the buffer is progress, not starvation (the thesis: "several epochs may pass without
    a training step").

    Decisions:
        * The filter forward runs under ``no_grad`` (the engine's selection forward, in the
          mode ``filter_mode``); the training step forwards the accepted samples again (the
          thesis' own second forward). The buffer holds the augmented tensors themselves, so
          a sample is trained in exactly the view that passed the filter ("hard filtering").
        * Samples enter the buffer in raw-batch order, so the first ``batch_size`` of the
          buffer are the oldest accepted samples.
        * ``allow_empty_epoch`` is ``True``: an epoch without a step is part of the method
          (the thesis: "several epochs may pass without a training step"); starvation is
          handled by ``starvation`` and every count is reported.
        * Alg 5's random fill is off by default (``fill="none"``): the buffer accumulates
          until a batch is full.

    Per-epoch diagnostics (``epoch_diagnostics``, reset after reading): ``selector_raw_batches``,
    ``selector_forwarded``, ``selector_misclassified``, ``selector_marginal``,
    ``selector_accepted`` (given to the buffer by the rule, Alg 5's fill included, fallbacks
    excluded), ``selector_filled`` (Alg 5's random fill), ``selector_acceptance_ratio``
    (accepted / forwarded), ``selector_starved_batches``, ``selector_fallback_samples``,
    ``selector_steps`` (training batches the buffer released for this selector's samples:
    exact, the engine's packer replayed on counts), ``selector_raw_batches_per_step`` (NaN,
    undefined, when the epoch took no step), ``selector_end_of_epoch_dropped`` (pending
    samples dropped by ``end_of_epoch="drop"``), ``selector_starved_epochs`` (1 when the
    epoch ended without a step and with an empty buffer), ``selector_pending`` (buffer size
    at the end of the epoch) and, with a schedule, ``selector_share`` (the share in force).
    The engine adds ``overflow_discarded`` (overflow only, spec §1.7(b)).

    State (checkpointed): ``counts`` (dict of ints), ``run`` (forwarded samples since the
    last accepted one), ``pending`` (the buffer's size, for the step count), ``patience``
    (the measured one) and ``starved_epoch`` (the previous epoch was step-less); the engine
    saves the buffer's samples itself.
    """

    name = "assist"
    identity = False
    allow_empty_epoch = True
    _state_attrs = ("counts", "run", "pending", "patience", "starved_epoch")
    _count_keys = ("raw_batches", "forwarded", "misclassified", "marginal", "accepted",
                   "filled", "starved_batches", "fallback_samples", "steps",
                   "end_of_epoch_dropped", "starved_epochs")
    _parameter_constraints = {
        "strict": Boolean(), "repeat": Boolean(), "accumulate": Boolean(),
        "overflow": Options(str, ("discard", "carry")),
        "end_of_epoch": Options(str, ("carry", "flush", "drop")),
        "filter": Options(str, ("hard", "none")),
        "margin": MARGIN,
        "fill": Options(str, FILLS),
        "starvation": Options(str, STARVATION),
        "patience": Param(Interval(int, 1, None, closed="left", integral_floats=True,
                                   noun="a number of samples"), None,
                          hint="None: one epoch's worth of forwarded samples, measured"),
        "filter_mode": Options(str, FILTER_MODES),
    }

    def __init__(self, strict: bool = True, overflow: str = "discard", repeat: bool = False,
                 end_of_epoch: str = "carry", accumulate: bool = True,
                 margin: float | None = None, filter: str = "hard", selector: str = "all",
                 k: float | None = None, q: float | None = None, p: float | None = None,
                 buckets: int | None = None, fill: str = "none", starvation: str = "random",
                 patience: int | None = None, filter_mode: str = "eval",
                 schedule: str = "constant", final_ratio: float | None = None,
                 alpha: float | None = None, gamma: float | None = None,
                 mean_ratio: float | None = None, mean_over: str = "renewals",
                 step_size: int | None = None) -> None:
        v = validate_params("AssistSelector", {
            "strict": strict, "repeat": repeat, "accumulate": accumulate, "overflow": overflow,
            "end_of_epoch": end_of_epoch, "filter": filter, "margin": margin, "fill": fill,
            "starvation": starvation, "patience": patience, "filter_mode": filter_mode},
            self._parameter_constraints)
        self.strict, self.repeat, self.accumulate = strict, repeat, accumulate
        self.overflow, self.end_of_epoch, self.filter = overflow, end_of_epoch, filter
        self.margin = v["margin"]
        if self.margin is not None and self.filter == "none":
            raise ValueError("margin adds correctly classified samples to the hard filter; "
                             "with filter='none' every sample is already a candidate")
        self.loss_selector = LossSelector(selector, k=k, q=q, p=p, buckets=buckets)
        self.fill = fill
        if self.fill == "random" and not (self.loss_selector.kind in ("top-k", "weighted",
                                                                      "q-split")
                                          and isinstance(self.loss_selector.k, int)):
            raise ValueError(f"fill='random' tops each raw batch up to k samples (Alg 5); it "
                             f"needs selector top-k, weighted or q-split with k a count (an "
                             f"integer >= 1), got selector={selector!r}, k={k!r}")
        self.starvation = starvation
        self.patience_arg = v["patience"]
        self.patience = self.patience_arg
        self.filter_mode = filter_mode
        share = self.loss_selector.share
        options = (final_ratio, alpha, gamma, mean_ratio, step_size)
        if share is None and (schedule != "constant" or mean_over != "renewals"
                              or any(v is not None for v in options)):
            why = ("keeps every misclassified sample" if selector == "all"
                   else f"takes k = {self.loss_selector.k} samples, a count")
            raise ValueError(f"a share schedule turns the share kept by the loss selector, but "
                             f"selector {selector!r} {why}: use top-k, weighted or q-split with "
                             "k a share in (0, 1), or top-q")
        kind = "1 - q" if self.loss_selector.kind == "top-q" else "k"
        self.share = EpochRatio(1.0 if share is None else share, schedule,
                                final_ratio=final_ratio, alpha=alpha, gamma=gamma,
                                mean_ratio=mean_ratio, mean_over=mean_over,
                                step_size=step_size, name=f"share ({kind})")
        self.packing = PackingRule(immediate=True) if not self.accumulate else PackingRule(
            strict=self.strict, overflow=self.overflow, repeat=self.repeat,
            end_of_epoch=self.end_of_epoch)
        self.batch_size = 0
        self.counts: dict[str, int] = dict.fromkeys(self._count_keys, 0)
        self.run = 0
        self.pending = 0
        self.starved_epoch = False
        self._set_up = False
        self._epoch_selector: tuple[int, float, LossSelector] | None = None
        self._ctx: TrainContext | None = None

    # ------------------------------------------------------------------ engine hooks
    def setup(self, ctx: TrainContext) -> None:
        """Remember rho, take the first epoch's ``patience`` from the training set size (when
        known) and fit the share schedule to the run's epochs."""
        self.batch_size = ctx.batch_size
        if self.patience_arg is None:
            self.patience = len(ctx.labels) or None  # None: unknown until an epoch is seen
        if self.share.scheduled:
            if not ctx.epochs or ctx.epochs < 1:
                raise ValueError("assist: a share schedule needs the run's number of epochs; "
                                 "outside the engine pass epochs= to OnlineSelection")
            self.share.resolve(ctx.epochs)
        self._epoch_selector = None
        self._set_up = True

    def needs_forward(self, ctx: TrainContext) -> bool:
        return True

    def selector_at(self, epoch: int) -> LossSelector:
        """The loss selector in force at 0-based ``epoch``: the configured one, or with a
        schedule the same kind keeping the share S_t (needs :meth:`setup`).

        Args:
            epoch: the 0-based epoch.
        """
        if not self.share.scheduled:
            return self.loss_selector
        if self._epoch_selector is None or self._epoch_selector[0] != epoch:
            share = self.share.at(epoch)
            self._epoch_selector = (epoch, share, self.loss_selector.with_share(share))
        return self._epoch_selector[2]

    def select(self, batch: SelectionInput, ctx: TrainContext) -> torch.Tensor:
        """Positions of the raw batch's samples that enter the buffer (sorted)."""
        if not self._set_up:  # used outside the engine without setup()
            self.setup(ctx)
        self._ctx = ctx  # the epoch, for the end-of-epoch replay of the packer
        n = len(batch.idx)
        self.counts["raw_batches"] += 1
        self.counts["forwarded"] += n
        losses = batch.losses.detach().float().cpu()
        if self.filter == "hard":
            if batch.logits is None:
                raise SelectionError("assist filters on the logits of a fresh selection "
                                     "forward; it got stale losses without logits")
            wrong, marginal = accuracy_filter(batch.logits, batch.targets, self.margin)
            candidates = torch.nonzero(wrong).flatten()
            extra = torch.nonzero(marginal).flatten()
            self.counts["misclassified"] += len(candidates)
            self.counts["marginal"] += len(extra)
        else:
            candidates, extra = torch.arange(n), torch.empty(0, dtype=torch.long)
        chosen = candidates[self.selector_at(ctx.epoch)(losses[candidates], ctx.generator)]
        if self.fill == "random":
            chosen = self._fill(chosen, n, ctx.generator)
        pos = torch.unique(torch.cat([chosen, extra]))  # sorted; a fill may be marginal
        if len(pos):
            self.run = 0
            self.counts["accepted"] += len(pos)
        else:
            pos = self._starved(n)
        self._replay_packer(len(pos), ctx.batch_size or self.batch_size)
        return pos

    def _fill(self, chosen: torch.Tensor, n: int, generator: torch.Generator | None
              ) -> torch.Tensor:
        """Alg 5: top ``chosen`` up to ``min(k, n)`` positions with uniform draws (without
        replacement) among the raw batch's other samples."""
        short = min(self.loss_selector.k, n) - len(chosen)
        if short <= 0:
            return chosen
        free = torch.ones(n, dtype=torch.bool)
        free[chosen] = False
        rest = torch.nonzero(free).flatten()
        drawn = rest[torch.randperm(len(rest), generator=generator)[:short]]
        self.counts["filled"] += len(drawn)
        return torch.cat([chosen, drawn])

    def _starved(self, n: int) -> torch.Tensor:
        """The starvation rule for a raw batch of ``n`` samples that accepted nothing."""
        self.run += n
        if not self.starved_epoch and (self.patience is None or self.run < self.patience):
            return torch.empty(0, dtype=torch.long)
        self.counts["starved_batches"] += 1
        if self.starvation == "error":
            raise SelectionError(
                f"assist starved: it accepted none of the last {self.run} forwarded samples "
                f"(patience {self.patience}); the model classifies them correctly, so no step "
                "would ever be taken again. Use starvation='random' (train on the raw "
                "batches, plain SGD) or 'skip' (take no step, counted), or raise patience.")
        if self.starvation == "skip":
            return torch.empty(0, dtype=torch.long)
        self.counts["fallback_samples"] += n
        return torch.arange(n)

    def _replay_packer(self, added: int, rho: int) -> None:
        """Count the training batches the engine's packer releases for ``added`` samples."""
        rule = self.packing
        if rule.immediate:
            self.counts["steps"] += int(added > 0)
            return
        self.pending += added
        while self.pending > rho if rule.strict else self.pending >= rho:
            self.counts["steps"] += 1
            self.pending = 0 if rule.overflow == "discard" else self.pending - rho
            if not rule.repeat:
                break

    def epoch_diagnostics(self) -> dict[str, float]:
        """The epoch's counts (see the class docstring); resets them. Called by the engine
        once per epoch, after the buffer's end-of-epoch rule, which is replayed here.

        Also closes the epoch for the starvation rule: measures ``patience`` (when not
        given) and marks a step-less epoch with an empty buffer as starved.

        Raises:
            SelectionError: with ``starvation="error"``, when the epoch was starved.
        """
        c = self.counts
        if self.pending and not self.packing.immediate and self.end_of_epoch != "carry":
            ctx = self._ctx  # the packer's flush: a remainder under min_batch waits
            last = ctx is not None and bool(ctx.epochs) and ctx.epoch >= ctx.epochs - 1
            if self.end_of_epoch == "flush" and self.pending >= min_batch(self.batch_size):
                c["steps"] += 1
                self.pending = 0
            elif self.end_of_epoch == "drop" or last:
                c["end_of_epoch_dropped"] += self.pending
                self.pending = 0
        stepless = c["raw_batches"] > 0 and c["steps"] == 0 and self.pending == 0
        c["starved_epochs"] += int(stepless)
        if self.patience_arg is None and c["forwarded"]:
            self.patience = c["forwarded"]
        out = {f"selector_{k}": float(v) for k, v in c.items()}
        out["selector_acceptance_ratio"] = c["accepted"] / c["forwarded"] if c["forwarded"] \
            else math.nan
        out["selector_raw_batches_per_step"] = c["raw_batches"] / c["steps"] if c["steps"] \
            else math.nan
        out["selector_pending"] = float(self.pending)
        if self.share.scheduled and self._epoch_selector is not None:
            out["selector_share"] = self._epoch_selector[1]
        self.counts = dict.fromkeys(self._count_keys, 0)
        self.starved_epoch = stepless
        if stepless and self.starvation == "error":
            raise SelectionError(
                f"assist starved: an epoch of {out['selector_forwarded']:.0f} forwarded "
                f"samples took no optimizer step and left nothing in the buffer "
                f"({out['selector_accepted']:.0f} accepted"
                + (f", {out['selector_end_of_epoch_dropped']:.0f} dropped at its end"
                   if out["selector_end_of_epoch_dropped"] else "")
                + "). Use starvation='random' (plain SGD on the raw batches that accept "
                "nothing in the next epoch) or 'skip' (counted), or end_of_epoch='carry' or "
                "'flush' so that accepted samples are not lost.")
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; checkpoints written before ``patience`` and
        ``starved_epoch`` were saved keep the values of :meth:`setup`."""
        self.counts = {**dict.fromkeys(self._count_keys, 0), **state["counts"]}
        self.run, self.pending = state["run"], state["pending"]
        if "patience" in state:
            self.patience = state["patience"]
        self.starved_epoch = bool(state.get("starved_epoch", False))
