"""The package's shape: imports point one way, and importing sqlml stays cheap."""

from __future__ import annotations

import ast
import pathlib
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest

import sqlml

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


# ---------------------------------------------------------------------------------------------------
# The layer table of docs/architecture.md is the one source: this test reads it, and every module of
# the package must be placed in one of its rows.

ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"
ROW = re.compile(r"^\|\s*(`[^|]+)\|[^|]*\|\s*([^|]+?)\s*\|\s*$")


@dataclass
class Layer:
    """One row of the table: the entries it places (``sql/`` → the package sqlml.sql, ``views.py`` →
    the module sqlml.views, ``__init__.py`` → the package's own ``sqlml/__init__.py``) and the entries
    its modules may import, directly or through those entries' own rows."""

    entries: list[str]
    may_import: set[str]


def entry_modules(entry: str) -> tuple[str, bool]:
    """(module or package name, whether it covers the modules under it) of a table entry."""
    if entry == "__init__.py":
        return "sqlml", False
    if entry.endswith("/"):
        return "sqlml." + entry.rstrip("/").replace("/", "."), True
    return "sqlml." + entry.removesuffix(".py").replace("/", "."), False


def layer_table(text: str) -> list[Layer]:
    """The rows of docs/architecture.md's layer table, top (lowest) first. ``may import`` names other
    rows' entries without ``.py`` or ``/`` (``errors, sql``), or says ``nothing`` or ``everything above``."""
    layers: list[Layer] = []
    for line in text.splitlines():
        found = ROW.match(line)
        if not found:
            continue
        entries = re.findall(r"`([^`]+)`", found.group(1))
        cell = found.group(2).replace("`", "").strip()
        if cell == "nothing":
            allowed: set[str] = set()
        elif cell == "everything above":
            allowed = {e for layer in layers for e in layer.entries}
        else:
            names = {n.strip() for n in cell.split(",")}
            known = {_short(e): e for layer in layers for e in layer.entries}
            unknown = sorted(n for n in names if n not in known)
            assert not unknown, (f"docs/architecture.md: the row of {', '.join(entries)} may import {unknown}, which no "
                                 f"row above it places (a module imports only rows above its own). Rows above: "
                                 f"{', '.join(sorted(known))}.")
            allowed = {known[n] for n in names}
        layers.append(Layer(entries, allowed))
    return layers


def _short(entry: str) -> str:
    return entry.removesuffix(".py").rstrip("/")


def place(module: str, layers: list[Layer]) -> str | None:
    """The table entry a module belongs to: the longest entry naming it or a package above it."""
    found = []
    for layer in layers:
        for entry in layer.entries:
            name, covers = entry_modules(entry)
            if module == name or (covers and module.startswith(name + ".")):
                found.append((len(name), entry))
    return max(found)[1] if found else None


def allowed_entries(entry: str, layers: list[Layer]) -> set[str]:
    """What the modules of ``entry`` may import: their own entry, and the closure of its ``may import``."""
    may = {e: layer.may_import for layer in layers for e in layer.entries}
    allowed, todo = {entry}, list(may[entry])
    while todo:
        target = todo.pop()
        if target not in allowed:
            allowed.add(target)
            todo.extend(may[target])
    return allowed


