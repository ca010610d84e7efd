"""``thrifty prune``: read a trained model, prune it once, write masks, weights and a report.

    thrifty prune --method PRUNER --from RUN_DIR|CHECKPOINT|WEIGHTS \\
        [--workload NAME] [--method-arg KEY=VALUE ...] --out DIR

writes ``DIR/masks.pt`` (:func:`~thrifty.utils.masks.save_masks`), ``DIR/weights.pt`` (the
trained weights, to retrain from) and ``DIR/prune.json`` (per-layer shares, total pruned share
of the Conv + Linear weights, time, settings, test accuracy before/after pruning), and returns
the report and the retraining command (``thrifty train ... --weights DIR/weights.pt --masks
DIR/masks.pt``).

The pruners (MINT, SNACS, the magnitude and random baselines) and their options come from the
method registry (:mod:`thrifty.methods`, place ``pruner``; ``thrifty methods`` lists them).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

import torch
from torch import nn

from thrifty.methods import available_methods, build_method, get_method
from thrifty.models.registry import unwrap_state_dict
from thrifty.pruning.core import PruneResult
from thrifty.utils.masks import apply_masks, save_masks
from thrifty.utils.taps import balanced_subset

#: run options a checkpoint's config contributes (the data and the model it was trained on)
_FROM_RUN = ("dataset", "data_root", "model", "model_args", "train_limit", "seed")


def read_source(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """``(state dict, run config or None)`` from a run folder, a checkpoint or a weights file.

    Masked weights (``weight_orig`` and ``weight_mask``) are folded into plain ``weight``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--from {path}: not found; give a run folder (runs/NAME), its "
                                "checkpoint.pt or a weights file (a saved state dict)")
    if path.is_dir():
        path = path / "checkpoint.pt"
        if not path.is_file():
            raise FileNotFoundError(f"{path.parent} holds no checkpoint.pt: is it a run folder?")
    data = torch.load(path, map_location="cpu", weights_only=True)
    config = data.get("config") if isinstance(data, dict) else None
    data = unwrap_state_dict(data)
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ValueError(f"{path} holds no state dict (expected tensors by parameter name)")
    return fold_masks(data), config


