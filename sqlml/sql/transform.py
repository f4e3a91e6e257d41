"""The TRANSFORM clause of CREATE MODEL, fitted once and replayed as plain SQL.

At training, each BigQuery preprocessing function (``ML.STANDARD_SCALER(x) OVER ()``, ...) gets its
statistics from SQL aggregates over the rows of the training query, and is then *compiled* into an
ordinary expression with those statistics as constants (:mod:`sqlml.sql.transform_functions`)::

    ML.STANDARD_SCALER(bill_length_mm) OVER () AS bill
    →  (CAST(bill_length_mm AS DOUBLE) - 43.92192982456141e0) / 5.4595837139265315e0 AS bill

The model trains on ``SELECT <compiled list> FROM (query)`` and every later ML.* call that reads
data wraps its input the same way (:func:`wrap_sql`), so training and prediction run the very same
SQL. The statistics' queries run through a ``fetch`` the caller passes: this layer holds no engine.
The fitted state is JSON (compiled SQL plus statistics) kept in the authenticated model header. The
compiled SQL is stored in one canonical form, sqlml's own dialect (:data:`CANONICAL`, which is also
what every version stored before engines had dialects of their own holds), and written for the engine
that runs it when it is used, so a model trained on DuckDB scores on Spark and the other way round.

ONE_HOT_ENCODER, FEATURE_CROSS and POLYNOMIAL_EXPAND give the model one column per part
(``<alias>_<part>``); ML.TRANSFORM shows BigQuery's one ARRAY or STRUCT instead (``shaped`` in the
state). Deviation from BigQuery (see docs/feature_engineering.md): quantiles are exact (linear
interpolation, numpy's default) rather than APPROX_QUANTILES.
"""

from __future__ import annotations

import functools
import typing as t

import sqlglot
from sqlglot import exp

from ..errors import DataError
from .nodes import OtherColumns, query
from .transform_functions import (
    MULTI,
    SINGLE,
    SOURCE,
    Fetch,
    Fitter,
    TransformError,
    named,
)

#: The dialect compiled TRANSFORM SQL is stored in.
CANONICAL = "sqlml"


