"""ASSIST epochwise filtering (seed 004, Alg 8): each epoch loads only the samples that the
model misclassifies at the start of the epoch."""

from __future__ import annotations

from thrifty.engine.interfaces import EpochSampler, SelectionError, TrainContext
from thrifty.methods import register_method
from thrifty.selection.assist import accuracy_filter
from thrifty.utils.params import Interval, Options, Param, validate_params


@register_method("assist-epochwise", "sampler",
                 "ASSIST epochwise: each epoch loads only the samples misclassified at its start")
class AssistEpochwise(EpochSampler):
    """ASSIST epochwise filtering (Smedås 2021, *ASSIST*, NTNU master's thesis, Alg 8).

    At the start of every epoch the whole pool gets a counted no-grad forward
    (``ctx.score``: eval mode, no augmentation); the epoch loads only the misclassified
    samples (``argmax(logits) != y``), shuffled with a generator seeded by (seed, epoch),
    in training batches of the run's batch size. Like the thesis it keeps indices, not
    tensors, so training re-augments each sample ("soft filtering", §3.3.1).

    Combined with the batchwise selector (``--method assist-epochwise --method assist``)
    this is the thesis' "Epoch + Batch" variant: the raw batches are drawn from the epoch's
    misclassified samples and filtered again by the current model.

    Args:
        margin: alpha in (0, 1) of the soft accuracy filter (Alg 6): also load correctly
            classified samples with ``p1 - p2 <= alpha`` (top-2 softmax probabilities).
            Default ``None`` (hard filter only).
        starvation: what an epoch does when the model classifies every pool sample
            correctly: ``"random"`` (default) loads the whole pool (a plain SGD epoch);
            ``"error"`` raises :class:`~thrifty.engine.SelectionError`. ``"skip"`` is
            refused: the engine cannot run an epoch that loads nothing; to take no step
            in such epochs, combine this sampler with the ``assist`` selector and its
            ``starvation="skip"``.

    Decisions:
        * The filter sees un-augmented samples (the engine's scoring pass) while the
          thesis filtered the views of its loader; either way training fetches a new view.
        * The order is the sampler's usual per-epoch shuffle of the kept indices, which
          equals Alg 8's "shuffle, then filter".

    Per-epoch diagnostics: ``sampler_scored`` (pool size, also counted by the engine as
    ``samples_forwarded``), ``sampler_misclassified``, ``sampler_marginal``,
    ``sampler_selected``, ``sampler_selected_share`` (of the pool) and ``sampler_starved``
    (1 when the epoch fell back to the whole pool).

    State (checkpointed): ``active`` (the epoch's indices) and ``diag``.
    """

    name = "assist-epochwise"
    needs_labels = True  # misclassified against the labels
    _state_attrs = ("active", "diag")
    _parameter_constraints = {
        # the same margin as the batchwise filter's (thrifty.selection.assist.MARGIN)
        "margin": Param(Interval(float, 0, 1, closed="neither"), None, label="alpha",
                        hint="None turns the soft filter off"),
        "starvation": Param(Options(str, ("random", "error")),
                            hint="assist-epochwise cannot skip an epoch (the engine refuses an "
                                 "epoch that loads nothing); 'random' loads the whole pool, to "
                                 "take no step add the assist selector with starvation=skip"),
    }

    def __init__(self, margin: float | None = None, starvation: str = "random") -> None:
        super().__init__()
        v = validate_params("AssistEpochwise", {"margin": margin, "starvation": starvation},
                            self._parameter_constraints)
        self.margin, self.starvation = v["margin"], starvation
        self.diag: dict[str, float] = {}

    def begin_epoch(self, ctx: TrainContext) -> None:
        """Score the pool and keep its misclassified samples as ``self.active``."""
        _, logits = ctx.score(self.pool)
        wrong, marginal = accuracy_filter(logits, ctx.labels[self.pool], self.margin)
        keep = wrong | marginal
        starved = not bool(keep.any())
        if starved:
            if self.starvation == "error":
                raise SelectionError(
                    f"assist-epochwise starved at epoch {ctx.epoch + 1}: the model classifies "
                    f"all {len(self.pool)} pool samples correctly, so the epoch would load "
                    "nothing. Use starvation='random' (load the whole pool).")
            self.active = self.pool
        else:
            self.active = self.pool[keep]
        self.diag = {"sampler_scored": float(len(self.pool)),
                     "sampler_misclassified": float(wrong.sum()),
                     "sampler_marginal": float(marginal.sum()),
                     "sampler_selected": float(len(self.active)),
                     "sampler_selected_share": len(self.active) / len(self.pool),
                     "sampler_starved": float(starved)}

    def epoch_diagnostics(self) -> dict[str, float]:
        diag, self.diag = self.diag, {}
        return diag
