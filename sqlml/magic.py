"""The Jupyter magic: ``%load_ext sqlml``, then ``%%sqlml`` cells and ``%sqlml`` lines (docs/notebooks.md).

    %%sqlml --db warehouse.duckdb --out late
    SELECT * FROM ML.PREDICT(MODEL delays, (SELECT * FROM flights WHERE month = $month))

Options: ``--db PATH`` (one connection per database for the kernel, kept for later cells),
``--connection NAME`` (a notebook variable: an ``sqlml.Connection`` or a DuckDB connection),
``--out NAME`` (store the result's DataFrame), ``--dialect bigquery``, ``--plot KIND`` (draw the last
result's rows: roc, precision_recall, confusion_matrix, feature_importance, slices, over_time).
``$name`` (``@name`` in BigQuery's dialect) binds the notebook variable ``name`` as a parameter: the
value never enters the SQL text. A table name that is no table of the database may name a DataFrame
of the notebook.
"""

from __future__ import annotations

import contextlib
import os
import re
import typing as t

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand

from .errors import SqlmlError

OPTION = re.compile(r"""\s*--(?P<name>[a-z]+)(?:=|\s+)(?P<value>"[^"]*"|'[^']*'|\S+)""")
OPTIONS = ("db", "connection", "out", "dialect", "plot")
DIALECTS = ("duckdb", "bigquery")


def load_ipython_extension(ipython: t.Any) -> None:
    ipython.register_magics(SqlmlMagics)


@magics_class
class SqlmlMagics(Magics):
    """``%sqlml`` / ``%%sqlml``: run sqlml statements, show the last result as a pandas DataFrame."""

    def __init__(self, shell: t.Any):
        super().__init__(shell)
        self.databases: dict[str, t.Any] = {}  # path → Connection: one per database for the kernel
        self.wrapped: dict[int, tuple[t.Any, t.Any]] = {}  # id(DuckDB connection) → (it, its sqlml Connection)
        self.current: t.Any = None

    @no_var_expand  # IPython would paste $name's value into the line: sqlml binds it instead
    @line_cell_magic
    def sqlml(self, line: str, cell: str | None = None) -> t.Any:
        options, rest = parse_options(line)
        if cell is None:
            text = rest
        elif rest.strip():
            raise UsageError(f"%%sqlml takes options on its first line, the SQL below it; got {rest.strip()!r}.")
        else:
            text = cell
        if not text.strip():
            raise UsageError("No SQL to run: %sqlml SELECT … on one line, or %%sqlml with the SQL in the cell.")
        conn = self.connection(options)
        dialect = options.get("dialect", "duckdb")
        if dialect not in DIALECTS:
            raise UsageError(f"--dialect is one of {', '.join(DIALECTS)}; got {dialect!r}.")
        user = self.shell.user_ns
        with _dialect(conn, dialect):
            result = conn.sql(text, bound(text, dialect, user), namespace=user)
        frame = None if result is None else result.df()
        if "out" in options:
            user[options["out"]] = frame
        if "plot" in options:
            return draw(options["plot"], frame)
        return frame

    def connection(self, options: dict) -> t.Any:
        """The connection a cell runs on: ``--connection``'s, ``--db``'s (opened once), else the last one used."""
        if "connection" in options and "db" in options:
            raise UsageError("Give --db or --connection, not both.")
        if "connection" in options:
            self.current = self._user_connection(options["connection"])
        elif "db" in options:
            path = options["db"] if options["db"] == ":memory:" else os.path.abspath(options["db"])
            if path not in self.databases:
                from .connection import connect
                from .progress import Progress
                self.databases[path] = connect(path, progress=Progress())
            self.current = self.databases[path]
        elif self.current is None:
            self.current = self.connection({"db": ":memory:"})
        return self.current

    def _user_connection(self, name: str) -> t.Any:
        import duckdb

        from .connection import Connection, register
        if name not in self.shell.user_ns:
            raise UsageError(f"--connection {name}: the notebook has no variable named {name!r}.")
        value = self.shell.user_ns[name]
        if isinstance(value, Connection):
            return value
        if isinstance(value, duckdb.DuckDBPyConnection):
            if id(value) not in self.wrapped:  # kept with its connection, so the id is never reused meanwhile
                self.wrapped[id(value)] = (value, register(value))
            return self.wrapped[id(value)][1]
        raise UsageError(f"--connection {name}: {name} is a {type(value).__name__}, not an sqlml.Connection or a "
                         "DuckDB connection.")


def parse_options(line: str) -> tuple[dict, str]:
    """The leading ``--name value`` options of a magic's line, and the rest (the SQL of a line magic)."""
    options = {}
    while (found := OPTION.match(line)) is not None:
        name, value = found["name"], found["value"]
        if name not in OPTIONS:
            raise UsageError(f"Unknown option --{name}; %%sqlml takes {', '.join('--' + o for o in OPTIONS)}.")
        options[name] = value[1:-1] if value[0] in "\"'" else value
        line = line[found.end():]
    return options, line


def bound(text: str, dialect: str, namespace: t.Mapping) -> dict | None:
    """The notebook values of the parameters ``text`` names (``$name``; ``@name`` in BigQuery's dialect);
    None when it names none (plain statements then run as written)."""
    from sqlglot import exp

    from .sql.parse import parse
    names = {p.this.name if isinstance(p.this, exp.Expression) else p.this
             for statement in parse(text, dialect, as_written=False) for p in statement.find_all(exp.Placeholder, exp.Parameter)}
    missing = sorted(n for n in names if n not in namespace)
    if None in names or "" in names:
        raise SqlmlError("%%sqlml binds notebook variables by name ($name): a '?' parameter has no name to look up.")
    if missing:
        raise SqlmlError(f"No notebook variable named {', '.join(missing)} for the parameter(s) "
                         f"{', '.join('$' + m for m in missing)}.")
    return {name: namespace[name] for name in names} or None


@contextlib.contextmanager
def _dialect(conn: t.Any, dialect: str) -> t.Iterator[None]:
    """Read this cell's statements in ``dialect`` (the connection's own setting is back afterwards)."""
    executor = conn.executor
    kept, executor.dialect = executor.dialect, dialect
    try:
        yield
    finally:
        executor.dialect = kept


def draw(kind: str, frame: t.Any) -> t.Any:
    """``--plot KIND``: the figure of the last result's rows (those of the SQL function the kind names)."""
    from .functions import figures
    if frame is None:
        raise SqlmlError(f"--plot {kind}: the last statement returned no rows to draw.")
    rows, columns = frame.to_dict("records"), frame.to_dict("list")
    drawings = {
        "roc": lambda: figures.roc(columns),
        "precision_recall": lambda: figures.precision_recall(columns),
        "confusion_matrix": lambda: figures.confusion_matrix(figures.confusion_counts(columns)),
        "feature_importance": lambda: figures.importance(rows),
        "slices": lambda: figures.slices(rows),
        "over_time": lambda: figures.over_time(rows),
    }
    if kind not in drawings:
        raise UsageError(f"--plot is one of {', '.join(drawings)}; got {kind!r} (calibration and drift: sqlml.plot).")
    from .plot import inline
    try:
        return inline(drawings[kind]())
    except KeyError as e:
        raise SqlmlError(f"--plot {kind} draws the rows of its SQL function; the result has no column {e}.") from None