def quoted(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql()


@functools.lru_cache(maxsize=4096)
def _stored(sql: str) -> exp.Expr:
    """A compiled expression as stored (canonical), read back; copy it before changing it."""
    return sqlglot.parse_one(sql, read=CANONICAL)


def ml_call(node: exp.Expr) -> tuple[str, exp.Anonymous, exp.Expr] | None:
    """(function name, call, node to replace) when ``node`` is ``ML.fn(...)`` (with or without OVER)."""
    if isinstance(node, exp.Dot) and isinstance(node.this, exp.Identifier) and node.this.name.upper() == "ML" \
            and isinstance(node.expression, exp.Anonymous):
        target = node.parent if isinstance(node.parent, exp.Window) else node
        if isinstance(target, exp.Window) and any(target.args.get(a) for a in ("partition_by", "order", "spec", "alias")):
            raise TransformError(f"ML.{node.expression.name.upper()} takes an empty OVER (): statistics come from all rows.")
        return node.expression.name.upper(), node.expression, target
    return None


def _inner_ml_call(node: exp.Expr) -> tuple[str, exp.Anonymous, exp.Expr] | None:
    """The first ``ML.fn(...)`` within ``node``, as :func:`ml_call` describes it."""
    return next((m for m in map(ml_call, node.find_all(exp.Dot)) if m), None)


def _items(transform_sqls: list[str], columns: list[str]) -> list[tuple[str, exp.Expr]]:
    """(output name, expression) of every TRANSFORM item, with ``*`` expanded over the query's columns."""
    items = []
    for text in transform_sqls:
        node = sqlglot.parse_one(text, read="sqlml")
        if isinstance(node, exp.Star):
            excluded = {c.name for c in node.args.get("except_") or node.args.get("except") or []}
            unknown = excluded - set(columns)
            if unknown:
                raise TransformError(f"TRANSFORM excludes unknown column(s) {', '.join(sorted(unknown))}.")
            items += [(c, exp.column(c, quoted=True)) for c in columns if c not in excluded]
        elif not isinstance(node, exp.PropertyEQ) and (named_item := named(node)) is not None:
            items.append(named_item)
        else:
            raise TransformError(f"Every TRANSFORM item needs a name: write {text} AS name.")
    names = [n for n, _ in items]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise TransformError(f"TRANSFORM produces column(s) {', '.join(duplicated)} more than once.")
    return items


def fit(fetch: Fetch, columns: list[str], transform_sqls: list[str], query_sql: str, label: str | None,
        keep: t.Iterable[str] = (), dialect: str = CANONICAL) -> dict:
    """Fit every preprocessing function on the rows of ``query_sql`` and compile the TRANSFORM list.

    ``fetch`` runs the statistics' queries, written in ``dialect`` (the engine's), and ``columns`` are
    the query's column names (the engine stays with the caller). ``transform_sqls`` are the items in
    the canonical dialect. ``label`` must come out of the TRANSFORM (BigQuery's rule); ``keep`` names
    query columns that training needs besides the features (data_split_col, instance_weight_col),
    passed through as they are.
    """
    fitter = Fitter(fetch, query_sql, dialect)
    compiled: list[dict] = []
    shaped: dict[str, str] = {}
    for name, node in _items(transform_sqls, columns):
        items, shaped_sql = _compile_item(fitter, name, node)
        compiled += items
        if shaped_sql is not None:
            shaped[name] = shaped_sql
    names = [c["name"] for c in compiled]
    if label is not None and label not in names:
        raise TransformError(f"The label column '{label}' must come out of the TRANSFORM clause: list it "
                             f"(TRANSFORM (..., {label})) or select * there.")
    for c in compiled:
        c["role"] = "label" if c["name"] == label else "feature"
    passthrough = [c for c in keep if c and c in columns and c not in names]
    return {"items": compiled, "passthrough": passthrough, "source": list(transform_sqls), "shaped": shaped}


def _compile_item(fitter: Fitter, name: str, node: exp.Expr) -> tuple[list[dict], str | None]:
    """The item's compiled columns; for ONE_HOT_ENCODER, FEATURE_CROSS and POLYNOMIAL_EXPAND also
    BigQuery's one ARRAY/STRUCT value (ML.TRANSFORM shows it; the model trains on the columns)."""
    node = node.copy()
    found = ml_call(node) or _inner_ml_call(node)
    if found and found[0] in MULTI:
        function, call, target = found
        if target is not node:
            raise TransformError(f"ML.{function} makes several columns, so it must be a whole TRANSFORM item "
                                 f"(ML.{function}(...) AS {name}).")
        stats, columns, shaped = MULTI[function](fitter, call, name)
        return [{"name": n, "sql": e.sql(CANONICAL), "function": function, "statistics": stats,
                 "inputs": _inputs(node), "output": name} for n, e in columns], shaped.sql(CANONICAL)
    functions, statistics = [], {}
    while found:
        function, call, target = found
        if function not in SINGLE:
            known = ", ".join(f"ML.{f}" for f in sorted({**SINGLE, **MULTI}))
            raise TransformError(f"ML.{function} is not a preprocessing function TRANSFORM knows. Known: {known}.")
        inputs = _inputs(call)
        stats, replacement = SINGLE[function](fitter, call)
        if target is node:
            node = replacement
        else:
            target.replace(replacement)
        functions.append(function)
        statistics[function.lower()] = {**stats, "inputs": inputs}
        found = _inner_ml_call(node)
    return [{"name": name, "sql": node.sql(CANONICAL), "function": "+".join(functions) or None,
             "statistics": statistics or None, "inputs": _inputs(node),
             "unchanged": isinstance(node, exp.Column) and node.name == name}], None


def _inputs(node: exp.Expr) -> list[str]:
    return sorted({c.name for c in node.find_all(exp.Column)})


def _select(name: str, sql: str) -> exp.Expr:
    """``<stored expression> AS name``."""
    return exp.alias_(_stored(sql).copy(), exp.to_identifier(name, quoted=True))


def _over(selects: list[exp.Expr], input_sql: str, dialect: str) -> str:
    return exp.select(*selects).from_(query(input_sql, SOURCE)).sql(dialect)


def training_sql(state: dict, query_sql: str, dialect: str = CANONICAL) -> str:
    """The query the model is trained on: the compiled TRANSFORM over the training query, in ``dialect``
    (the engine's)."""
    parts = [_select(i["name"], i["sql"]) for i in state["items"]] + [exp.column(c, quoted=True) for c in state["passthrough"]]
    return _over(parts, query_sql, dialect)


def wrap_sql(state: dict, input_sql: str, columns: list[str] | None, bigquery_shape: bool = False,
             dialect: str = CANONICAL) -> str:
    """The input of an ML.* call as the model sees it, in ``dialect`` (the engine's): the compiled
    features first, then the label when the input can compute it, then the input's other columns unchanged.

    ``columns`` are the input's column names; without them (a view, stored as text) the other
    columns are those the input has besides the outputs (:class:`~sqlml.sql.nodes.OtherColumns`) and a
    computed label is left out. ``bigquery_shape`` (ML.TRANSFORM) shows each ONE_HOT_ENCODER /
    FEATURE_CROSS / POLYNOMIAL_EXPAND as BigQuery's one ARRAY or STRUCT column named by its alias
    instead of the model's columns."""
    features = [i for i in state["items"] if i["role"] == "feature"]
    # A label the TRANSFORM only passes through stays where the input has it (as in a view).
    label = [i for i in state["items"] if i["role"] == "label" and not i.get("unchanged")
             and columns is not None and set(i["inputs"]) <= set(columns)]
    selects = _shaped_selects(state, features + label) if bigquery_shape else \
        [(i["name"], i["sql"]) for i in features + label]
    names = {n for n, _ in selects}
    if columns is None:
        rest: list[exp.Expr] = [OtherColumns(expressions=[exp.to_identifier(n) for n in sorted(names)])]
    else:
        missing = sorted({c for i in features for c in i["inputs"]} - set(columns))
        if missing:
            raise DataError(f"The input is missing column(s) the model's TRANSFORM reads: {', '.join(missing)}.")
        rest = [exp.column(c, quoted=True) for c in columns if c not in names]
    return _over([_select(name, sql) for name, sql in selects] + rest, input_sql, dialect)


def _shaped_selects(state: dict, items: list[dict]) -> list[tuple[str, str]]:
    """(name, SQL) of the outputs with each multi-column item folded into its one BigQuery value
    (a model stored before ``shaped`` existed keeps its columns)."""
    shaped, selects, seen = state.get("shaped") or {}, [], set()
    for item in items:
        output = item.get("output")
        if output in shaped:
            if output not in seen:
                seen.add(output)
                selects.append((output, shaped[output]))
        else:
            selects.append((item["name"], item["sql"]))
    return selects


def annotate_schema(schema: list[dict], state: dict | None) -> list[dict]:
    """The registry's input_schema with each TRANSFORM feature's compiled SQL, for display."""
    if not state:
        return schema
    sql = {i["name"]: i["sql"] for i in state["items"]}
    return [{**c, "transform_sql": sql[c["name"]]} if c["name"] in sql else c for c in schema]
