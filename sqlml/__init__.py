"""sqlml: BigQuery-ML-style machine learning in SQL, on DuckDB and scikit-learn.

    >>> import sqlml
    >>> conn = sqlml.connect()
    >>> conn.sql("CREATE TABLE t AS SELECT range::DOUBLE AS x, 2 * range + 1 AS y FROM range(50)")
    >>> conn.sql("CREATE MODEL m OPTIONS (model_type = 'linear_reg', input_label_cols = ['y']) AS SELECT * FROM t")
    >>> round(conn.sql("SELECT predicted_y FROM ML.PREDICT(MODEL m, (SELECT 10.0 AS x))").fetchall()[0][0], 6)
    21.0
"""

from __future__ import annotations

import typing as t

import duckdb

from . import datasets
from .engine import DuckDBEngine, connect_duckdb
from .errors import (
    DatabaseBusyError,
    DataError,
    ModelIntegrityError,
    ModelNotFoundError,
    OptionError,
    SqlmlError,
    SqlmlParseError,
)
from .executor import Executor, parse

__all__ = ["Connection", "connect", "register", "parse", "datasets", "SqlmlError", "SqlmlParseError", "OptionError",
           "DataError", "ModelNotFoundError", "ModelIntegrityError", "DatabaseBusyError"]


class Connection:
    """A DuckDB connection that also understands sqlml statements."""

    def __init__(self, duckdb_connection: duckdb.DuckDBPyConnection, progress: t.Callable[[str], None] | None = None):
        self.duckdb = duckdb_connection
        self.executor = Executor(DuckDBEngine(duckdb_connection), progress)

    def sql(self, text: str) -> duckdb.DuckDBPyRelation | None:
        """Run one or more statements; return the last result as a DuckDB relation (or None).

        The relation supports ``.df()``, ``.arrow()``, ``.fetchall()`` and further SQL.
        """
        return self.executor.run(text)

    execute = sql

    def models(self) -> duckdb.DuckDBPyRelation:
        """The model registry: one row per stored version, without the model bytes."""
        from .registry import INFO_COLUMNS, TABLE
        self.executor.registry.ensure()
        return self.duckdb.sql(f"SELECT {', '.join(INFO_COLUMNS)} FROM {TABLE} ORDER BY name, version")

    def close(self) -> None:
        self.duckdb.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: t.Any) -> None:
        self.close()


def connect(path: str = ":memory:", read_only: bool = False, progress: t.Callable[[str], None] | None = None) -> Connection:
    """Open (or create) a DuckDB database with sqlml installed on it."""
    connection = connect_duckdb(path, read_only=read_only)
    register(connection)
    return Connection(connection, progress)


def register(connection: duckdb.DuckDBPyConnection) -> Connection:
    """Install sqlml on an existing DuckDB connection: the scoring functions of every stored
    model version, so views over ML.PREDICT work. Returns a :class:`Connection` wrapping it."""
    from . import udf
    from .registry import Registry
    udf.register_all(connection, Registry(DuckDBEngine(connection)))
    return Connection(connection)
