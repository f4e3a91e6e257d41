"""Models compiled to plain SQL: ML.PREDICT's columns as one SELECT any database can run.

A layer beside :mod:`sqlml.functions` (it reads ``model/`` and ``sql/``; ``import sqlml`` does not load
it). :func:`compile_predict` turns a loaded model and an input relation into a sqlglot SELECT in one
of :data:`DIALECTS`; :func:`generate_sql` writes it as text for ML.GENERATE_SQL. The model's whole
scoring is in the SQL: its TRANSFORM clause, sqlml's preprocessing (NULL → training mean,
standardization, one-hot and ordinal codes), the estimator and the decision threshold. See
docs/compiled_sql.md for what compiles, the limits and the precision per dialect.
"""

from __future__ import annotations

import contextlib
import gc
import typing as t

import sqlglot
from sqlglot import exp

from ..errors import DataError
from .expressions import DIALECTS, JSON_LISTS, NotCompilableError
from .inputs import Inputs, relation
from .models import predictions
from .program import render

if t.TYPE_CHECKING:
    from ..model.loaded import LoadedModel

__all__ = ["DIALECTS", "JSON_LISTS", "NotCompilableError", "compile_predict", "generate_sql", "PLACEHOLDER"]

#: Where the input goes in SQL generated without one.
PLACEHOLDER = "{input}"
_PLACEHOLDER_TABLE = "__sqlml_input_placeholder"


def compile_predict(model: "LoadedModel", source: exp.Expr, dialect: str, columns: list[str] | None = None,
                    threshold: float | None = None) -> exp.Select:
    """The SELECT that returns what ``ML.PREDICT(MODEL model, source)`` returns, in ``dialect``.

    ``source``: the input relation (a table, or a parenthesized query). ``columns``: its column names
    when known; the SELECT then lists ML.PREDICT's columns by name (else it ends in ``*``: see
    :mod:`sqlml.compile.program`). ``threshold``: a binary classifier's decision threshold (default:
    the model's). Raises :class:`NotCompilableError` naming why a model cannot be compiled."""
    if dialect not in DIALECTS:
        raise NotCompilableError(f"sqlml writes compiled SQL for {', '.join(DIALECTS)}; not for '{dialect}'.")
    if columns is not None and not model.transform:
        missing = [c for c in model.preprocessor.input_columns if c not in columns]
        if missing:
            raise DataError(f"The input is missing feature column(s) the model was trained on: {', '.join(missing)}.")
    with _collection_paused():
        program = predictions(model, Inputs(model.preprocessor, model.info.input_schema), dialect, threshold)
        return render(program, relation(source, model.transform, columns), dialect)


def generate_sql(model: "LoadedModel", dialect: str = "duckdb", input_table: str | None = None,
                 input_sql: str | None = None, columns: list[str] | None = None, pretty: bool = True) -> str:
    """ML.GENERATE_SQL's text: over the table named ``input_table`` (as ``dialect`` spells names), else
    over ``input_sql`` (a query in sqlml's dialect), else over :data:`PLACEHOLDER`."""
    if input_table is not None:
        source: exp.Expr = exp.to_table(input_table, dialect=dialect)
    elif input_sql is not None:
        source = _source_of(input_sql)
    else:
        source = exp.to_table(_PLACEHOLDER_TABLE)
    select = compile_predict(model, source, dialect, columns)
    with _collection_paused():
        text = select.sql(dialect=dialect, pretty=pretty)
    return text.replace(_PLACEHOLDER_TABLE, PLACEHOLDER)


@contextlib.contextmanager
def _collection_paused() -> t.Iterator[None]:
    """Python's cycle collector paused: building a model's hundreds of thousands of expression nodes
    otherwise triggers full collections that scan all of them again and again (half the time of 100
    trees of depth 6)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _source_of(input_sql: str) -> exp.Expr:
    """A query's table when it only selects all of one (``TABLE t`` arrives as ``SELECT * FROM t``), else the query."""
    query = sqlglot.parse_one(input_sql, read="sqlml")
    used = {key for key, value in query.args.items() if value}
    star = isinstance(query, exp.Select) and len(query.expressions) == 1 and query.expressions[0] == exp.Star()
    if star and used == {"expressions", "from_"} and isinstance(query.args["from_"].this, exp.Table):
        return query.args["from_"].this.copy()
    return query.subquery()
