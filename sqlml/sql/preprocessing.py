"""BigQuery's preprocessing functions in any SELECT, outside TRANSFORM (``SELECT ML.STANDARD_SCALER(x)
OVER () FROM t``), computed by the very code that fits a TRANSFORM (:mod:`sqlml.sql.transform_functions`).

The planner touches no data, so it splits the work in two:

* a row-wise function (``ML.BUCKETIZE``, ``ML.FEATURE_CROSS``, ``ML.POLYNOMIAL_EXPAND``) needs no
  statistics and is compiled into SQL right away;
* an analytic function (the scalers, ``ML.QUANTILE_BUCKETIZE``, the encoders, ``ML.IMPUTER``) becomes
  a placeholder plus the query of its input rows: the rows its enclosing SELECT windows over
  (FROM, WHERE, GROUP BY, HAVING; not DISTINCT, QUALIFY, ORDER BY or LIMIT, which come after
  window functions), with its argument as the one column ``__sqlml_arg``. The executor
  (:func:`fill`) gathers the statistics over those rows through the engine, compiles the call as a
  TRANSFORM would, and puts the SQL in place of the placeholder.

Reusing the TRANSFORM's fitters rather than window SQL keeps every rule identical to TRANSFORM's:
vocabularies (top_k, frequency_threshold, ties broken alphabetically), dummy encoding's dropped
category, quantile buckets with empty ones dropped, a constant column scaled to 0.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from .transform import ml_call
from .transform_functions import MULTI, SINGLE, Fetch, Fitter, TransformError

ARGUMENT = "__sqlml_arg"
ROW_WISE = ("BUCKETIZE", "FEATURE_CROSS", "POLYNOMIAL_EXPAND")  # BigQuery's non-analytic ones
KNOWN = sorted({*SINGLE, *MULTI})


@dataclass
class Analytic:
    """An analytic preprocessing call the executor computes; its SQL replaces ``placeholder``."""

    placeholder: str
    call_sql: str  # ML.fn(__sqlml_arg, constant arguments...) in the sqlml dialect
    argument_sql: str  # the call's first argument as written, in the engine's dialect
    select: exp.Select | None = None  # the enclosing SELECT while planning
    rows_sql: str = ""  # the enclosing SELECT's input rows, the argument as __sqlml_arg


def rewrite(statement: exp.Expr, name: t.Callable[[str], str], lazy: bool, dialect: str) -> list[Analytic]:
    """Replace every ``ML.<preprocessing function>`` of ``statement``, innermost first: row-wise ones
    by their SQL, analytic ones by placeholders (returned; call :func:`finish` once the statement's
    ML.* table functions are replaced)."""
    analytics: list[Analytic] = []
    for dot in reversed(list(statement.find_all(exp.Dot))):
        found = ml_call(dot)
        if found is None:
            continue
        function, call, target = found
        if function not in KNOWN:
            raise TransformError(f"ML.{function} is not a function sqlml knows. Preprocessing functions: "
                                 f"{', '.join('ML.' + f for f in KNOWN)}.")
        windowed = isinstance(target, exp.Window)
        if function in ROW_WISE:
            if windowed:
                raise TransformError(f"ML.{function} is not an analytic function: drop its OVER ().")
            target.replace(_row_wise(function, call, dialect))
            continue
        if not windowed:
            raise TransformError(f"ML.{function} is an analytic function: write ML.{function}(...) OVER ().")
        placeholders = {a.placeholder for a in analytics}
        if any(c.name in placeholders for c in call.find_all(exp.Column)):
            raise TransformError(f"The argument of ML.{function} cannot be an analytic function; compute it in "
                                 "a subquery first.")
        analytics.append(_placeholder(function, call, target, name, lazy, dialect))
    return analytics


def _row_wise(function: str, call: exp.Anonymous, dialect: str) -> exp.Expr:
    def no_statistics(sql: str) -> list[tuple]:
        raise AssertionError("row-wise preprocessing needs no statistics")
    return _compiled(function, call, Fitter(no_statistics, "", dialect))


def _compiled(function: str, call: exp.Anonymous, fitter: Fitter) -> exp.Expr:
    """The call as one expression with its statistics (gathered by ``fitter``) as constants: for the
    several-column functions, BigQuery's one ARRAY or STRUCT value."""
    return MULTI[function](fitter, call, "")[2] if function in MULTI else SINGLE[function](fitter, call)[1]


