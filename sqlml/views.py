"""Lazy scoring: each stored model version as a DuckDB Arrow UDF, for SQL that must stay SQL.

``CREATE VIEW v AS SELECT * FROM ML.PREDICT(MODEL m, TABLE t)`` is stored by DuckDB as text, and
read again in later sessions. The planner rewrites such calls into a call of
``sqlml_predict_<fingerprint>(struct_pack(...), threshold)``, the threshold read from the registry
when the view runs (so a view follows ALTER MODEL); :func:`register_all` defines one such function
per stored version whenever sqlml is attached to a connection. Models load on first use.
"""

from __future__ import annotations

import typing as t
import weakref

import duckdb
import pyarrow as pa
from sqlglot import exp

from .engines.duckdb import DuckDBEngine
from .errors import ModelNotFoundError, SqlmlError
from .model import loaded
from .model.loaded import output_schema
from .model.preprocess import column_kind
from .registry.versions import TABLE, ModelVersion, Registry

OUTPUT = "__sqlml_out"
#: Every scoring function sqlml defined in this process. DuckDB keeps only a borrowed reference to a
#: Python UDF, owned by the connection that defined it: once that connection closes (a cursor), the
#: database still calls the function, and calling a freed one crashes the process.
_DEFINED: list[t.Callable] = []
#: Connections sqlml defined functions on, to load a model's bytes through when the defining one is closed.
_CONNECTIONS: "weakref.WeakSet[duckdb.DuckDBPyConnection]" = weakref.WeakSet()


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
    _CONNECTIONS.add(connection)
    name = udf_name(info)
    if _defined(connection, name):
        return
    catalog = connection.execute("SELECT current_database()").fetchall()[0][0]  # where the registry is

    def score(features: pa.ChunkedArray | pa.StructArray, threshold: pa.ChunkedArray | pa.Array) -> pa.StructArray:
        model = loaded.CACHE.get(info, lambda fingerprint: _blob(fingerprint, info, catalog))
        array = features.combine_chunks() if isinstance(features, pa.ChunkedArray) else features
        table = pa.Table.from_arrays(array.flatten(), names=[f.name for f in array.type])
        out = model.predict(table, threshold[0].as_py() if len(threshold) else None)
        return pa.StructArray.from_arrays([c.combine_chunks() for c in out.columns], names=out.column_names)

    parameter = duckdb.struct_type({c["name"]: duckdb.sqltype(_feature_type(c)) for c in info.input_schema})
    connection.create_function(name, score, [parameter, duckdb.sqltype("DOUBLE")],
                               _duck_type(pa.struct(list(output_schema(info)))), type="arrow", side_effects=False,
                               null_handling="special")  # a NULL threshold (none set) means the default
    _DEFINED.append(score)


def _blob(fingerprint: str, info: ModelVersion, catalog: str) -> bytes:
    """A version's bytes, read through an open connection sqlml was attached to (a UDF may run on
    DuckDB's worker threads: each read takes a cursor of its own, which starts in the default
    database, so it first switches to the registry's ``catalog``). The fingerprint is the bytes'
    tag, so any database holding it holds the same bytes."""
    for connection in list(_CONNECTIONS):
        try:
            cursor = connection.cursor()
        except duckdb.ConnectionException:  # closed
            continue
        try:
            engine = DuckDBEngine(cursor)
            engine.execute(f"USE {exp.to_identifier(catalog, quoted=True).sql('duckdb')}")
            return Registry(engine).blob(fingerprint)
        except SqlmlError:  # not in this database
            continue
        finally:
            cursor.close()
    raise ModelNotFoundError(f"Model '{info.name}' version {info.version} cannot be loaded: it was dropped, or every "
                             "connection sqlml was attached to is closed. Attach sqlml to an open connection of "
                             "this database (sqlml.register(connection)).")


def _defined(connection: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(connection.execute("SELECT 1 FROM duckdb_functions() WHERE function_name = ?", [name]).fetchall())


def register_all(connection: duckdb.DuckDBPyConnection, registry: Registry) -> None:
    """Define the scoring function of every stored model version; models of later versions may load
    through ``connection`` too."""
    _CONNECTIONS.add(connection)
    for info in registry.versions():
        register(connection, info)


def scoring_query(info: ModelVersion, input_sql: exp.Expr) -> exp.Expr:
    """``SELECT <prediction columns>, <input columns> FROM (<input>)`` through the version's UDF."""
    packed = exp.func("struct_pack", *[
        exp.PropertyEQ(this=exp.to_identifier(c["name"], quoted=True),
                       expression=exp.cast(exp.column(c["name"], quoted=True), _feature_type(c)))
        for c in info.input_schema
    ])
    threshold = exp.select(exp.cast(exp.func("json_extract_string", exp.column("options"), exp.Literal.string("$.threshold")),
                                    "DOUBLE")).from_(TABLE).where(exp.column("fingerprint").eq(exp.Literal.string(info.fingerprint)))
    inner = exp.select(exp.Star(), exp.alias_(exp.func(udf_name(info), packed, exp.Subquery(this=threshold)),
                                              OUTPUT)).from_(
        exp.Subquery(this=input_sql, alias=exp.TableAlias(this=exp.to_identifier("__sqlml_in"))))
    return exp.select(exp.func("unnest", exp.column(OUTPUT)), exp.Star(except_=[exp.column(OUTPUT)])).from_(
        exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("__sqlml_scored"))))
