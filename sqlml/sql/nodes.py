"""sqlml's own expression nodes: things every engine can do, each in its own words.

The layers that build SQL (``train/reading.py``, ``sql/transform*.py`` …) put these nodes in their
sqlglot expressions where engines differ, and write the expression with the dialect of the engine
that runs it. Each engine's dialect (``engines/duckdb/dialect.py``, ``engines/spark/dialect.py``)
writes every node, finding it by its ``key`` (``quantiles``, ``rownumbers`` …), so engines need not
import this module. Nodes hold data only, as sqlglot's do.
"""

from __future__ import annotations

from sqlglot import exp

from .dialect import GenerateArray


class Quantiles(exp.Expression, exp.AggFunc):
    """The exact quantiles of ``this`` at each fraction of ``expressions``, linearly interpolated
    between the two nearest values (numpy's default), as one list."""

    arg_types = {"this": True, "expressions": True}


class RowNumbers(exp.Expression, exp.Func):
    """Each row's position in its query's own order, from 0 (the order the engine reads the rows in)."""

    arg_types = {}


class OtherColumns(exp.Expression, exp.Func):
    """Every column of the FROM clause except those named in ``expressions`` (which need not be there)."""

    arg_types = {"expressions": True}


#: Every node an engine's dialect must write (tests/test_engines_dialects.py checks each engine).
NODES = (GenerateArray, Quantiles, RowNumbers, OtherColumns)


def query(sql: str, alias: str) -> exp.Subquery:
    """``(sql) AS alias``: a query written for the engine, as the FROM of an expression built around it
    (sqlglot writes a string argument as it is, so the query is never parsed again)."""
    return exp.Subquery(this=sql, alias=exp.TableAlias(this=exp.to_identifier(alias)))


def double(value: float) -> exp.Expr:
    """A DOUBLE literal that reads back as exactly ``value`` in every engine (an exponent keeps DuckDB
    off DECIMAL); infinities and NaN, which have no literal, as a cast of their name."""
    text = repr(float(value))
    if "inf" in text or "nan" in text:
        return exp.cast(exp.Literal.string({"inf": "Infinity", "-inf": "-Infinity"}.get(text, "NaN")), "DOUBLE")
    return exp.Literal.number(text if "e" in text else text + "e0")
