"""Names of a package imported on first use, so that the command line's help and argument
errors do not wait for PyTorch (used by ``thrifty.engine`` and ``thrifty.bench``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, where: dict[str, str], namespace: dict[str, Any]
                 ) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package``: name ``n`` is imported from
    ``package + "." + where[n]`` when first asked for and kept in ``namespace``.

    Args:
        package: the package's dotted name.
        where: exported name -> the submodule that defines it.
        namespace: the package's ``globals()``.
    """
    names = sorted(where)

    def getattr_(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        namespace[name] = value
        return value

    return names, getattr_, lambda: names