def suggested_entry(module: str) -> tuple[str, str]:
    """(its file, the table entry that would place it) for a module no row places: its top-level package
    (``compile/``) or, for a module directly in sqlml, itself (``plot.py``)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "sqlml/__init__.py", "__init__.py"
    path = "/".join(parts) + ("/__init__.py" if (PACKAGE.parent.joinpath(*parts) / "__init__.py").exists() else ".py")
    return path, (f"{parts[1]}/" if len(parts) > 2 or path.endswith("__init__.py") else f"{parts[-1]}.py")


def upward_imports(graph: dict[str, set[str]], layers: list[Layer]) -> list[str]:
    """Every import the table does not allow, and every module no row places, each saying what to change."""
    problems = []
    for module in sorted(graph):
        if place(module, layers) is None:
            path, entry = suggested_entry(module)
            problems.append(f"{path} is in no row of the layer table in docs/architecture.md: add `{entry}` to a row, or "
                            f"add the row | `{entry}` | what it holds | what it may import | below every row it "
                            "imports from.")
    for module, targets in sorted(graph.items()):
        entry = place(module, layers)
        if entry is None:
            continue
        allowed = allowed_entries(entry, layers)
        for target in sorted(targets):
            target_entry = place(target, layers)
            if target_entry is not None and target_entry not in allowed:
                problems.append(f"{module} imports {target} ({target_entry}), but the row of {entry} in "
                                f"docs/architecture.md may import only {', '.join(sorted(allowed - {entry})) or 'nothing'}: "
                                f"import it inside a function of a lower layer's caller, move the code, or change the "
                                f"table if the layers themselves should change.")
    return problems


def test_the_layer_table_places_every_module_and_imports_point_down_it():
    graph, layers = import_graph(), layer_table(ARCHITECTURE.read_text())
    assert upward_imports(graph, layers) == []
    # The same check fails on the real package with one upward import or one module it cannot place.
    assert len(upward_imports({**graph, "sqlml.sql.plan": graph["sqlml.sql.plan"] | {"sqlml.executor"}}, layers)) == 1
    assert len(upward_imports({**graph, "sqlml.serve.http": {"sqlml.connection"}}, layers)) == 1


LAYERS_FOR_THE_CHECKER = """
| layer | what it holds | may import |
|---|---|---|
| `errors.py` | errors | nothing |
| `sql/` | parsing | errors |
| `model/` | models | errors, sql |
| `views.py` | views | everything above |
"""


def test_the_layer_checker_finds_an_upward_import_and_an_unplaced_module():
    layers = layer_table(LAYERS_FOR_THE_CHECKER)
    graph = {"sqlml.errors": set(), "sqlml.sql.parse": {"sqlml.errors"}, "sqlml.model.kinds": {"sqlml.sql.parse"},
             "sqlml.views": {"sqlml.model.kinds", "sqlml.errors"}}
    assert upward_imports(graph, layers) == []
    upward = upward_imports({**graph, "sqlml.sql.plan": {"sqlml.model.kinds"}}, layers)
    assert len(upward) == 1 and upward[0].startswith("sqlml.sql.plan imports sqlml.model.kinds (model/), but the row "
                                                     "of sql/ in docs/architecture.md may import only errors.py")
    unplaced = upward_imports({**graph, "sqlml.compile.trees": {"sqlml.model.kinds"}}, layers)
    assert unplaced == ["sqlml/compile/trees.py is in no row of the layer table in docs/architecture.md: add "
                        "`compile/` to a row, or add the row | `compile/` | what it holds | what it may import | "
                        "below every row it imports from."]
    with pytest.raises(AssertionError, match="may import \\['train'\\], which no row above it places"):
        layer_table(LAYERS_FOR_THE_CHECKER + "| `functions/` | handlers | model, train |\n")


# ---------------------------------------------------------------------------------------------------
# Connecting and plain SQL stay cheap.

CONNECT_PROBE = """
import sys
import sqlml
loaded = lambda: sorted({{m.split('.')[0] for m in sys.modules}} & {heavy!r})
assert sqlml.connect().sql("SELECT 42").fetchall() == [(42,)]
conn = sqlml.connect({path!r})
assert conn.sql("SELECT 42").fetchall() == [(42,)]
print(loaded())
assert conn.sql("SELECT count(predicted_y) FROM v").fetchall() == [(60,)]
print(loaded())
assert conn.sql("SELECT count(predicted_y) FROM ML.PREDICT(MODEL m, TABLE t)").fetchall() == [(60,)]
print(loaded())
"""
NOT_AT_CONNECT = {"sklearn", "skops", "scipy", "pandas"}


def test_connect_and_plain_sql_load_no_heavy_library(tmp_path):
    """In memory, and on a database holding a model and a view over it (compiled to SQL: reading it loads
    no model either; sqlml checks its text and the model's signed row and bytes with hashlib)."""
    path = str(tmp_path / "models.duckdb")
    with sqlml.connect(path, progress=lambda message: None) as conn:
        conn.sql("CREATE TABLE t AS SELECT range % 7 AS x, range % 3 = 0 AS y FROM range(60)")
        conn.sql("CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['y']) AS SELECT * FROM t")
        conn.sql("CREATE VIEW v AS SELECT * FROM ML.PREDICT(MODEL m, TABLE t)")
    out = subprocess.run([sys.executable, "-c", CONNECT_PROBE.format(path=path, heavy=NOT_AT_CONNECT)],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "[]" and out[1] == "[]"
    assert "sklearn" in out[-1] and "skops" in out[-1]  # the probe can fail: ML.PREDICT loads them
