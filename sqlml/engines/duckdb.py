"""Where SQL runs. The planner emits plain SQL plus a few engine calls; this module supplies them.

Only :class:`DuckDBEngine` exists today. A second engine (Spark) implements the same small surface:
``execute``, ``read_arrow``, ``read_batches``, ``register_table``, ``unregister_table``,
``transaction`` and ``dialect``.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import typing as t

import duckdb
import pyarrow as pa

from ..errors import DatabaseBusyError, SqlmlError

BATCH_ROWS = 122_880  # DuckDB's natural record-batch size: 60 vectors of 2,048 rows


def connect_duckdb(path: str = ":memory:", read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB database, turning a lock held by another process into a clear error."""
    try:
        return duckdb.connect(path, read_only=read_only)
    except duckdb.IOException as e:
        if "lock" in str(e).lower():
            raise DatabaseBusyError(
                f"Database busy: another process has '{path}' open for writing. "
                "Close it, or open this one read-only."
            ) from None
        raise SqlmlError(f"Cannot open database '{path}': {e}") from None


class DuckDBEngine:
    """Runs SQL on one DuckDB connection (a dbt thread's cursor, a notebook's connection...)."""

    dialect = "sqlml"  # DuckDB SQL plus the few BigQuery functions sqlml rewrites (GENERATE_ARRAY)
    _names = itertools.count(1)

    def __init__(self, connection: duckdb.DuckDBPyConnection):
        self.connection = connection
        self._lock = threading.RLock()

    def execute(self, sql: str, params: list | None = None) -> duckdb.DuckDBPyRelation | None:
        """Run one statement; a query's result comes back as a lazy relation."""
        return wrap_errors(lambda: self.connection.sql(sql, params=params) if params else self.connection.sql(sql))

    def fetch(self, sql: str, params: list | None = None) -> list[tuple]:
        return wrap_errors(lambda: self.connection.execute(sql, params or []).fetchall())

    def read_arrow(self, sql: str) -> pa.Table:
        """The whole result of a query as an Arrow table."""
        return wrap_errors(lambda: self.connection.sql(sql).to_arrow_table())

    def read_batches(self, sql: str, batch_rows: int = BATCH_ROWS) -> t.Iterator[pa.RecordBatch]:
        """The result of a query as a stream of record batches, consumed to the end."""
        reader = wrap_errors(lambda: self.connection.sql(sql).to_arrow_reader(batch_rows))
        yield from wrap_errors(lambda: iter(reader))

    def schema(self, sql: str) -> pa.Schema:
        """Column names and types of a query, without running it."""
        return wrap_errors(lambda: self.connection.sql(f"SELECT * FROM ({sql}) LIMIT 0").to_arrow_table().schema)

    def temp_name(self, prefix: str = "sqlml") -> str:
        return f"__{prefix}_{next(self._names)}"

    def register_table(self, name: str, table: pa.Table) -> None:
        self.connection.register(name, table)

    def unregister_table(self, name: str) -> None:
        self.connection.unregister(name)

    @contextlib.contextmanager
    def transaction(self) -> t.Iterator[None]:
        """One short write transaction. On any failure it is rolled back, never committed:
        DuckDB turns a COMMIT after a failed statement into a silent rollback."""
        with self._lock:
            self.connection.execute("BEGIN TRANSACTION")
            try:
                yield
            except BaseException:
                self.connection.execute("ROLLBACK")
                raise
            wrap_errors(lambda: self.connection.execute("COMMIT"))  # a conflict with another session fails here


def wrap_errors(action: t.Callable[[], t.Any]) -> t.Any:
    """Run ``action``, turning DuckDB's user-facing errors into SqlmlError with DuckDB's message."""
    try:
        return action()
    except duckdb.IOException as e:
        if "lock" in str(e).lower():
            raise DatabaseBusyError(f"Database busy: {e}") from None
        raise SqlmlError(str(e)) from None
    except duckdb.Error as e:
        raise SqlmlError(_strip_udf_noise(str(e))) from None


def _strip_udf_noise(message: str) -> str:
    """A failing scoring UDF reports 'Python exception occurred while executing the UDF: X';
    the user only needs X."""
    marker = "Python exception occurred while executing the UDF: "
    return message.split(marker, 1)[1] if marker in message else message
