"""The configuration of one training run, its presets (the standard workloads), and
loading from YAML/TOML files.

Precedence, lowest first: field defaults < workload preset < config file < command line.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from thrifty.workload import factory_name, is_factory


def _f(default: Any, help: str, **kw) -> Any:  # noqa: A002
    if isinstance(default, (list, dict)):
        def copy(d: Any = default) -> Any:
            return type(d)(d)

        return field(default_factory=copy, metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class RunConfig:
    """Everything that defines a training run. Each field is also a ``thrifty train`` flag
    (underscores become dashes)."""

    workload: str | None = _f(None, "standard workload preset (fmnist-cnn, digits-mlp, "
                                    "tabular-mlp, seq-cnn, cifar10-resnet18, "
                                    "cifar100-resnet18) or your own: "
                                    "FILE.py:FUNCTION or package.module:FUNCTION returning "
                                    "a thrifty.Workload")
    dataset: str = _f("fashion-mnist", "dataset: fashion-mnist, cifar10, cifar100, imagefolder, "
                                       "digits, synthetic, tabular, sequences")
    data_root: str | None = _f(None, "folder holding the dataset (default: the standard places)")
    download: bool = _f(False, "allow torchvision to download a missing dataset")
    augment: bool | None = _f(None, "training augmentation (default: the dataset's own)")
    train_limit: int | None = _f(None, "train on a fixed random subset of this many samples "
                                       "(quick runs)")
    test_limit: int | None = _f(None, "evaluate on a fixed random subset of this many samples")
    model: str = _f("cnn", "model: cnn, mlp, seqcnn, resnet18, resnet34, resnet50, "
                           "mobilenetv2, tv:<torchvision name>")
    model_args: dict[str, Any] = _f({}, "model hyper-parameters, KEY=VALUE (--model-arg "
                                    "hidden=[256,128] for mlp)")
    weights: str | None = _f(None, "path of a state dict to initialise the model from")
    epochs: int = _f(10, "training epochs")
    batch_size: int = _f(128, "training batch size (rho)")
    forward_batch_size: int | None = _f(None, "size of the forward (raw) batches a selector "
                                              "chooses from (default: batch_size)")
    eval_batch_size: int = _f(1024, "batch size of evaluation and selection forward passes")
    optimizer: str = _f("sgd", "optimizer: sgd or adamw")
    lr: float = _f(0.05, "learning rate")
    momentum: float = _f(0.9, "SGD momentum")
    nesterov: bool = _f(True, "SGD Nesterov momentum")
    weight_decay: float = _f(5e-4, "weight decay")
    label_noise: float = _f(0.0, "share of training labels replaced by another class, in "
                            "[0, 1) (seeded by --seed; the test set is untouched)")
    label_smoothing: float = _f(0.0, "label smoothing of the training loss, in [0, 1) "
                                "(CAPER trains with it; 0: plain cross-entropy)")
    masks: str | None = _f(None, "path of a pruning-mask file (from `thrifty prune`) applied to "
                           "the model before training; masked weights stay zero (retraining)")
    schedule: str = _f("cosine", "per-epoch LR schedule: constant, step, multistep, cosine, "
                                 "exponential")
    step_size: int = _f(30, "epochs between decays of the step schedule")
    milestones: list[int] = _f([], "epochs of the multistep schedule")
    gamma: float = _f(0.1, "decay factor of step/multistep/exponential schedules")
    amp: str = _f("off", "mixed precision: off, auto (fp16 on CUDA, off on CPU), bf16, fp16")
    selection_amp: str = _f("same", "mixed precision of the selection forward passes only "
                                    "(selectors' and samplers' scoring; not training, not "
                                    "evaluation): same (as --amp), off, bf16, fp16")
    device: str = _f("cpu", "torch device: cpu, cuda, cuda:1, auto")
    threads: int | None = _f(None, "CPU threads for torch (default: torch's choice)")
    seed: int = _f(0, "random seed (model init, data order, methods)")
    method: list[str] = _f([], "data-reduction method(s) by name; see `thrifty methods`")
    method_args: dict[str, Any] = _f({}, "method hyper-parameters, KEY=VALUE or METHOD.KEY=VALUE")
    train_stats_every: int = _f(0, "compute train-set loss statistics every k epochs "
                                   "(0: final epoch only; -1: never, e.g. a warm-up copy)")
    checkpoint_every: int = _f(1, "save a checkpoint every k epochs (0: only on interrupt "
                                  "and at the end)")
    out_dir: str = _f("runs", "folder for run folders (result.json, checkpoint.pt)")
    run_name: str | None = _f(None, "name of the run folder (default: derived from the config)")
    num_workers: int = _f(0, "DataLoader workers for on-disk datasets")
    progress: bool = _f(True, "show a progress bar per epoch")
    track: str = _f("none", "mirror per-epoch numbers to tensorboard or mlflow (optional "
                            "packages); result.json is always written")
    attack: str = _f("none", "robust accuracy at the end (and where train_stats_every "
                             "asks) under an attack: none, fgsm, pgd (optional extra "
                             "thrifty[attack])")
    attack_eps: float = _f(0.1, "the attack's L-inf budget, in the model's input units")
    attack_steps: int = _f(10, "PGD's iterations")
    attack_step_size: float | None = _f(None, "PGD's step (default: attack_eps / 4)")
    attack_limit: int | None = _f(1000, "attack a fixed random subset of this many test "
                                        "samples (default 1000; at least the test set's "
                                        "size: all of it)")
    energy: str = _f("auto", "energy counter: auto (NVML on CUDA, else RAPL, else a labelled "
                             "estimate), rapl, nvml, estimate, off")

    def validate(self, source: str | None = None) -> RunConfig:
        """Check every option's type (:func:`check_option`) and range; raise
        ``ValueError`` naming the option, ``source`` (a config file) when given, and the
        fix."""
        self.method = method_names(self.method)
        # YAML reads a bare `off` as false: `amp: off` in a config file means "off"
        self.amp = "off" if self.amp is False else self.amp
        self.selection_amp = "off" if self.selection_amp is False else self.selection_amp
        for f in dataclasses.fields(self):
            setattr(self, f.name, check_option(f.name, getattr(self, f.name), source))
        checks = [
            (self.threads is None or self.threads >= 1,
             f"threads must be at least 1 (or left out for torch's choice), got "
             f"{self.threads}"),
            (self.num_workers >= 0, f"num_workers must be 0 or more, got {self.num_workers}"),
            (0 <= self.seed < 2 ** 32, f"seed must be in [0, 2**32), got {self.seed}"),
            (all(m >= 0 for m in self.milestones),
             f"milestones are epochs, 0 or more, got {self.milestones}"),
            (self.step_size >= 1, f"step_size must be at least 1, got {self.step_size}"),
            (0.0 <= self.momentum <= 1.0, f"momentum must be in [0, 1], got {self.momentum}"),
            (self.weight_decay >= 0.0, f"weight_decay must be 0 or more, got "
             f"{self.weight_decay}"),
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}"),
            (self.eval_batch_size >= 1, "eval_batch_size must be at least 1"),
            (self.forward_batch_size is None or self.forward_batch_size >= 1,
             "forward_batch_size must be at least 1"),
            (self.lr > 0, f"lr must be positive, got {self.lr}"),
            (isinstance(self.model_args, dict),
             "model_args must be a mapping of hyper-parameter: value"),
            (isinstance(self.label_noise, (int, float)) and not isinstance(
                self.label_noise, bool) and 0.0 <= self.label_noise < 1.0,
             f"label_noise is the share of training labels replaced, in [0, 1), got "
             f"{self.label_noise!r}"),
            (0.0 <= self.label_smoothing < 1.0,
             f"label_smoothing must be in [0, 1), got {self.label_smoothing}"),
            (self.amp in ("off", "auto", "bf16", "fp16"),
             f"amp must be off, auto, bf16 or fp16, got {self.amp!r}"),
            (self.selection_amp in ("same", "off", "bf16", "fp16"),
             f"selection_amp must be same, off, bf16 or fp16, got {self.selection_amp!r}"),
            (self.train_stats_every >= -1, "train_stats_every must be >= 0, or -1 for never"),
            (self.track in ("none", "tensorboard", "mlflow"),
             f"track must be none, tensorboard or mlflow, got {self.track!r}"),
            (self.checkpoint_every >= 0, "checkpoint_every must be >= 0"),
            (self.attack in ("none", "fgsm", "pgd"),
             f"attack must be none, fgsm or pgd, got {self.attack!r}"),
            (self.attack_eps > 0, f"attack_eps must be positive, got {self.attack_eps}"),
            (self.attack_steps >= 1, f"attack_steps must be at least 1, got "
             f"{self.attack_steps}"),
            (self.attack_step_size is None or self.attack_step_size > 0,
             f"attack_step_size must be positive, got {self.attack_step_size}"),
            (self.attack_limit is None or self.attack_limit >= 1,
             f"attack_limit must be at least 1 (or none for the whole test set), got "
             f"{self.attack_limit}"),
            (self.train_limit is None or self.train_limit > 0, "train_limit must be positive"),
            (self.test_limit is None or self.test_limit > 0, "test_limit must be positive"),
            (self.gamma > 0 or self.schedule not in ("step", "multistep", "exponential"),
             f"gamma (the LR decay factor of the {self.schedule} schedule) must be positive, "
             f"got {self.gamma}: a negative factor would make the learning rate negative"),
            (not self.method_args or bool(self.method),
             f"method arguments {sorted(self.method_args)} are given without a method: add "
             "--method NAME (or drop the arguments)"),
            (self.run_name is None or (self.run_name not in ("", ".", "..")
                                       and "/" not in self.run_name
                                       and "\\" not in self.run_name),
             f"run_name must be a folder name inside --out-dir, got {self.run_name!r}: use "
             "--out-dir for the parent folder"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"{source}: {msg}" if source else msg)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def default_run_name(self) -> str:
        base = self.workload or f"{self.dataset}-{self.model}"
        if is_factory(base):
            base = factory_name(base)
        methods = "+".join(self.method) if self.method else "baseline"
        masked = "-masked" if self.masks else ""  # retraining a pruned model
        return f"{base}{masked}-{methods}-s{self.seed}"


def budget_options(config: RunConfig, share: float) -> dict[str, Any] | None:
    """Run options of the budget baseline that trains ``share`` of ``config``'s epochs
    (at least 1) with every per-epoch schedule spanning the shorter run: cosine by its
    horizon, step/multistep with step size and milestones scaled, exponential with the
    same total decay. ``None`` when the share rounds to the full run."""
    epochs = max(1, round(share * config.epochs))
    if epochs >= config.epochs:
        return None
    scale = epochs / config.epochs
    opts: dict[str, Any] = {"epochs": epochs}
    if config.schedule == "step":
        opts["step_size"] = max(1, round(config.step_size * scale))
    elif config.schedule == "multistep":
        # a list, not a set: milestones that land on one epoch decay there that many times
        opts["milestones"] = sorted(max(1, round(m * scale)) for m in config.milestones)
    elif config.schedule == "exponential":
        opts["gamma"] = config.gamma ** (1 / scale)
    return opts


_HINTS = typing.get_type_hints(RunConfig)


def _kind(hint: Any) -> tuple[Any, bool]:
    """``(base type, accepts None)`` of an option's annotation."""
    args = typing.get_args(hint)
    if type(hint) is types.UnionType or typing.get_origin(hint) is typing.Union:
        rest = [a for a in args if a is not type(None)]
        return rest[0], len(rest) < len(args)
    return hint, False


