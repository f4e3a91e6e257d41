"""The package's shape: imports point one way, and importing sqlml stays cheap."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "sqlml"
HEAVY = ("sklearn", "shap", "fairlearn", "optuna", "matplotlib", "pandas", "skops", "imblearn")


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imported_modules(path: pathlib.Path, known: set[str]) -> set[str]:
    """sqlml modules ``path`` imports anywhere (inside functions too), except under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in known and m != module_name(path)}


def import_graph() -> dict[str, set[str]]:
    paths = [p for p in PACKAGE.rglob("*.py")]
    known = {module_name(p) for p in paths}
    return {module_name(p): imported_modules(p, known) for p in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_inside_sqlml():
    graph = import_graph()
    # A subpackage's __init__ re-exporting its modules is not a dependency of those modules on it.
    assert cycles(graph) == []


@pytest.mark.parametrize("code", ["import sqlml", "import sqlml.cli"])
def test_importing_sqlml_loads_no_heavy_library(code):
    probe = f"import sys; {code}; print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_sqlml_help_loads_no_heavy_library():
    probe = ("import sys, runpy; sys.argv = ['sqlml', '--help']\n"
             "try:\n    from sqlml.cli import main; main()\nexcept SystemExit:\n    pass\n"
             f"print('LOADED', sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "Usage:" in out and out.strip().endswith("LOADED []")


def test_every_function_the_planner_accepts_has_a_handler():
    from sqlml.functions import HANDLERS
    from sqlml.sql import catalog
    from sqlml.sql.dialect import ML_FUNCTIONS

    assert set(HANDLERS) == set(catalog.AVAILABLE)
    assert catalog.AVAILABLE <= set(ML_FUNCTIONS) and catalog.MODEL_ONLY <= catalog.AVAILABLE


#: docs/architecture.md's layers, lowest first: a module may import its own layer's package and lower layers.
LAYERS = [
    ("sqlml.errors",),
    ("sqlml.sql", "sqlml.engines", "sqlml.datasets"),
    ("sqlml.model",),
    ("sqlml.train", "sqlml.registry"),
    ("sqlml.functions",),
    ("sqlml.views",),
    ("sqlml.executor",),
    ("sqlml.connection",),
    ("sqlml.cli", "sqlml.dbt", "sqlml"),
]


def _place(module: str) -> tuple[int, str]:
    """(layer, package) of a module: the longest prefix listed in LAYERS."""
    matches = [(len(p), level, p) for level, packages in enumerate(LAYERS) for p in packages
               if module == p or module.startswith(p + ".")]
    _, level, package = max(matches)
    return level, package


def test_imports_point_down_the_layers():
    upward = []
    for module, targets in import_graph().items():
        level, package = _place(module)
        for target in targets:
            target_level, target_package = _place(target)
            if target_package == "sqlml":  # the front ends use the public API
                continue
            if target_level > level or (target_level == level and target_package != package):
                upward.append(f"{module} -> {target}")
    assert upward == []
