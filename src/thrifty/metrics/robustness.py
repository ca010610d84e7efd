"""Robust accuracy: the test accuracy under an adversarial attack (FGSM or PGD, L-inf),
computed with the Adversarial Robustness Toolbox (the optional extra ``thrifty[attack]``)
rather than a hand-written attack.

The attack works in the model's input units (after the dataset's normalisation): ``eps``
is a distance in those units, and adversarial inputs are clipped to the range of the
evaluated test inputs. For Fashion-MNIST as thrifty loads it (pixels in [0, 1]
normalised by mean 0.2860, std 0.3530), a pixel budget of 0.1 is ``eps = 0.1 / 0.353``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

ATTACKS = ("none", "fgsm", "pgd")


def require_art() -> Any:
    """The Adversarial Robustness Toolbox, or a one-line error naming the extra."""
    try:
        import art.attacks.evasion as evasion
    except ImportError:
        raise ValueError("--attack needs the Adversarial Robustness Toolbox, the optional "
                         "extra: pip install 'thrifty[attack]'") from None
    return evasion


def check_attackable(test: Any) -> None:
    """Refuse (before training) an attack without the extra (:func:`require_art`) or on a
    test set whose inputs are not floating point: token ids (seq-cnn) have no input
    gradient, so FGSM and PGD cannot perturb them."""
    require_art()
    x = test.x if hasattr(test, "x") and isinstance(test.x, torch.Tensor) else test[0][0]
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        raise ValueError(f"--attack perturbs inputs along their gradient, but this test set's "
                         f"inputs are {x.dtype} (token ids or labels have none): drop "
                         "--attack for this workload")


def attack_subset(n: int, limit: int | None, seed: int) -> torch.Tensor:
    """The test indices attacked: all of them, or a fixed random ``limit`` of them (seeded
    by ``seed`` alone, so every run of a benchmark attacks the same samples)."""
    if limit is None or limit >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:limit].sort().values


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int, *,
                    attack: str, eps: float, steps: int = 10, step_size: float | None = None,
                    batch_size: int = 256, seed: int = 0) -> float:
    """Accuracy of ``model`` on adversarial versions of ``(x, y)``.

    Args:
        model: the classifier (put in eval mode for the attack, restored after).
        x, y: the inputs (CPU tensors, model input units) and integer labels.
        num_classes: the classifier's classes.
        attack: ``"fgsm"`` (one signed-gradient step of size ``eps``) or ``"pgd"``
            (``steps`` steps of ``step_size`` projected onto the L-inf ball of ``eps``, one
            random start).
        eps: the L-inf budget, > 0, in input units.
        steps: PGD's iterations. Default 10.
        step_size: PGD's step. Default ``eps / 4``.
        batch_size: samples per attack batch. Default 256.
        seed: seeds PGD's random start. Default 0.
    """
    evasion = require_art()
    from art.estimators.classification import PyTorchClassifier

    if attack not in ("fgsm", "pgd"):
        raise ValueError(f"attack must be fgsm or pgd, got {attack!r}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        lo, hi = float(x.min()), float(x.max())
        clf = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(),
                                input_shape=tuple(x.shape[1:]), nb_classes=num_classes,
                                clip_values=(lo, hi),
                                device_type="gpu" if device.type == "cuda" else "cpu")
        if attack == "fgsm":
            method = evasion.FastGradientMethod(clf, eps=eps, eps_step=eps,
                                                batch_size=batch_size)
        else:
            method = evasion.ProjectedGradientDescent(
                clf, eps=eps, eps_step=step_size or eps / 4, max_iter=steps,
                num_random_init=1, batch_size=batch_size, verbose=False)
        import numpy as np

        state = np.random.get_state()  # the run's random streams are left as they were
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            np.random.seed(seed % 2**32)
            try:
                # the true labels: without them ART attacks the model's own predictions
                adv = method.generate(x=x.numpy().astype(np.float32), y=y.numpy())
            finally:
                np.random.set_state(state)
        pred = clf.predict(adv, batch_size=batch_size).argmax(1)
        return float((torch.from_numpy(pred) == y).float().mean())
    finally:
        model.to(device)  # ART moves the model to its own idea of the device
        model.train(was_training)