def _placeholder(function: str, call: exp.Anonymous, target: exp.Expr, name: t.Callable[[str], str],
                 lazy: bool, dialect: str) -> Analytic:
    if lazy:
        raise TransformError(f"ML.{function} cannot be used inside CREATE VIEW: its statistics are computed "
                             "when the statement runs. Use CREATE TABLE ... AS instead.")
    select = target.find_ancestor(exp.Select)
    if not call.expressions:
        raise TransformError(f"ML.{function} needs the expression to transform as its first argument.")
    argument = call.expressions[0]
    generic = call.copy()
    generic.expressions[0].replace(exp.column(ARGUMENT))
    # The closing underscores keep one placeholder from being the prefix of another (_1__ in _12__).
    analytic = Analytic(name("prep") + "__", f"ML.{generic.sql('sqlml')}", argument.sql(dialect), select)
    target.replace(exp.column(analytic.placeholder))
    return analytic


def finish(analytics: list[Analytic], dialect: str) -> None:
    """Write each call's input-rows query, now that the statement is final."""
    for analytic in analytics:
        analytic.rows_sql = _rows_sql(analytic, dialect)
        analytic.select = None


def _rows_sql(analytic: Analytic, dialect: str) -> str:
    argument = sqlglot.parse_one(analytic.argument_sql, read=dialect)
    if analytic.select is None:
        return exp.select(exp.alias_(argument, ARGUMENT)).sql(dialect)
    rows = analytic.select.copy()
    for clause in ("distinct", "qualify", "order", "limit", "offset"):
        rows.set(clause, None)
    rows.set("expressions", [exp.alias_(argument, ARGUMENT)])
    own = rows.args.get("with_")
    ctes = [c.copy() for c in _visible_ctes(analytic.select)] + (list(own.expressions) if own else [])
    if ctes:
        rows.set("with_", exp.With(expressions=ctes))
    return rows.sql(dialect)


def _visible_ctes(node: exp.Expr) -> list[exp.CTE]:
    """The CTEs above ``node`` that it may read, outermost first: all of a WITH whose query holds it,
    and those before it in a WITH one of whose CTEs holds it."""
    found: list[exp.CTE] = []
    child, parent = node, node.parent
    while parent is not None:
        if isinstance(parent, exp.With):
            before = next(i for i, cte in enumerate(parent.expressions) if cte is child)
            found = list(parent.expressions[:before]) + found
        elif isinstance(parent.args.get("with_"), exp.With) and parent.args["with_"] is not child:
            found = list(parent.args["with_"].expressions) + found
        child, parent = parent, parent.parent
    return found


def fill(analytics: list[Analytic], fetch: Fetch, dialect: str, sql: str | None) -> str | None:
    """``sql`` with each placeholder it holds replaced by its call compiled over its input rows (whose
    query may itself hold the placeholder of a call in a CTE it reads)."""
    for analytic in analytics:
        if sql is not None and analytic.placeholder in sql:
            rows = fill(analytics, fetch, dialect, analytic.rows_sql)
            sql = sql.replace(analytic.placeholder, f"({compile_call(analytic, rows, fetch, dialect)})")
    return sql


def compile_call(analytic: Analytic, rows_sql: str, fetch: Fetch, dialect: str) -> str:
    """The call as SQL in ``dialect`` (the engine's) with its statistics (gathered over ``rows_sql``) as constants."""
    function, call, _ = ml_call(sqlglot.parse_one(analytic.call_sql, read="sqlml"))
    node = _compiled(function, call, Fitter(fetch, rows_sql, dialect))
    argument = sqlglot.parse_one(analytic.argument_sql, read=dialect)
    for column in list(node.find_all(exp.Column)):
        if column.name == ARGUMENT and not column.table:
            column.replace(exp.paren(argument.copy()))
    return node.sql(dialect)
