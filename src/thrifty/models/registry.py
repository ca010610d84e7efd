"""A registry of models by name, with one creation function (in the style of timm).

Names: ``cnn`` (the standard small CNN), ``mlp``, ``resnet18``/``resnet34``/``resnet50``
(CIFAR variants), ``mobilenetv2`` (CIFAR variant), and any torchvision ImageNet model as
``tv:<name>`` (for example ``tv:resnet50``). Pretrained weights are only ever loaded from a
file path the user gives (``weights=...``); nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from thrifty.models.cifar import cifar_mobilenet_v2, cifar_resnet
from thrifty.models.small import MLP, SmallCNN

ModelFactory = Callable[..., nn.Module]
MODELS: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: register ``factory(num_classes, input_shape, **kwargs) -> nn.Module``."""

    def deco(factory: ModelFactory) -> ModelFactory:
        MODELS[name] = factory
        return factory

    return deco


@register_model("cnn")
def _cnn(num_classes: int, input_shape: tuple[int, ...], **kw) -> nn.Module:
    return SmallCNN(num_classes, in_channels=input_shape[0], **kw)


@register_model("mlp")
def _mlp(num_classes: int, input_shape: tuple[int, ...], **kw) -> nn.Module:
    return MLP(num_classes, input_shape, **kw)


@register_model("seqcnn")
def _seqcnn(num_classes: int, input_shape: tuple[int, ...], **kw) -> nn.Module:
    from thrifty.models.small import SequenceCNN

    return SequenceCNN(num_classes, **kw)


for _depth in (18, 34, 50):
    register_model(f"resnet{_depth}")(
        lambda num_classes, input_shape, _d=_depth, **kw: cifar_resnet(
            _d, num_classes, in_channels=input_shape[0], **kw))

register_model("mobilenetv2")(
    lambda num_classes, input_shape, **kw: cifar_mobilenet_v2(
        num_classes, in_channels=input_shape[0], **kw))


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from ``path`` (``weights_only=True``), unwrapped from a ``model`` or
    ``state_dict`` entry (a thrifty or Lightning-style checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}. Give the path of a saved "
                                "state dict (torch.save(model.state_dict(), path)).")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, corrupt, or not a torch file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"{path} is not a readable weights file ({type(exc).__name__}: "
                         f"{first[:160]}): it may be truncated; save it again with "
                         "torch.save(model.state_dict(), path)") from exc
    return unwrap_state_dict(data)


def unwrap_state_dict(data: Any) -> Any:
    """The state dict inside a loaded file: its ``model`` or ``state_dict`` entry (a thrifty
    or Lightning-style checkpoint), or ``data`` itself (a plain state dict)."""
    for key in ("model", "state_dict"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    return data


def fitting_tensors(model: nn.Module, state: dict[str, torch.Tensor]
                    ) -> dict[str, torch.Tensor]:
    """The entries of ``state`` whose name and shape match ``model``'s own tensors."""
    own = model.state_dict()
    return {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}


def load_weights(model: nn.Module, path: str | Path, strict: bool = False) -> nn.Module:
    """Load a state dict from ``path`` (``weights_only=True``); drop a mismatching classifier.

    Accepts a plain state dict or a dict with a ``model``/``state_dict`` entry (a thrifty
    checkpoint). Tensors whose shape does not match (for example a 1000-class head on a
    10-class model) are skipped and reported.
    """
    state = read_state_dict(path)
    keep = fitting_tensors(model, state)
    skipped = sorted(set(state) - set(keep))
    if strict and (skipped or set(model.state_dict()) - set(keep)):
        raise ValueError(f"weights in {path} do not match the model: skipped {skipped[:5]}")
    if not keep:
        raise ValueError(f"no tensor of {path} matches the model; wrong architecture?")
    own = list(model.state_dict())
    missing = sorted(set(own) - set(keep))
    modules = {k.rsplit(".", 1)[0] for k in missing}
    params = [name for name, _ in model.named_parameters()]
    head = (params or own)[-1].rsplit(".", 1)[0]  # the last module with weights: the head
    if modules and modules != {head}:  # more than a new classifier head: another model
        raise ValueError(
            f"weights in {path} fit only {len(keep)} of the model's "
            f"{len(model.state_dict())} tensors (not loaded: {', '.join(missing[:4])}"
            f"{', ...' if len(missing) > 4 else ''}): they come from another architecture, "
            "input size or model hyper-parameters (--model, --model-arg); only a different "
            "classifier "
            "head is replaced")
    model.load_state_dict(keep, strict=False)
    return model


def create_model(name: str, num_classes: int, input_shape: tuple[int, ...],
                 weights: str | Path | None = None, **kwargs) -> nn.Module:
    """Build a model by name.

    Args:
        name: a registered name (see :data:`MODELS`) or ``tv:<torchvision name>``.
        num_classes: output classes.
        input_shape: shape of one sample, e.g. ``(1, 28, 28)``.
        weights: optional path of a state dict to load (never downloaded). Default ``None``.
        **kwargs: passed to the model's factory.
    """
    if name.startswith("tv:"):
        from torchvision import models as tvm

        tv_name = name[3:]
        if tv_name not in tvm.list_models():
            raise ValueError(f"unknown torchvision model {tv_name!r}")
        model = tvm.get_model(tv_name, weights=None, num_classes=num_classes, **kwargs)
    elif name in MODELS:
        try:
            model = MODELS[name](num_classes, tuple(input_shape), **kwargs)
        except TypeError as exc:
            if "unexpected keyword argument" not in str(exc):
                raise
            raise ValueError(f"model {name!r} does not take the hyper-parameter(s) "
                             f"{', '.join(kwargs)} ({exc}); see its class in thrifty.models"
                             ) from exc
    else:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))} "
                         "or tv:<torchvision model name>")
    if weights is not None:
        load_weights(model, weights)
    return model
