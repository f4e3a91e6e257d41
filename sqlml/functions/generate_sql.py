"""ML.GENERATE_SQL: the model compiled to one plain SELECT that returns what ML.PREDICT returns.

``ML.GENERATE_SQL(MODEL m [VERSION n] [, TABLE t | (query)] [, STRUCT('spark' AS dialect,
'flights_today' AS input_table)])`` → one row ``(dialect, sql)``. The SELECT reads ``input_table``,
else the TABLE or query given, else a ``{input}`` placeholder. Given a TABLE or query, the input's
columns are known and the SELECT names ML.PREDICT's columns one by one; else it ends in ``*``
(docs/compiled_sql.md).
"""

from __future__ import annotations

import pyarrow as pa

from .base import Call


def generate_sql(call: Call) -> pa.Table:
    from ..compile import generate_sql as compiled  # the compiler loads only when asked for

    model = call.require_model()
    dialect = call.param("dialect", "duckdb").lower()
    columns = call.data.schema().names if call.data is not None else None
    source = call.data.source if call.data is not None else None
    text = compiled(model, dialect, call.param("input_table"), source, columns)
    return pa.table({"dialect": [dialect], "sql": [text]})
