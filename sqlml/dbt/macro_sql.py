"""The SQL functions behind the package's table-expression macros (``sqlml.predict``, ``sqlml.evaluate``, ...).

dbt's ``table``, ``view`` and ``incremental`` materializations send a model's SQL straight to
DuckDB, so what ``{{ sqlml.evaluate(...) }}`` renders must be plain DuckDB SQL. The macros ask,
at execution time, the scalar function :data:`COMPILE` (defined by the plugin on dbt's long-lived
parent connection) for that SQL:

* ``ML.PREDICT`` without a threshold becomes the lazy scoring form of :meth:`sqlml.executor.Executor.view_scoring_sql`:
  a call of the model version's ``sqlml_predict_<fingerprint>`` function, scored when DuckDB runs it;
* every other call (``ML.EVALUATE``, ``ML.CONFUSION_MATRIX``, ``ML.ROC_CURVE``, ``ML.EXPLAIN_PREDICT``,
  ``ML.PREDICT`` with a threshold) is computed by sqlml in Python: the SQL is
  ``from_json(sqlml_dbt_result('<statement>'), '<structure>')`` unnested into typed columns, where
  :data:`RESULT` runs the statement and returns its rows as JSON.

Both functions read through a cursor of the parent connection, which sees committed data only:
the models and tables earlier dbt nodes built are committed when the next node compiles.
Compiling an eager call computes its result once (to learn its columns); the first
``sqlml_dbt_result`` call of the same statement in this process takes that result instead of
computing it again.
"""

from __future__ import annotations

import json
import threading
import typing as t

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

from ..engines.duckdb import DuckDBEngine
from ..errors import SqlmlError
from ..executor import Executor

COMPILE = "sqlml_dbt_compile"
RESULT = "sqlml_dbt_result"
ERROR_PREFIX = "sqlml: "

_lock = threading.Lock()
_computed: dict[str, str] = {}  # statement -> JSON rows computed at compile time, taken once


def define(connection: duckdb.DuckDBPyConnection) -> None:
    """Define :data:`COMPILE` and :data:`RESULT` on ``connection`` (dbt's parent connection)."""
    import weakref
    parent = weakref.ref(connection)

    def compile_call(request: str) -> str:
        cursor = parent().cursor()
        try:
            return compile_sql(cursor, json.loads(request))
        except SqlmlError as e:  # returned, not raised: the macro raises it as a compiler error
            return ERROR_PREFIX + str(e)
        finally:
            cursor.close()

    def result(statement: str) -> str:
        with _lock:
            rows = _computed.pop(statement, None)
        if rows is not None:
            return rows
        cursor = parent().cursor()
        try:
            return _rows_json(_run(cursor, statement))
        finally:
            cursor.close()

    names = {n for (n,) in connection.execute("SELECT function_name FROM duckdb_functions()").fetchall()}
    if COMPILE not in names:
        connection.create_function(COMPILE, compile_call, [duckdb.sqltype("VARCHAR")], duckdb.sqltype("VARCHAR"),
                                   side_effects=True)
    if RESULT not in names:
        connection.create_function(RESULT, result, [duckdb.sqltype("VARCHAR")], duckdb.sqltype("VARCHAR"),
                                   side_effects=True)


def compile_sql(cursor: duckdb.DuckDBPyConnection, request: dict) -> str:
    """Plain DuckDB SQL (a parenthesized query) for one table-expression macro call.

    ``request``: ``function`` (PREDICT, EVALUATE, ...), ``model`` (registry name, or None for
    VALIDATE_DATA_DRIFT), ``input`` and ``input_b`` (queries, or None), ``params`` (a ``STRUCT(...)``
    literal, or None).
    """
    function, model, source, params = request["function"], request["model"], request.get("input"), request.get("params")
    if function == "PREDICT" and not params:
        executor = Executor(DuckDBEngine(cursor), progress=lambda message: None)
        return f"({executor.view_scoring_sql((model, None), _parse(source).sql('duckdb'))})"
    arguments = [f"MODEL {model}"] if model else []  # a registry name is spelled as SQL (sqlml.sql.plan.model_name)
    arguments += [f"({query})" for query in (source, request.get("input_b")) if query is not None]
    if params:
        arguments.append(params)
    statement = f"SELECT * FROM ML.{function}({', '.join(arguments)})"
    table = _run(cursor, statement)
    rows = _rows_json(table)
    with _lock:
        _computed[statement] = rows
    columns = ", ".join(exp.to_identifier(f.name, quoted=True).sql("duckdb") for f in table.schema)
    return (f"(SELECT {columns} FROM (SELECT unnest(__sqlml_row) FROM (SELECT unnest(from_json("
            f"{RESULT}({_literal(statement)}), {_literal(json.dumps([_structure(table.schema)]))})) AS __sqlml_row)))")


def _run(cursor: duckdb.DuckDBPyConnection, statement: str) -> pa.Table:
    from ..connection import Connection
    return Connection(cursor, progress=lambda message: None).sql(statement).to_arrow_table()


def _parse(source: str) -> exp.Expr:
    try:
        return sqlglot.parse_one(source, read="sqlml")
    except sqlglot.errors.ParseError as e:
        raise SqlmlError(f"Cannot read the input query of sqlml.predict: {e}") from None


def _structure(schema: pa.Schema | pa.StructType) -> dict:
    return {f.name: _type(f.type) for f in schema}


def _type(dtype: pa.DataType) -> t.Any:
    """from_json's structure for an Arrow type: DuckDB type names, [x] for lists, {..} for structs."""
    if pa.types.is_struct(dtype):
        return _structure(dtype)
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return [_type(dtype.value_type)]
    if pa.types.is_boolean(dtype):
        return "BOOLEAN"
    if pa.types.is_integer(dtype):
        return "BIGINT"
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "DOUBLE"
    if pa.types.is_timestamp(dtype):
        return "TIMESTAMP"
    if pa.types.is_date(dtype):
        return "DATE"
    return "VARCHAR"


def _rows_json(table: pa.Table) -> str:
    """The rows as a JSON array of objects; floats keep all their digits (repr), NaN becomes null."""
    def clean(value: t.Any) -> t.Any:
        if isinstance(value, float) and value != value:
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if not isinstance(value, (str, int, float, bool, type(None))):
            return str(value)
        return value
    return json.dumps([clean(row) for row in table.to_pylist()], allow_nan=False)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
