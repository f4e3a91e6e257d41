"""Lazy scoring: each stored model version as a DuckDB Arrow UDF, for SQL that must stay SQL.

``CREATE VIEW v AS SELECT * FROM ML.PREDICT(MODEL m, TABLE t)`` is stored by DuckDB as text, and
read again in later sessions. The planner rewrites such calls into a call of
``sqlml_predict_<fingerprint>(struct_pack(...))``; :func:`register_all` defines one such function
per stored version whenever sqlml is attached to a connection. Models load on first use.
"""

from __future__ import annotations

import weakref

import duckdb
import pyarrow as pa

from sqlglot import exp

from .engine import DuckDBEngine
from .preprocess import column_kind
from .registry import ModelVersion, Registry
from . import scoring
from .scoring import output_schema

OUTPUT = "__sqlml_out"


def udf_name(info: ModelVersion) -> str:
    return f"sqlml_predict_{info.fingerprint[:16]}"


def _duck_type(dtype: pa.DataType) -> duckdb.DuckDBPyType:
    """The DuckDB type of an Arrow type (built through the API: names are never spliced into SQL)."""
    if pa.types.is_struct(dtype):
        return duckdb.struct_type({f.name: _duck_type(f.type) for f in dtype})
    if pa.types.is_list(dtype):
        return duckdb.list_type(_duck_type(dtype.value_type))
    return duckdb.sqltype({pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.string(): "VARCHAR", pa.bool_(): "BOOLEAN"}[dtype])


def _feature_type(column: dict) -> str:
    return "DOUBLE" if column_kind(column["name"], _arrow_type(column["type"])) == "numeric" else "VARCHAR"


def _arrow_type(text: str) -> pa.DataType:
    """The Arrow type of an input column as recorded in the registry (only its family matters)."""
    if text.startswith(("int", "uint", "double", "float", "decimal", "halffloat")):
        return pa.float64()
    return pa.bool_() if text == "bool" else pa.string()


def register(connection: duckdb.DuckDBPyConnection, info: ModelVersion) -> None:
    """Define the scoring function of one model version on ``connection`` (idempotent)."""
    connection_ref = weakref.ref(connection)  # no cycle between the connection and its functions

    def score(features: pa.ChunkedArray | pa.StructArray) -> pa.StructArray:
        # A UDF may run on DuckDB's worker threads: read the blob through a cursor of its own.
        model = scoring.CACHE.get(info, lambda fp: Registry(DuckDBEngine(connection_ref().cursor())).blob(fp))
        array = features.combine_chunks() if isinstance(features, pa.ChunkedArray) else features
        table = pa.Table.from_arrays(array.flatten(), names=[f.name for f in array.type])
        out = model.predict(table)
        return pa.StructArray.from_arrays([c.combine_chunks() for c in out.columns], names=out.column_names)

    parameter = duckdb.struct_type({c["name"]: duckdb.sqltype(_feature_type(c)) for c in info.input_schema})
    name = udf_name(info)
    if _defined(connection, name):
        return
    connection.create_function(name, score, [parameter], _duck_type(pa.struct(list(output_schema(info)))),
                               type="arrow", side_effects=False)


def refresh(connection: duckdb.DuckDBPyConnection, info: ModelVersion) -> None:
    """Redefine a version's scoring function after ALTER MODEL changed its options (threshold)."""
    if _defined(connection, udf_name(info)):
        connection.remove_function(udf_name(info))
    register(connection, info)


def _defined(connection: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(connection.execute("SELECT 1 FROM duckdb_functions() WHERE function_name = ?", [name]).fetchall())


def register_all(connection: duckdb.DuckDBPyConnection, registry: Registry) -> None:
    """Define the scoring function of every stored model version."""
    for info in registry.versions():
        register(connection, info)


def scoring_query(info: ModelVersion, input_sql: exp.Expr) -> exp.Expr:
    """``SELECT <prediction columns>, <input columns> FROM (<input>)`` through the version's UDF."""
    packed = exp.func("struct_pack", *[
        exp.PropertyEQ(this=exp.to_identifier(c["name"], quoted=True),
                       expression=exp.cast(exp.column(c["name"], quoted=True), _feature_type(c)))
        for c in info.input_schema
    ])
    inner = exp.select(exp.Star(), exp.alias_(exp.func(udf_name(info), packed), OUTPUT)).from_(
        exp.Subquery(this=input_sql, alias=exp.TableAlias(this=exp.to_identifier("__sqlml_in"))))
    return exp.select(exp.func("unnest", exp.column(OUTPUT)), exp.Star(except_=[exp.column(OUTPUT)])).from_(
        exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("__sqlml_scored"))))
