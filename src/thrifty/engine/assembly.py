"""The run's assembly, apart from the loop: data, model, masks and the three places' methods.

:func:`assemble` turns a :class:`~thrifty.engine.config.RunConfig` plus whatever the caller
gives (its own datasets, model or method objects) into an :class:`Assembly` the loop runs.
Method names are resolved through the one registry (:mod:`thrifty.methods`), the only
module that knows every method; no engine module imports a method package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from thrifty.data import TensorData, dataset_labels, eval_view, iterate_batches, load_dataset
from thrifty.data.checks import check_dataset, check_labels, check_pair
from thrifty.data.tensor import with_label_noise
from thrifty.engine.config import RunConfig
from thrifty.engine.interfaces import BatchSelector, EpochSampler, Pieces, Reducer
from thrifty.models import create_model
from thrifty.workload import build_model, is_factory, load_workload


@dataclass
class Assembly:
    """What a run is made of.

    Attributes:
        train, test: the datasets (limits applied).
        labels: labels of the training set (CPU long tensor).
        num_classes: number of classes.
        classes: class names, when the dataset has them.
        model: the model (masks applied, still on the CPU unless the caller moved it).
        pieces: the reducer, sampler and selector (pass-through defaults fill the gaps).
        noisy: the training indices whose label ``label_noise`` replaced.
    """

    train: Any
    test: Any
    labels: torch.Tensor
    num_classes: int
    classes: list[str] | None
    model: nn.Module
    pieces: Pieces
    noisy: torch.Tensor  # indices whose training label --label-noise replaced


def infer_classes(train: Any, labels: torch.Tensor) -> tuple[int, list[str] | None]:
    """``(num_classes, class names or None)`` of a training set: its ``num_classes`` or
    ``classes`` attribute, else inferred from the labels (largest label + 1)."""
    classes = getattr(train, "classes", None)
    classes = [str(c) for c in classes] if classes is not None else None
    n = getattr(train, "num_classes", None) or (len(classes) if classes else None)
    if not n:
        if labels.numel() == 0 or labels.dim() != 1:
            raise ValueError(
                f"cannot tell how many classes {type(train).__name__} has: give it a "
                "`classes` list or a `num_classes` attribute (its `targets` are "
                f"{tuple(labels.shape)}-shaped)")
        n = int(labels.max()) + 1
        check_labels(labels, n, f"the training set ({type(train).__name__})")
    return int(n), classes


def _input_shape(train: Any) -> tuple[int, ...]:
    return train.input_shape if isinstance(train, TensorData) else tuple(train[0][0].shape)


def run_datasets(config: RunConfig, augment: bool | None = None) -> tuple[Any, Any]:
    """The training and test sets a config names, before limits: a workload factory's
    (``FILE.py:FUNCTION``) or the named dataset's.

    Args:
        config: the run config.
        augment: training augmentation of a named dataset; default ``None``: the config's.
    """
    if is_factory(config.workload):
        workload = load_workload(str(config.workload))
        return workload.train, workload.test
    return load_dataset(config.dataset, config.data_root, config.download,
                        config.augment if augment is None else augment, seed=config.seed)


def new_model(config: RunConfig, train: Any, num_classes: int,
              weights: str | None = None) -> nn.Module:
    """A fresh model for ``train``: a workload factory's ``model()`` (checked on two training
    samples) or ``config.model`` with ``config.model_args``; call it after seeding.

    Args:
        config: the run config.
        train: the training set (input shape; the factory's model check).
        num_classes: the number of classes (the output width).
        weights: a weights file loaded into it (``--weights``: the head may differ in
            size); default ``None``: initial weights.
    """
    if not is_factory(config.workload):
        return create_model(config.model, num_classes, _input_shape(train), weights=weights,
                            **config.model_args)
    sample = next(iterate_batches(eval_view(train), [0, min(1, len(train) - 1)], 2)).x
    model = build_model(load_workload(str(config.workload)), str(config.workload), sample,
                        num_classes)
    if weights is not None:
        from thrifty.models.registry import load_weights

        load_weights(model, weights)
    return model


def build_pieces_by_name(config: RunConfig) -> dict[str, Any]:
    """The methods named in ``config.method`` (with ``config.method_args``), by place."""
    from thrifty.methods import build_pieces  # the registry sits above the engine

    return build_pieces(config.method, config.method_args)


def assemble(config: RunConfig, *, train: Any = None, test: Any = None,
             model: nn.Module | None = None, reducer: Reducer | None = None,
             sampler: EpochSampler | None = None, selector: BatchSelector | None = None
             ) -> Assembly:
    """Build everything a run needs that the caller did not give.

    The global RNG should be seeded before (the model's initial weights come from it).

    Args:
        config: the validated run config.
        train, test: datasets; loaded from ``config.dataset`` when either is ``None``.
        model: the model; built from ``config.model`` when ``None``.
        reducer, sampler, selector: method objects; built from ``config.method`` when all
            three are ``None``, else pass-through defaults fill the gaps.
    """
    if train is None or test is None:
        train, test = run_datasets(config)
    for limit, data, option in ((config.train_limit, train, "train_limit"),
                                (config.test_limit, test, "test_limit")):
        if limit is not None and limit > len(data):
            raise ValueError(f"--{option.replace('_', '-')} {limit} is more than the "
                             f"{len(data)} samples of the set: lower it or leave it out")
    for limit, data, option in ((config.train_limit, train, "train_limit"),
                                (config.test_limit, test, "test_limit")):
        if limit is not None and not isinstance(data, TensorData):
            raise ValueError(f"--{option.replace('_', '-')} subsets in-memory datasets; "
                             f"{type(data).__name__} is read from disk, so the limit would "
                             "be recorded but not applied: leave it out (or subset the "
                             "folder)")
    if isinstance(train, TensorData):
        train = train.subset(config.train_limit, seed=config.seed)
    if isinstance(test, TensorData):
        test = test.subset(config.test_limit, seed=config.seed)
    if len(train) == 0:
        raise ValueError("the training set is empty")
    labels = dataset_labels(train)
    num_classes, classes = infer_classes(train, labels)
    flipped = torch.empty(0, dtype=torch.long)
    if config.label_noise:  # the training labels only; the test set keeps the truth
        train, flipped = with_label_noise(train, config.label_noise, num_classes, config.seed)
        labels = dataset_labels(train)
    if num_classes < 2:
        raise ValueError(f"the training set has a single class ({classes or num_classes}): "
                         "every prediction would be right and the accuracy meaningless; "
                         "check the labels or the data folder")
    check_dataset(train, num_classes, "the training set", seed=config.seed)
    check_pair(train, test, num_classes)
    if model is None:
        model = new_model(config, train, num_classes, weights=config.weights)
    if config.masks:  # retraining a pruned model: masked weights stay zero
        from thrifty.utils.masks import apply_masks, load_masks

        apply_masks(model, load_masks(config.masks))
    if reducer is None and sampler is None and selector is None and config.method:
        named = build_pieces_by_name(config)
        reducer, sampler, selector = (named.get(p) for p in ("reducer", "sampler", "selector"))
    # `is None`, not `or`: a sampler's truth value is its (still empty) length
    pieces = Pieces(Reducer() if reducer is None else reducer,
                    EpochSampler() if sampler is None else sampler,
                    BatchSelector() if selector is None else selector)
    return Assembly(train, test, labels, num_classes, classes, model, pieces, flipped)
