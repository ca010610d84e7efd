"""The registry of data-reduction methods by name.

Each method lives in one file and registers itself here with the place it acts in:
``reducer`` (offline), ``sampler`` (per epoch) or ``selector`` (inside a batch). The engine,
the CLI (``--method NAME --method-arg KEY=VALUE``) and the benchmark find methods only
through this registry, so a new method plugs in without touching them.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PLACES = ("reducer", "sampler", "selector")

# Packages whose modules register methods on import (every module in them is imported).
METHOD_PACKAGES = ["thrifty.offline", "thrifty.sampling", "thrifty.selection",
                   "thrifty.pruning"]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    place: str
    factory: Callable[..., Any]
    summary: str


METHODS: dict[str, MethodSpec] = {}


def register_method(name: str, place: str, summary: str = ""):
    """Class decorator registering a method under ``name`` for ``place``."""
    if place not in PLACES:
        raise ValueError(f"place must be one of {PLACES}, got {place!r}")

    def deco(cls):
        doc = (cls.__doc__ or "").strip().splitlines()
        METHODS[name] = MethodSpec(name, place, cls, summary or (doc[0] if doc else ""))
        return cls

    return deco


def _load_all() -> None:
    for pkg_name in METHOD_PACKAGES:
        try:
            pkg = importlib.import_module(pkg_name)
        except ModuleNotFoundError as exc:
            if exc.name == pkg_name:  # package not written yet
                continue
            raise
        for info in pkgutil.iter_modules(pkg.__path__, pkg_name + "."):
            importlib.import_module(info.name)


def available_methods() -> dict[str, MethodSpec]:
    _load_all()
    return dict(sorted(METHODS.items()))


def split_method_args(names: list[str], args: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Assign ``KEY=VALUE`` / ``METHOD.KEY=VALUE`` arguments to methods.

    An argument without a method prefix goes to the only method; with several methods the
    prefix is required.
    """
    per: dict[str, dict[str, Any]] = {n: {} for n in names}
    for key, value in args.items():
        if "." in key:
            method, _, sub = key.partition(".")
            if method not in per:
                raise ValueError(f"method argument {key!r} names method {method!r}, which is "
                                 f"not in this run (methods: {', '.join(names) or 'none'})")
            per[method][sub] = value
        elif len(names) == 1:
            per[names[0]][key] = value
        else:
            raise ValueError(f"method argument {key!r} is ambiguous with "
                             f"{len(names)} methods; write it as METHOD.{key}=VALUE")
    return per


def build_method(name: str, kwargs: dict[str, Any]):
    """Instantiate a method by name with its hyper-parameters (clear errors on bad input)."""
    methods = available_methods()
    if name not in methods:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(methods)} "
                         "(see `thrifty methods`)")
    spec = methods[name]
    params = inspect.signature(spec.factory).parameters
    bad = [k for k in kwargs if k not in params]
    if bad:
        accepted = ", ".join(p for p in params if p != "self")
        raise ValueError(f"method {name!r} has no hyper-parameter {', '.join(bad)}; "
                         f"it accepts: {accepted}")
    return spec.factory(**kwargs)


def build_pieces(names: list[str], args: dict[str, Any]) -> dict[str, Any]:
    """Build the reducer/sampler/selector of a run from method names; at most one per place."""
    per = split_method_args(names, args)
    pieces: dict[str, Any] = {}
    for name in names:
        obj = build_method(name, per[name])
        # a method may bring pieces for other places (IDS's easy->hard switch sampler)
        extra = obj.companions() if hasattr(obj, "companions") else {}
        for place, piece in [(METHODS[name].place, obj), *extra.items()]:
            if place in pieces:
                raise ValueError(f"methods {pieces[place].name!r} and {piece.name!r} both act "
                                 f"as the {place}; a run can have one of each place")
            pieces[place] = piece
    return pieces
