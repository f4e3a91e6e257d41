"""The Python API's connection: a DuckDB connection that also understands sqlml statements."""

from __future__ import annotations

import typing as t

import duckdb
import pyarrow as pa

from . import views
from .engines.duckdb import DuckDBEngine, connect_duckdb
from .executor import Executor
from .registry.versions import INFO_COLUMNS, TABLE, Registry


class Connection:
    """A DuckDB connection that also understands sqlml statements."""

    def __init__(self, duckdb_connection: duckdb.DuckDBPyConnection, progress: t.Callable[[str], None] | None = None,
                 dialect: str = "duckdb"):
        self.duckdb = duckdb_connection
        self.executor = Executor(DuckDBEngine(duckdb_connection), progress, dialect)

    def sql(self, text: str) -> duckdb.DuckDBPyRelation | None:
        """Run one or more statements; return the last result as a DuckDB relation (or None).

        The relation supports ``.df()``, ``.arrow()``, ``.fetchall()`` and further SQL.
        """
        return self.executor.run(text)

    execute = sql

    def models(self) -> duckdb.DuckDBPyRelation:
        """The model registry: one row per stored version, without the model bytes, and ``status``:
        'ok', or why the version is refused (its row was edited outside sqlml)."""
        registry = self.executor.registry
        if not registry.exists():
            return self.duckdb.sql("SELECT NULL::VARCHAR AS name, NULL::INTEGER AS version WHERE false")
        found = registry.versions()
        status = pa.table({"name": [v.name for v in found], "version": pa.array([v.version for v in found], pa.int32()),
                           "status": [v.damage or "ok" for v in found]})
        columns = ", ".join(f"m.{c}" for c in INFO_COLUMNS)
        self.duckdb.register("__sqlml_status", status)
        try:
            return self.duckdb.from_arrow(self.duckdb.sql(
                f"SELECT {columns}, s.status FROM {TABLE} AS m JOIN __sqlml_status AS s USING (name, version) "
                "ORDER BY m.name, m.version").to_arrow_table())
        finally:
            self.duckdb.unregister("__sqlml_status")

    def close(self) -> None:
        self.duckdb.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: t.Any) -> None:
        self.close()


def connect(path: str = ":memory:", read_only: bool = False, progress: t.Callable[[str], None] | None = None,
            dialect: str = "duckdb") -> Connection:
    """Open (or create) a DuckDB database with sqlml installed on it. ``dialect='bigquery'`` reads
    statements written for BigQuery (its quoting, SAFE_CAST, UNNEST, date functions) and runs them on DuckDB."""
    connection = connect_duckdb(path, read_only=read_only)
    register(connection)
    return Connection(connection, progress, dialect)


def register(connection: duckdb.DuckDBPyConnection) -> Connection:
    """Install sqlml on an existing DuckDB connection: the scoring functions of every stored
    model version, so views over ML.PREDICT work. Returns a :class:`Connection` wrapping it."""
    engine = DuckDBEngine(connection)
    views.define_for_views(engine, Registry(engine))
    return Connection(connection)