def fold_masks(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A plain state dict: ``X.weight = X.weight_orig * X.weight_mask`` for masked layers."""
    out = {k: v for k, v in state.items() if not k.endswith(("weight_orig", "weight_mask"))}
    for key in state:
        if key.endswith("weight_orig"):
            base = key[: -len("_orig")]
            out[base] = state[key] * state[base + "_mask"]
    return out


def resolve_config(source_config: Mapping[str, Any] | None, overrides: Mapping[str, Any]):
    """The run config: the checkpoint's data and model, then the given options.

    Raises:
        ValueError: a bare weights file and neither ``workload`` nor ``model`` given; a
            dataset or model other than the source run's; data or model options beside a
            run of a workload factory; a factory whose file is gone.
    """
    from thrifty.engine import make_config
    from thrifty.workload import is_factory

    given = {k: v for k, v in overrides.items() if v is not None}
    if source_config and is_factory(source_config.get("workload")):
        return _factory_config(source_config, given)
    if source_config is None and not ({"workload", "model"} & set(given)):
        raise ValueError("a weights file does not say which model and data it belongs to: "
                         "add --workload NAME (or --model and --dataset)")
    base = {k: source_config[k] for k in _FROM_RUN if source_config and k in source_config}
    if source_config and source_config.get("workload") and "workload" not in given:
        base["workload"] = source_config["workload"]
    if source_config:  # the weights were trained on one dataset and model: keep them
        named = make_config({k: v for k, v in given.items()
                             if k in ("workload", "model", "dataset")})
        for key in ("dataset", "model"):
            ran = source_config.get(key)
            asked = given.get(key, getattr(named, key) if "workload" in given else None)
            if ran is not None and asked is not None and asked != ran:
                flag = f"--{key}" if key in given else f"--workload {given['workload']}"
                what = "your own workload" if asked == "workload" else repr(asked)
                raise ValueError(
                    f"the source run trained {key} {ran!r}, but {flag} names {what}: "
                    f"pruning and retraining must use the run's own {key}; leave "
                    f"{flag.split()[0]} out (the run's folder says which it was)")
    return make_config({**base, **given})


def _factory_config(source_config: Mapping[str, Any], given: Mapping[str, Any]):
    """The config of a run of a workload factory: its factory (or ``--workload`` naming the
    moved file), nothing else given."""
    from thrifty.engine import make_config
    from thrifty.workload import is_factory

    extra = sorted(f"--{k.replace('_', '-')}" for k in set(given) - {"workload"})
    ran = source_config["workload"]
    if extra:
        raise ValueError(f"{', '.join(extra)} given for a run of your own workload {ran}, "
                         "whose factory gives the data and the model: leave them out")
    named = given.get("workload", ran)
    if not is_factory(named):
        raise ValueError(f"the source run trained your own workload {ran}, but --workload "
                         f"names {named!r}: leave --workload out (or name the factory's "
                         "FILE.py:FUNCTION when its file has moved)")
    file = named.rpartition(":")[0]
    if "workload" not in given and file.endswith(".py") and not Path(file).is_file():
        raise ValueError(f"the source run's factory file {file} is gone: give --workload "
                         "FILE.py:FUNCTION where it is now")
    return make_config({"workload": named, "seed": source_config.get("seed", 0)})


def load_model(cfg, state: Mapping[str, torch.Tensor], num_classes: int, train) -> nn.Module:
    """The run's model (``cfg.model``, or a workload factory's) with ``state`` loaded
    strictly (a clear error on any mismatch)."""
    from thrifty.engine.assembly import new_model

    model = new_model(cfg, train, num_classes)
    if cfg.dataset == "workload":
        what = f"the model of {cfg.workload}"
        fix = "Give the --workload FILE.py:FUNCTION whose model the weights came from."
    else:
        what = f"model {cfg.model!r} for {cfg.dataset}"
        fix = "Give the --workload/--model the weights were trained with."
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1:3]
        raise ValueError(f"the weights do not fit {what} ({num_classes} classes): "
                         f"{' '.join(s.strip() for s in first)}. {fix}") from exc
    return model.eval()


def load_train_test(cfg):
    """The run's training set (``train_limit`` applied) and test set, without augmentation:
    a preset's or a workload factory's."""
    from thrifty.data.tensor import limited
    from thrifty.engine.assembly import run_datasets

    train, test = run_datasets(cfg, augment=False)
    return limited(train, cfg.train_limit, seed=cfg.seed), test


def run_classes(train) -> int:
    """The number of classes of a training set (as a run counts them)."""
    from thrifty.data import dataset_labels
    from thrifty.engine.assembly import infer_classes

    return infer_classes(train, dataset_labels(train))[0]


def sample_inputs(train, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The class-balanced activation subset as tensors (only these samples are loaded,
    through the dataset's deterministic view)."""
    from thrifty.data import dataset_labels, eval_view, iterate_batches

    labels = dataset_labels(train)
    idx = balanced_subset(labels, per_class, seed).tolist()
    batch = next(iterate_batches(eval_view(train), idx, len(idx)))
    return batch.x, batch.y


@torch.no_grad()
def test_accuracy(model: nn.Module, test, batch_size: int = 1024) -> float:
    """Top-1 accuracy of ``model`` on a dataset (eval mode)."""
    from thrifty.data import iterate_batches

    model.eval()
    correct = total = 0
    for batch in iterate_batches(test, range(len(test)), batch_size):
        correct += int((model(batch.x).argmax(1) == batch.y).sum())
        total += len(batch.y)
    return correct / max(1, total)


#: the places ``thrifty prune`` takes methods from
PRUNER = ("pruner",)


def option_types(method: str) -> dict[str, Any]:
    """The hyper-parameters of the pruner ``method`` and their types, from the registry (the
    signature of its factory).

    Args:
        method: a pruner's name (``thrifty methods`` lists them).

    Raises:
        ValueError: ``method`` is no pruner (the message lists the pruners).
    """
    return {n: p.annotation for n, p in get_method(method, PRUNER).params.items()}


def _alternatives(hint: Any) -> tuple[Any, ...]:
    return get_args(hint) if get_origin(hint) in (Union, UnionType) else (hint,)


def _layer_name(option: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"{option}: {value!r} is not a layer name; write {option}=NAME or "
                         f"{option}=[NAME1,NAME2] (module names as in the prune table)")
    return str(value)