def check_option(name: str, value: Any, source: str | None = None) -> Any:
    """``value`` of option ``name`` if it has the option's declared type (an ``int`` for a
    ``float`` becomes a ``float``); else ``ValueError`` naming the option, the ``source``
    (a config file) when given, what was expected and the fix. Text is never taken for a
    number or a truth value (``nesterov: "false"`` would be true), and numbers must be
    finite."""
    hint = _HINTS[name]
    base, optional = _kind(hint)
    where = f"{source}: " if source else ""
    if value is None and optional:
        return None

    def refuse(what: str, fix: str = "") -> ValueError:
        return ValueError(f"{where}option {name!r} must be {what}, got {value!r} "
                          f"({type(value).__name__}){fix}")

    origin = typing.get_origin(base)
    if base is bool:
        if not isinstance(value, bool):
            raise refuse("true or false", ": write true or false without quotes")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise refuse("a whole number", " (no quotes, no decimal point)")
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise refuse("a number", " (no quotes)")
        if not math.isfinite(value):
            raise refuse("a finite number")
        return float(value)
    if base is str:
        if not isinstance(value, str):
            raise refuse("text", f": write {name}: \"...\"" if source else "")
        return value
    if origin is list:
        (item,) = typing.get_args(base)
        if isinstance(value, tuple):
            value = list(value)
        if name == "method" and isinstance(value, str):
            return value
        if not isinstance(value, list):
            raise refuse(f"a list of {item.__name__}", f": write {name}: [...]")
        for v in value:
            ok = isinstance(v, item) and not isinstance(v, bool)
            if not ok:
                raise refuse(f"a list of {item.__name__}", f" ({v!r} is not)")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise refuse("a mapping of key: value")
        return value
    return value


