"""The layers of docs/architecture.md, checked on the source: which package may import
which (every import statement, function-level ones included)."""

from __future__ import annotations

import ast
import dataclasses
import sys
from pathlib import Path

import pytest

from thrifty.engine import TrainContext

SRC = Path(__file__).resolve().parents[1] / "src" / "thrifty"
METHOD_PACKAGES = ("offline", "sampling", "selection", "pruning")
LOWER = ("utils", "data", "models", "metrics")


def _imports(path: Path) -> list[str]:
    """Every module a file imports (absolute names), with ``from X import Y`` as ``X.Y``."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return names


def _files(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


def _offenders(packages: tuple[str, ...], forbidden: tuple[str, ...],
               allowed: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    out = []
    for package in packages:
        for path in _files(package):
            rel = str(path.relative_to(SRC))
            for name in _imports(path):
                if any(name == f or name.startswith(f + ".") for f in forbidden) and \
                        name not in (allowed or {}).get(rel, ()):
                    out.append(f"{rel} imports {name}")
    return out


def test_the_engine_imports_no_method_package():
    forbidden = tuple(f"thrifty.{p}" for p in METHOD_PACKAGES)
    # the one registry lookup of method names, in the run's assembly
    allowed = {"engine/assembly.py": ("thrifty.methods", "thrifty.methods.build_pieces")}
    assert _offenders(("engine",), forbidden + ("thrifty.methods",), allowed) == []


def test_no_method_sees_the_trainer():
    forbidden = ("thrifty.engine.loop", "thrifty.engine.Trainer", "thrifty.engine.warmup.Trainer")
    assert _offenders(METHOD_PACKAGES, forbidden) == []
    for package in METHOD_PACKAGES:
        for path in _files(package):
            assert "ctx.trainer" not in path.read_text(), path


def test_lower_layers_import_no_method_package_and_no_engine():
    forbidden = tuple(f"thrifty.{p}" for p in METHOD_PACKAGES) + ("thrifty.methods",)
    assert _offenders(LOWER, forbidden) == []
    assert _offenders(("utils",), ("thrifty.engine",)) == []


def test_utils_import_only_utils_the_standard_library_and_numeric_libraries():
    allowed = {"torch", "numpy", "scipy"}
    for path in _files("utils"):
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "thrifty":
                assert name.startswith("thrifty.utils"), (path.name, name)
            else:
                assert top in sys.stdlib_module_names or top in allowed, (path.name, name)


# One method in two places: ASSIST's epochwise sampler applies the batchwise filter's core.
SAME_METHOD = {"sampling/assist_epochwise.py": (
    "thrifty.selection.assist", "thrifty.selection.assist.accuracy_filter")}


@pytest.mark.parametrize("package", METHOD_PACKAGES)
def test_method_packages_do_not_import_each_other_except_one_method_in_two_places(package):
    """A method package may use the neutral layer and the engine's contract, not another
    method package (IDS's sampler lives with IDS)."""
    others = tuple(f"thrifty.{p}" for p in METHOD_PACKAGES if p != package)
    assert _offenders((package,), others, SAME_METHOD) == []


def test_the_context_is_typed_and_hides_the_driver():
    fields = {f.name: f.type for f in dataclasses.fields(TrainContext)}
    assert "trainer" not in fields and "info" not in fields
    assert not [name for name, kind in fields.items() if kind in ("Any", "typing.Any")]
    for name in ("model", "device", "record", "score", "selection_pass", "run_dir", "log",
                 "labels", "classes", "epoch", "num_classes", "warmup"):
        assert name in fields


def _runtime_imports(path: Path) -> set[str]:
    """The engine modules a file imports when it runs (function-level imports included,
    ``if TYPE_CHECKING:`` blocks left out)."""
    tree = ast.parse(path.read_text())
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skipped |= {id(n) for b in node.body for n in ast.walk(b)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and \
                node.module.startswith("thrifty.engine."):
            out.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[2] for a in node.names
                    if a.name.startswith("thrifty.engine.")}
    return out


def test_no_circle_between_engine_files():
    graph = {p.stem: _runtime_imports(p) - {p.stem} for p in _files("engine")
             if p.stem != "__init__"}

    def reach(start: str) -> set[str]:
        seen, todo = set(), list(graph.get(start, ()))
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo += list(graph.get(m, ()))
        return seen

    assert [m for m in graph if m in reach(m)] == []
    assert "core" in graph["loop"] and "loop" not in reach("core")


def test_the_engine_loop_stays_small():
    assert len((SRC / "engine" / "loop.py").read_text().splitlines()) <= 500