def coerce_option(method: str, key: str, value: Any) -> Any:
    """A pruner option as the pruner expects it, from a Python value or a YAML-parsed
    ``--method-arg`` value, by the option's type in the pruner's signature.

    Layer names (``tuple[str, ...]``, e.g. ``skip``): ``skip=fc2`` (one layer name, also a
    number such as ``skip=2`` for a ``Sequential``) becomes ``("fc2",)``, ``skip=[fc1,fc2]``
    a tuple of names. A number or ``{layer: number}`` (e.g. ``groups``, SNACS's ``gamma``):
    the keys are turned into names. Numbers, flags, names and paths are checked by type; an
    option of unknown name is returned as given.

    Args:
        method: the pruner's name.
        key: the option's name.
        value: its value.

    Raises:
        ValueError: a value of the wrong type, naming the option and the syntax to use.
    """
    alts = _alternatives(option_types(method).get(key, Any))
    if value is None and type(None) in alts:
        return None
    if any(get_origin(a) is tuple for a in alts):
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        return tuple(_layer_name(key, v) for v in items)
    per_layer = next((get_args(a)[1] for a in alts if get_origin(a) is dict), None)
    number = next((t for t in (int, float) if t in alts), None)
    if isinstance(value, Mapping):
        if per_layer is not None:
            return {_layer_name(key, k): _number(f"{key}[{k}]", v, per_layer)
                    for k, v in value.items()}
        if any(get_origin(a) is Mapping for a in alts):
            return value
        others = [n for n in available_methods(PRUNER) if n != method and any(
            get_origin(a) is dict for a in _alternatives(option_types(n).get(key)))]
        elsewhere = f"; per-layer {key} is an option of {', '.join(others)}" if others else ""
        raise ValueError(f"{method}'s {key} is one value for every layer ({key}=VALUE), not "
                         f"a mapping per layer{elsewhere}")
    if per_layer is not None and not isinstance(value, (int, float)):
        example = "4" if per_layer is int else "0.5"
        raise ValueError(f"{key}: {value!r} is neither a number nor a mapping; write "
                         f"{key}=NUMBER or {key}={{LAYER: NUMBER, ...}} (YAML), e.g. "
                         f"{key}=\"{{fc1: {example}}}\"")
    if number is not None:
        return _number(key, value, number)
    if bool in alts:
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, got {value!r}")
        return value
    if Path in alts:
        if not isinstance(value, (str, Path)):
            raise ValueError(f"{key} must be a path, got {value!r}")
        return str(value)
    if str in alts and not isinstance(value, str):
        raise ValueError(f"{key} must be a name, got {value!r}")
    return value


def _number(key: str, value: Any, kind: type) -> int | float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and kind is int and float(value) != int(value):
        ok = False
    if not ok:
        raise ValueError(f"{key} must be {'an integer' if kind is int else 'a number'}, "
                         f"got {value!r}")
    return kind(value)


def build_pruner(method: str, args: Mapping[str, Any]) -> Any:
    """The pruner ``method`` from the registry, its options checked and coerced
    (:func:`coerce_option`); nothing is loaded or pruned yet.

    Args:
        method: a pruner's name (``thrifty methods`` lists them under ``pruner``).
        args: its hyper-parameters by name (values as Python or YAML-parsed values).

    Raises:
        ValueError: an unknown pruner (listing the pruners), an option it does not have
            (listing those it has) or a bad value (naming the option).
    """
    known = list(get_method(method, PRUNER).params)
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise ValueError(f"unknown {method} option(s) {', '.join(unknown)}; known: "
                         f"{', '.join(known)}")
    opts = {k: coerce_option(method, k, v) for k, v in args.items()}
    return build_method(method, opts, PRUNER)


def run_pruner(pruner: Any, model: nn.Module,
               data: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]) -> PruneResult:
    """Prune ``model`` with a built pruner (the model is not changed).

    Args:
        pruner: from :func:`build_pruner`. When its ``needs_inputs`` is true, its
            ``config.per_class`` and ``config.seed`` choose the activation subset.
        model: the trained network.
        data: ``data(per_class, seed) -> (inputs, labels)``, the class-balanced activation
            subset (called only for pruners that need inputs).
    """
    if not pruner.needs_inputs:
        return pruner.prune(model)
    inputs, labels = data(pruner.config.per_class, pruner.config.seed)
    return pruner.prune(model, inputs, labels)


def run_method(method: str, model: nn.Module, args: Mapping[str, Any],
               data: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]) -> PruneResult:
    """Prune ``model`` with the pruner ``method`` and hyper-parameters ``args``.

    Args:
        method: a pruner's name.
        model: the trained network (not changed).
        args: the pruner's hyper-parameters.
        data: ``data(per_class, seed)`` gives the activation subset (pruners that need
            inputs: MINT and SNACS).
    """
    return run_pruner(build_pruner(method, args), model, data)


