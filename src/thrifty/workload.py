"""Your own workload: a dataset pair, a model and training options that ``thrifty train``,
``thrifty bench``, ``thrifty tune``, ``thrifty prune`` and ``thrifty reduce`` run like the
built-in presets.

A workload is named by a factory, ``FILE.py:FUNCTION`` or ``package.module:FUNCTION``, a
function without arguments that returns a :class:`Workload`::

    # my_workload.py
    import thrifty

    def make_workload():
        return thrifty.Workload(train=MyDataset("train"), test=MyDataset("test"),
                                model=lambda: MyNet(num_classes=10),
                                options={"lr": 0.05, "batch_size": 128, "epochs": 8})

    # thrifty bench --workload my_workload.py:make_workload --seeds 0 1 2 --method infobatch

The factory is called once per process (its datasets are reused by every run of a
benchmark); ``model`` is called once per run, after the run's seed is set, so that each
seed starts from its own initial weights and equal seeds from equal ones. Naming a
factory imports and runs that Python file, as ``python FILE.py`` would: only name files
you trust. Nothing in a data file is ever run.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

#: Run options a workload may not set: the factory itself gives the data and the model.
NOT_WORKLOAD_OPTIONS = ("workload", "dataset", "data_root", "download", "model", "model_args",
                        "train_limit", "test_limit", "augment")

_LOADED: dict[str, Workload] = {}


@dataclass
class Workload:
    """A training task for thrifty: what a preset such as ``fmnist-cnn`` names.

    Args:
        train: the training set, a map-style dataset (``len`` and ``dataset[i] -> (x, y)``)
            with a ``targets`` attribute holding every sample's integer label (read
            without loading the inputs; per-class methods and the checks use it).
        test: the test set, the same kind of dataset (``targets`` too).
        model: a callable without arguments returning a fresh ``torch.nn.Module`` whose
            output for a batch is the ``(batch, classes)`` logits. Called once per run,
            after the run's seed is set.
        options: run options (any ``thrifty train`` option by its Python name: ``epochs``,
            ``lr``, ``batch_size``, ``optimizer``, ``schedule``, ``weight_decay``, ...), the
            workload's defaults; a config file and the command line win over them. Default:
            none (thrifty's defaults: SGD 0.05, Nesterov, cosine, batch 128, 10 epochs).
        name: the name of run folders and tables. Default: the factory's function name.

    Raises:
        TypeError: a dataset that is not map-style or has no ``targets``, a ``model`` that
            is not callable, ``options`` that is not a mapping.
        ValueError: an unknown option, an option of the wrong type, or one a workload does
            not set (``dataset``, ``model``, ... ; the factory gives those).
    """

    train: Any
    test: Any
    model: Callable[[], Any]
    options: dict[str, Any] = field(default_factory=dict)
    name: str | None = None

    def __post_init__(self) -> None:
        for role in ("train", "test"):
            data = getattr(self, role)
            if not (hasattr(data, "__len__") and hasattr(data, "__getitem__")):
                raise TypeError(f"Workload {role} must be a map-style dataset (len() and "
                                f"dataset[i] -> (x, y)), got {type(data).__name__}")
            if getattr(data, "targets", None) is None:
                raise TypeError(f"Workload {role} ({type(data).__name__}) has no `targets`: "
                                "give the dataset a `targets` attribute, the integer label of "
                                "every sample in order")
        if not callable(self.model):
            raise TypeError("Workload model must be a callable returning a fresh nn.Module "
                            f"(e.g. model=lambda: MyNet()), got {type(self.model).__name__}")
        if not isinstance(self.options, dict):
            raise TypeError(f"Workload options must be a mapping of run option: value, got "
                            f"{type(self.options).__name__}")
        from thrifty.engine.config import RunConfig, check_option

        names = set(RunConfig.__dataclass_fields__)
        for key, value in self.options.items():
            if key not in names:
                raise ValueError(f"Workload options: unknown run option {key!r} (see `thrifty "
                                 "train --help`; Python names: batch_size, weight_decay, ...)")
            if key in NOT_WORKLOAD_OPTIONS:
                raise ValueError(f"Workload options: {key!r} is not a workload option: the "
                                 "workload's train, test and model give the data and model")
            if key in ("amp", "selection_amp") and value is False:
                continue
            self.options[key] = check_option(key, value, "Workload options")
        if self.name is not None and not (isinstance(self.name, str) and self.name.strip()):
            raise TypeError(f"Workload name must be non-empty text, got {self.name!r}")


def is_factory(workload: object) -> TypeGuard[str]:
    """Whether ``workload`` names a factory (``FILE.py:FUNCTION``, ``module:FUNCTION``)
    rather than a preset."""
    return isinstance(workload, str) and ":" in workload


def resolve_factory(spec: str) -> str:
    """``spec`` with a ``FILE.py`` part made absolute (a run resumed, or a benchmark's job
    started, from another folder finds the same file); checked to exist."""
    target, _, function = spec.rpartition(":")
    if not target or not function.isidentifier():
        raise ValueError(f"workload {spec!r}: write FILE.py:FUNCTION or package.module:FUNCTION "
                         "(a function without arguments that returns a thrifty.Workload)")
    if target.endswith(".py"):
        path = Path(target).expanduser()
        if not path.is_file():
            raise ValueError(f"workload {spec!r}: no file {target} (from {Path.cwd()})")
        return f"{path.resolve()}:{function}"
    if not all(part.isidentifier() for part in target.split(".")):
        raise ValueError(f"workload {spec!r}: {target!r} is neither a FILE.py nor a dotted "
                         "module name")
    return spec


def factory_name(spec: str) -> str:
    """A short name for run folders: the function name (``make_workload``)."""
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", spec.rpartition(":")[2]) or "workload"


def factory_label(spec: str) -> str:
    """``FILE.py:FUNCTION`` with the file's name only (no machine path), for plans and
    tables; a module spec unchanged."""
    target, _, function = spec.rpartition(":")
    return f"{target.rsplit('/', 1)[-1]}:{function}"


def _import(target: str, spec: str) -> Any:
    if not target.endswith(".py"):
        try:
            return importlib.import_module(target)
        except ImportError as exc:
            raise ValueError(f"workload {spec!r}: cannot import {target} ({exc}); is it on "
                             "PYTHONPATH?") from exc
    name = "thrifty_workload_" + hashlib.sha1(target.encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, target)
    if module_spec is None or module_spec.loader is None:
        raise ValueError(f"workload {spec!r}: {target} cannot be imported as Python")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # classes defined in the file stay importable (pickling)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ValueError(f"workload {spec!r}: importing {target} raised "
                         f"{type(exc).__name__}: {_first_line(exc)}") from exc
    return module


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def load_workload(spec: str) -> Workload:
    """The :class:`Workload` a factory returns (called once per process and kept).

    Args:
        spec: ``FILE.py:FUNCTION`` or ``package.module:FUNCTION``.

    Raises:
        ValueError: a missing file, module or function; a factory that raises, or returns
            something other than a :class:`Workload`; each in one line naming the factory.
    """
    spec = resolve_factory(spec)
    if spec in _LOADED:
        return _LOADED[spec]
    target, _, function = spec.rpartition(":")
    module = _import(target, spec)
    factory = getattr(module, function, None)
    if not callable(factory):
        raise ValueError(f"workload {spec!r}: {target} has no function {function!r}")
    from thrifty.engine.checkpoint import rng_state, set_rng_state

    saved = rng_state()  # the factory's draws never shift a run's seeded streams, wherever
    try:  # it is first called (before or after the run's seed is set)
        workload = factory()
    except Exception as exc:
        raise ValueError(f"workload {spec!r}: the factory raised {type(exc).__name__}: "
                         f"{_first_line(exc)}") from exc
    finally:
        set_rng_state(saved)
    if not isinstance(workload, Workload):
        raise ValueError(f"workload {spec!r}: the factory returned a "
                         f"{type(workload).__name__}, not a thrifty.Workload(train=..., "
                         "test=..., model=...)")
    _LOADED[spec] = workload
    return workload


def workload_preset(spec: str) -> dict[str, Any]:
    """The run options a factory's workload sets (its ``options``), as a preset."""
    return {"dataset": "workload", "model": "workload", **load_workload(spec).options}


def build_model(workload: Workload, spec: str, sample: Any, num_classes: int) -> Any:
    """A fresh model from ``workload.model``, checked on ``sample`` (a batch of two training
    inputs): it must be an ``nn.Module`` returning ``(2, num_classes)``-shaped logits."""
    import torch
    from torch import nn

    try:
        model = workload.model()
    except Exception as exc:
        raise ValueError(f"workload {spec!r}: model() raised {type(exc).__name__}: "
                         f"{_first_line(exc)}") from exc
    if not isinstance(model, nn.Module):
        raise ValueError(f"workload {spec!r}: model() returned a {type(model).__name__}, not "
                         "a torch.nn.Module")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(sample)
    except Exception as exc:
        raise ValueError(f"workload {spec!r}: the model fails on a batch of 2 training "
                         f"samples (inputs {tuple(sample.shape)}): {type(exc).__name__}: "
                         f"{_first_line(exc)}") from exc
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(sample), num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"workload {spec!r}: the model must return (batch, {num_classes}) "
                         f"logits for the {num_classes} classes of the training set; for a "
                         f"batch of {len(sample)} it returned {shape}")
    return model