#: A config file larger than this is refused before it is parsed.
MAX_CONFIG_BYTES = 1 << 20


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases (``*name``): a few hundred bytes of nested aliases expand to
    gigabytes (a "billion laughs" file); thrifty's config files never need them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not accepted in thrifty's files: write the "
                "value out", event.start_mark)
        return super().compose_node(parent, index)


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML ``text`` (no aliases); a syntax error names ``source`` and the line."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValueError(f"{source}{line}: not valid YAML: {problem}") from None


def read_text_limited(path: Path, what: str) -> str:
    """The text of ``path``, refused past :data:`MAX_CONFIG_BYTES` or when not UTF-8."""
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ValueError(f"{path}: {size:,} bytes is too large for a {what} (at most "
                         f"{MAX_CONFIG_BYTES:,}): is it the right file?")
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file (a {what} is YAML or TOML)") from None


WORKLOADS: dict[str, dict[str, Any]] = {
    "fmnist-cnn": dict(dataset="fashion-mnist", model="cnn", optimizer="sgd", lr=0.05,
                       momentum=0.9, nesterov=True, weight_decay=5e-4, batch_size=128,
                       schedule="cosine", epochs=10),
    "digits-mlp": dict(dataset="digits", model="mlp", optimizer="sgd", lr=0.05, momentum=0.9,
                       nesterov=True, weight_decay=5e-4, batch_size=64, schedule="cosine",
                       epochs=10),
    # generated offline (thrifty.data.tasks), unlike fmnist-cnn in data, model and optimizer
    "tabular-mlp": dict(dataset="tabular", model="mlp", model_args={"hidden": [256, 128]},
                        optimizer="adamw", lr=2e-3, weight_decay=1e-2, batch_size=256,
                        schedule="cosine", epochs=10),
    "seq-cnn": dict(dataset="sequences", model="seqcnn", model_args={"width": 32},
                    optimizer="adamw", lr=5e-4, weight_decay=1e-4, batch_size=128,
                    schedule="cosine", epochs=10),
    "cifar10-resnet18": dict(dataset="cifar10", model="resnet18", optimizer="sgd", lr=0.1,
                             momentum=0.9, nesterov=False, weight_decay=5e-4, batch_size=128,
                             schedule="multistep", milestones=[60, 120, 160], gamma=0.2,
                             epochs=200, amp="auto", device="auto"),
    "cifar100-resnet18": dict(dataset="cifar100", model="resnet18", optimizer="sgd", lr=0.1,
                              momentum=0.9, nesterov=False, weight_decay=5e-4, batch_size=128,
                              schedule="multistep", milestones=[60, 120, 160], gamma=0.2,
                              epochs=200, amp="auto", device="auto"),
}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or TOML (``.toml``) run config into a dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    text = read_text_limited(path, "config file")
    if path.suffix == ".toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML: {exc}") from None
    else:
        data = load_yaml(text, str(path))
    data = data or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file must be a mapping of option: value")
    out = {}
    for k, v in data.items():
        if not isinstance(k, str):
            raise ValueError(f"{path}: option names are text, got {k!r}")
        out[k.replace("-", "_")] = v
    return out


