"""The engine's evaluation: per-sample losses and correctness of a dataset (the test set
after every epoch; the training set where ``train_stats_every`` asks), sharded under DDP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from thrifty.data import eval_view, iterate_batches
from thrifty.engine.accounting import EpochStats
from thrifty.engine.distributed import gather_in_order, shard
from thrifty.engine.results import epoch_line
from thrifty.engine.signals import TrainingInterrupted
from thrifty.metrics import loss_ratios, loss_statistics

if TYPE_CHECKING:
    from thrifty.engine.loop import Trainer


class NonFiniteLossError(FloatingPointError):
    """The training loss (or a test loss) became NaN or infinite."""


class EvaluationStopped(Exception):
    """A stop request (SIGINT/SIGTERM) arrived during an evaluation pass, which was cut
    short; the run saves its checkpoint and evaluates that epoch again on resume."""


@torch.no_grad()
def dataset_losses(t: Trainer, data: Any, stoppable: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample losses and correctness of ``data`` under ``t``'s model (evaluation view,
    eval mode, the run's autocast); under DDP each rank a share, every rank the whole.
    ``stoppable``: a stop request ends the pass (:class:`EvaluationStopped`)."""
    losses, correct = [], []
    data = eval_view(data)  # no random crops for an on-disk training set
    mine = shard(torch.arange(len(data)), t.dist)
    for b in iterate_batches(data, mine.tolist(), t.config.eval_batch_size, device=t.device,
                             num_workers=t.config.num_workers):
        if stoppable and t.stopping():  # a long test set must not hold off a SIGTERM
            raise EvaluationStopped
        lo, lg = t._forward_eval(b.x, b.y)
        losses.append(lo.cpu())
        correct.append((lg.argmax(1) == b.y).cpu())
    lo = torch.cat(losses) if losses else torch.empty(0)
    co = torch.cat(correct) if correct else torch.empty(0, dtype=torch.bool)
    return gather_in_order(lo, t.dist), gather_in_order(co, t.dist)


def evaluate(t: Trainer, stats: EpochStats, final: bool) -> None:
    """The test set's loss statistics and accuracy into ``stats`` (and the training set's
    where ``train_stats_every`` asks); refuses non-finite test losses."""
    with t.timer(stats, "evaluation"):
        losses, correct = dataset_losses(t, t.test_data, stoppable=True)
        bad = int((~torch.isfinite(losses)).sum())
        if bad:
            raise NonFiniteLossError(
                f"{bad} of {len(losses)} test samples give a NaN or infinite loss at epoch "
                f"{stats.epoch + 1}: check the test inputs for NaN or infinite values "
                "(or a diverged model: lower --lr)")
        stats.test_loss = loss_statistics(losses, correct)
        stats.test_accuracy = stats.test_loss["accuracy"]
        k = t.config.train_stats_every
        if t.config.attack != "none" and (final or (k > 0 and (stats.epoch + 1) % k == 0)):
            attacked(t, stats)
        if (final and k >= 0) or (k > 0 and (stats.epoch + 1) % k == 0):
            tr_losses, tr_correct = dataset_losses(t, t.train_data, stoppable=True)
            stats.train_loss_stats = loss_statistics(tr_losses, tr_correct)
            stats.loss_ratios = loss_ratios(stats.test_loss, stats.train_loss_stats)
        stats.evaluated = True


def evaluate_again(t: Trainer) -> None:
    """On resume: the last epoch's evaluation, if a stop request cut it short, run again on
    the model of the checkpoint (the model as that epoch ended); its entry of ``t.history``
    replaced. A stop during it ends the run as interrupted, the checkpoint unchanged."""
    if not t.history or t.history[-1].get("evaluated", True):
        return
    stats = EpochStats.from_dict(t.history[-1])
    try:
        evaluate(t, stats, final=stats.epoch == t.config.epochs - 1)
    except EvaluationStopped:
        raise TrainingInterrupted(t._stop_signal, t.run_dir / "checkpoint.pt") from None
    finally:
        t.model.train()
    t.timer.flush()
    t.history[-1] = stats.to_dict()
    t.log(epoch_line(stats, t.config.epochs) + " (evaluated on resume)")


def attacked(t: Trainer, stats: EpochStats) -> None:
    """Robust accuracy under the run's ``--attack`` on its fixed test subset, with the
    attack's parameters, into ``stats`` (:mod:`thrifty.metrics.robustness`)."""
    from thrifty.metrics.robustness import attack_subset, robust_accuracy

    cfg = t.config
    idx = attack_subset(len(t.test_data), cfg.attack_limit, cfg.seed)
    parts = list(iterate_batches(eval_view(t.test_data), idx.tolist(), cfg.eval_batch_size))
    x, y = torch.cat([b.x for b in parts]), torch.cat([b.y for b in parts])
    stats.robust_accuracy = robust_accuracy(
        t.model, x, y, t.num_classes, attack=cfg.attack, eps=cfg.attack_eps,
        steps=cfg.attack_steps, step_size=cfg.attack_step_size,
        batch_size=cfg.eval_batch_size, seed=cfg.seed)
    stats.robust = {"attack": cfg.attack, "eps": cfg.attack_eps, "samples": len(idx),
                    **({"steps": cfg.attack_steps,
                        "step_size": cfg.attack_step_size or cfg.attack_eps / 4}
                       if cfg.attack == "pgd" else {})}
