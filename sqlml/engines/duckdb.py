"""The DuckDB engine: SQL, Arrow streams and view scoring functions on one DuckDB connection."""

from __future__ import annotations

import contextlib
import inspect
import itertools
import threading
import typing as t

import duckdb
import pyarrow as pa
from sqlglot import exp

from ..errors import DatabaseBusyError, SqlmlError
from .base import ScoringFunction

BATCH_ROWS = 122_880  # DuckDB's natural record-batch size: 60 vectors of 2,048 rows
OUTPUT = "__sqlml_out"

#: Every scoring function defined in this process. DuckDB keeps only a borrowed reference to a Python
#: UDF, owned by the connection that defined it: once that connection closes (a cursor), the database
#: still calls the function, and calling a freed one crashes the process.
_DEFINED: list[t.Callable] = []


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
        return wrap_errors(lambda: self.connection.sql(sql, params=params) if params else self.connection.sql(sql))

    def fetch(self, sql: str, params: list | None = None) -> list[tuple]:
        return wrap_errors(lambda: self.connection.execute(sql, params or []).fetchall())

    def read_arrow(self, sql: str) -> pa.Table:
        return wrap_errors(lambda: self.connection.sql(sql).to_arrow_table())

    def read_batches(self, sql: str, batch_rows: int = BATCH_ROWS) -> t.Iterator[pa.RecordBatch]:
        reader = wrap_errors(lambda: self.connection.sql(sql).to_arrow_reader(batch_rows))
        yield from wrap_errors(lambda: iter(reader))

    def schema(self, sql: str) -> pa.Schema:
        return wrap_errors(lambda: self.connection.sql(f"SELECT * FROM ({sql}) LIMIT 0").to_arrow_table().schema)

    def temp_name(self, prefix: str = "sqlml") -> str:
        return f"__{prefix}_{next(self._names)}"

    def register_table(self, name: str, table: pa.Table) -> None:
        self.connection.register(name, table)

    def unregister_table(self, name: str) -> None:
        self.connection.unregister(name)

    def result(self, table: pa.Table) -> duckdb.DuckDBPyRelation:
        return self.connection.from_arrow(table)

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

    def current_database(self) -> str:
        return self.fetch("SELECT current_database()")[0][0]

    def view_definitions(self) -> list[tuple[str, str, str]]:
        return self.fetch("SELECT database_name, view_name, sql FROM duckdb_views() WHERE NOT internal")

    def define_scoring_function(self, name: str, function: ScoringFunction, features: list[tuple[str, str]],
                                extra: list[str], output: pa.Schema) -> None:
        """An Arrow UDF (2,048 rows a call) taking a STRUCT of the features and ``extra`` scalar arguments
        (their SQL types), each handed to ``function`` as one Arrow array."""
        if self._has_function(name):
            return

        def score(*arguments: pa.ChunkedArray | pa.Array) -> pa.StructArray:
            return function(*(a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arguments))

        # DuckDB checks a UDF's arity against its parameter types and refuses *args: give it the signature.
        score.__signature__ = inspect.Signature([inspect.Parameter(f"a{i}", inspect.Parameter.POSITIONAL_ONLY)
                                                 for i in range(1 + len(extra))])

        parameter = duckdb.struct_type({column: duckdb.sqltype(kind) for column, kind in features})
        self.connection.create_function(name, score, [parameter, *map(duckdb.sqltype, extra)],
                                        _duck_type(pa.struct(list(output))), type="arrow", side_effects=False,
                                        null_handling="special")  # NULL arguments mean "not set"
        _DEFINED.append(score)

    def drop_scoring_function(self, name: str) -> None:
        if self._has_function(name):
            self.connection.remove_function(name)

    def _has_function(self, name: str) -> bool:
        return bool(self.fetch("SELECT 1 FROM duckdb_functions() WHERE function_name = ?", [name]))

    def scoring_sql(self, name: str, features: list[tuple[str, str]], extra_sql: list[str], input_sql: str) -> str:
        packed = ", ".join(f"{_quote(column)} := CAST({_quote(column)} AS {kind})" for column, kind in features)
        arguments = "".join(f", {sql}" for sql in extra_sql)
        scored = f"SELECT *, {name}(struct_pack({packed}){arguments}) AS {OUTPUT} FROM ({input_sql}) AS __sqlml_in"
        return f"SELECT unnest({OUTPUT}), * EXCLUDE ({OUTPUT}) FROM ({scored}) AS __sqlml_scored"


def _quote(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql("duckdb")


def literal(value: str) -> str:
    """A SQL string literal (quotes doubled), for names and keys put into generated SQL."""
    return exp.Literal.string(value).sql("duckdb")


def _duck_type(dtype: pa.DataType) -> duckdb.DuckDBPyType:
    """The DuckDB type of an Arrow type (built through the API: names are never spliced into SQL)."""
    if pa.types.is_struct(dtype):
        return duckdb.struct_type({f.name: _duck_type(f.type) for f in dtype})
    if pa.types.is_list(dtype):
        return duckdb.list_type(_duck_type(dtype.value_type))
    return duckdb.sqltype({pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.string(): "VARCHAR", pa.bool_(): "BOOLEAN"}[dtype])


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