def method_names(value: Any) -> list[str]:
    """Method names from ``"rpc"``, ``"infobatch+stale-sb"`` (the benchmarks' spelling) or a
    list of either: ``["infobatch", "stale-sb"]``. Empty names (``"rpc+"``) are refused."""
    items = [value] if isinstance(value, str) else list(value or [])
    names = []
    for item in items:
        for name in (item.split("+") if isinstance(item, str) else [item]):
            name = name.strip() if isinstance(name, str) else name
            if not isinstance(name, str) or not name:
                raise ValueError(f"method names must be non-empty text (NAME or NAME+NAME), "
                                 f"got {value!r}")
            names.append(name)
    return names


def make_config(overrides: dict[str, Any] | None = None, config_file: str | Path | None = None
                ) -> RunConfig:
    """Build a validated :class:`RunConfig` from a file and explicit overrides.

    Precedence: defaults < the ``workload`` preset < a recipe named by ``method`` (see
    :mod:`thrifty.recipes`) < the file < ``overrides``.

    Args:
        overrides: option values that win over everything (e.g. from the command line).
        config_file: optional YAML/TOML file.
    """
    explicit: dict[str, Any] = read_config_file(config_file) if config_file else {}
    names = {f.name for f in dataclasses.fields(RunConfig)}
    for source, values in ((str(config_file) if config_file else None, explicit),
                           (None, overrides or {})):
        unknown = sorted(set(values) - names)
        if unknown:
            where = f"{source}: " if source else ""
            raise ValueError(f"{where}unknown config option(s): {', '.join(unknown)}. "
                             "See `thrifty train --help` for the list.")
        for k, v in values.items():
            if k in ("amp", "selection_amp") and v is False:
                continue  # YAML's bare `off`
            check_option(k, v, source)
    explicit.update(overrides or {})
    if "method" in explicit:
        explicit["method"] = method_names(explicit["method"])
        from thrifty.recipes import SHARE_KEY, expand_recipe  # "--method fast": a recipe
        explicit = expand_recipe(explicit)
        share = explicit.pop(SHARE_KEY, None)
    else:
        share = None
    workload = explicit.get("workload")
    preset: dict[str, Any] = {}
    if is_factory(workload):  # your own: FILE.py:FUNCTION
        from thrifty.workload import NOT_WORKLOAD_OPTIONS, resolve_factory, workload_preset

        unset = {**RunConfig().to_dict(), "dataset": "workload", "model": "workload"}
        given = sorted(k for k in set(explicit) & set(NOT_WORKLOAD_OPTIONS) - {"workload"}
                       if explicit[k] != unset[k])  # a saved config repeats the markers
        if given:
            raise ValueError(f"{', '.join(given)} given with the workload {workload!r}: the "
                             "workload's factory gives the data and the model; leave them out")
        explicit["workload"] = resolve_factory(workload)
        preset = workload_preset(explicit["workload"])
    elif workload is not None:
        if workload not in WORKLOADS:
            raise ValueError(f"unknown workload {workload!r}; known: {', '.join(WORKLOADS)}, "
                             "or your own as FILE.py:FUNCTION")
        preset = WORKLOADS[workload]
    config = RunConfig(**{**preset, **explicit}).validate()
    if share is not None:  # a recipe at a share of the epochs: the shorter run
        config = RunConfig(**{**config.to_dict(),
                              **(budget_options(config, share) or {})}).validate()
    return config