def retrain_command(cfg, out: Path) -> str:
    """The ``thrifty train`` command that retrains the pruned model once."""
    where = (f"--workload {shlex.quote(cfg.workload)}" if cfg.workload
             else f"--dataset {cfg.dataset} --model {cfg.model}")
    files = (f"--weights {shlex.quote(str(out / 'weights.pt'))} "
             f"--masks {shlex.quote(str(out / 'masks.pt'))} "
             f"--run-name {shlex.quote(out.name + '-retrain')}")
    if cfg.dataset == "workload":  # a factory gives data and model (and no limits)
        return f"thrifty train {where} {files}"
    if cfg.workload and cfg.model != (_preset(cfg.workload).get("model")):
        where += f" --model {cfg.model}"
    if cfg.train_limit:
        where += f" --train-limit {cfg.train_limit}"
    for key, value in cfg.model_args.items():
        text = json.dumps(value).replace(" ", "")
        where += f" --model-arg {shlex.quote(f'{key}={text}')}"
    return f"thrifty train {where} {files}"


def _preset(workload: str) -> dict[str, Any]:
    from thrifty.engine.config import WORKLOADS

    return WORKLOADS.get(workload, {})


def prune_command(method: str, source: str | Path, out: str | Path,
                  method_args: Mapping[str, Any] | None = None,
                  overrides: Mapping[str, Any] | None = None, evaluate: bool = True,
                  progress: bool = True) -> tuple[dict[str, Any], str]:
    """Everything ``thrifty prune`` does; returns ``(report, retrain command)``.

    Args:
        method: a pruner's name (``thrifty methods`` lists them under ``pruner``).
        source: run folder, checkpoint or weights file.
        out: output folder.
        method_args: the method's hyper-parameters (default none: its defaults); they are
            checked before anything is read.
        overrides: run options (``workload``, ``model``, ``dataset``, ``data_root``) that
            win over the checkpoint's (default none). The data split and ``train_limit``
            subset follow the checkpoint's run seed; the method's own seed is a method
            argument.
        evaluate: measure test accuracy before and after pruning (default ``True``).
        progress: progress bars (default ``True``).
    """
    from thrifty.engine.checkpoint import write_json

    existing = [n for n in ("masks.pt", "weights.pt", "prune.json") if (Path(out) / n).exists()]
    if existing:
        raise FileExistsError(f"{out} already holds an earlier prune's {', '.join(existing)}: "
                              "thrifty prune does not overwrite them; choose another --out "
                              "(or move them away)")
    args = dict(method_args or {})
    if "progress" in option_types(method):  # also refuses an unknown pruner up front
        args.setdefault("progress", progress)
    pruner = build_pruner(method, args)  # options checked before any file is read
    state, source_config = read_source(source)
    cfg = resolve_config(source_config, overrides or {})
    train, test = load_train_test(cfg)
    num_classes = run_classes(train)
    model = load_model(cfg, state, num_classes, train)
    result = run_pruner(pruner, model, lambda m, s: sample_inputs(train, m, s))
    out = Path(out)
    report = {**result.report, "source": str(source), "workload": cfg.workload,
              "dataset": cfg.dataset, "model": cfg.model}
    if evaluate:
        before = test_accuracy(model, test)
        report["test_accuracy"] = {"unpruned": before,
                                   "pruned": test_accuracy(apply_masks(model, result.masks),
                                                           test)}
    command = retrain_command(cfg, out)
    report["retrain"] = command
    save_masks(out / "masks.pt", result.masks,
               {k: report[k] for k in ("method", "total_pruned_share", "source")})
    torch.save(state, out / "weights.pt")
    write_json(out / "prune.json", report)
    return report, command


def format_table(report: Mapping[str, Any]) -> str:
    """A per-layer table (pruned share; ``no-input``: filters left without any input; ``ALL``:
    the layer is cut 100%), the total, time, accuracies and the report's warnings."""
    width = max([16, *(len(n) + 2 for n in report["layers"])])
    rows = [f"{'layer':<{width}}{'weights':>10}{'groups':>10}{'pruned':>9}{'no-input':>10}"]
    for name, v in report["layers"].items():
        groups = "x".join(map(str, v["groups"])) if v.get("groups") else "-"
        flag = " ALL" if v["pruned_share"] >= 1.0 else ""
        rows.append(f"{name:<{width}}{v['weights']:>10}{groups:>10}"
                    f"{100 * v['pruned_share']:>8.2f}%{v.get('inputless_filters', 0):>10}{flag}")
    rows.append(f"{report['method']}: {100 * report['total_pruned_share']:.2f}% of all Conv + "
                f"Linear weights pruned in {report['time_s']:.1f}s")
    acc = report.get("test_accuracy")
    if acc:
        rows.append(f"test accuracy: {100 * acc['unpruned']:.2f}% unpruned, "
                    f"{100 * acc['pruned']:.2f}% pruned before retraining")
    rows += [f"warning: {w}" for w in report.get("warnings", [])]
    return "\n".join(rows)
