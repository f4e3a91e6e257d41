"""The TRANSFORM clause of CREATE MODEL, fitted once and replayed as plain SQL.

At training, each BigQuery preprocessing function (``ML.STANDARD_SCALER(x) OVER ()``, ...) gets its
statistics from SQL aggregates over the rows of the training query, and is then *compiled* into an
ordinary expression with those statistics as constants::

    ML.STANDARD_SCALER(bill_length_mm) OVER () AS bill
    →  (CAST(bill_length_mm AS DOUBLE) - 43.92192982456141e0) / 5.4595837139265315e0 AS bill

The model trains on ``SELECT <compiled list> FROM (query)`` and every later ML.* call that reads
data wraps its input the same way (:func:`wrap_sql`), so training and prediction run the very same
SQL. The fitted state is JSON (compiled SQL plus statistics) kept in the authenticated model header.

Deviations from BigQuery (see docs/feature_engineering.md): quantiles are exact (linear
interpolation, numpy's default) rather than APPROX_QUANTILES; ONE_HOT_ENCODER, FEATURE_CROSS and
POLYNOMIAL_EXPAND expand into one column per output (``<alias>_<part>``) instead of an ARRAY or STRUCT.
"""

from __future__ import annotations

import itertools
import typing as t

import sqlglot
from sqlglot import exp

from ..engines.duckdb import DuckDBEngine
from ..errors import SqlmlError

SOURCE = "__sqlml_in"


DEFAULT_TOP_K, DEFAULT_FREQUENCY_THRESHOLD = 32_000, 5


class TransformError(SqlmlError):
    """A TRANSFORM item cannot be compiled (unknown function, bad argument, missing name...)."""


def number(value: float) -> str:
    """A DOUBLE literal that reads back as exactly ``value`` (an exponent keeps DuckDB off DECIMAL)."""
    text = repr(float(value))
    return text if "e" in text or "inf" in text or "nan" in text else text + "e0"


def string(value: str) -> str:
    return exp.Literal.string(value).sql()


def quoted(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql()


class Fitter:
    """Computes statistics with the engine over ``(query)`` and compiles one ML.* call at a time."""

    def __init__(self, engine: "DuckDBEngine", query_sql: str, dialect: str):
        self.engine, self.query_sql, self.dialect = engine, query_sql, dialect

    def scalar_row(self, aggregates: list[str]) -> tuple:
        return self.engine.fetch(f"SELECT {', '.join(aggregates)} FROM ({self.query_sql}) AS {SOURCE}")[0]

    def counts(self, expr: str) -> list[tuple[str, int]]:
        """(value as text, count) of every non-NULL value of ``expr``."""
        rows = self.engine.fetch(f"SELECT CAST({expr} AS VARCHAR) AS v, count(*) AS n FROM ({self.query_sql}) AS {SOURCE} "
                                 "WHERE v IS NOT NULL GROUP BY v")
        return [(v, int(n)) for v, n in rows]

    def sql(self, node: exp.Expr) -> str:
        return node.sql(self.dialect)


def _double(sql: str) -> str:
    return f"CAST({sql} AS DOUBLE)"


def _args(call: exp.Anonymous, name: str, low: int, high: int) -> list[exp.Expr]:
    args = list(call.expressions)
    if not low <= len(args) <= high:
        expected = str(low) if low == high else f"{low} to {high}"
        raise TransformError(f"ML.{name} takes {expected} argument(s); got {len(args)}.")
    return args


def _constant(node: exp.Expr | None, default: t.Any, name: str, what: str) -> t.Any:
    """A literal argument as a Python value (numbers, strings, booleans, arrays)."""
    if node is None:
        return default
    if isinstance(node, exp.Literal):
        return node.to_py() if node.is_string else float(node.this) if "." in node.this or "e" in node.this.lower() else int(node.this)
    if isinstance(node, exp.Neg):
        return -_constant(node.this, default, name, what)
    if isinstance(node, exp.Boolean):
        return node.this
    if isinstance(node, exp.Array):
        return [_constant(v, None, name, what) for v in node.expressions]
    raise TransformError(f"The {what} argument of ML.{name} must be a constant; got {node.sql()}.")


def _fit_standard_scaler(f: Fitter, call: exp.Anonymous) -> tuple[dict, str]:
    (arg,) = _args(call, "STANDARD_SCALER", 1, 1)
    x = _double(f.sql(arg))
    mean, std = f.scalar_row([f"avg({x})", f"stddev_samp({x})"])
    # BigQuery divides by the sample standard deviation; a constant column scales to 0.
    scale = std if std else 1.0
    stats = {"mean": mean, "stddev": std}
    return stats, f"({x} - {number(mean or 0.0)}) / {number(scale)}"


def _fit_min_max_scaler(f: Fitter, call: exp.Anonymous) -> tuple[dict, str]:
    (arg,) = _args(call, "MIN_MAX_SCALER", 1, 1)
    x = _double(f.sql(arg))
    low, high = f.scalar_row([f"min({x})", f"max({x})"])
    width = (high - low) if low is not None and high != low else 1.0
    scaled = f"({x} - {number(low or 0.0)}) / {number(width)}"
    # Values outside the training range are capped to [0, 1], as BigQuery does at prediction.
    return {"min": low, "max": high}, f"CASE WHEN {x} IS NULL THEN NULL ELSE least(greatest({scaled}, 0e0), 1e0) END"


def _fit_max_abs_scaler(f: Fitter, call: exp.Anonymous) -> tuple[dict, str]:
    (arg,) = _args(call, "MAX_ABS_SCALER", 1, 1)
    x = _double(f.sql(arg))
    (max_abs,) = f.scalar_row([f"max(abs({x}))"])
    return {"max_abs": max_abs}, f"{x} / {number(max_abs or 1.0)}"


def _fit_robust_scaler(f: Fitter, call: exp.Anonymous) -> tuple[dict, str]:
    args = _args(call, "ROBUST_SCALER", 1, 4)
    x = _double(f.sql(args[0]))
    low_q, high_q = _constant(args[1] if len(args) > 1 else None, [25, 75], "ROBUST_SCALER", "quantile_range")
    with_median = _constant(args[2] if len(args) > 2 else None, True, "ROBUST_SCALER", "with_median")
    with_range = _constant(args[3] if len(args) > 3 else None, True, "ROBUST_SCALER", "with_quantile_range")
    if not 0 < low_q < high_q < 100:
        raise TransformError(f"ML.ROBUST_SCALER's quantile_range must be [low, high] with 0 < low < high < 100; got [{low_q}, {high_q}].")
    (quantiles,) = f.scalar_row([f"quantile_cont({x}, [{low_q / 100!r}, 0.5, {high_q / 100!r}])"])
    q_low, median, q_high = quantiles if quantiles is not None else (0.0, 0.0, 1.0)
    center = median if with_median else 0.0
    spread = (q_high - q_low) if with_range and q_high != q_low else 1.0
    stats = {"median": median, "quantile_low": q_low, "quantile_high": q_high}
    return stats, f"({x} - {number(center)}) / {number(spread)}"


def _fit_imputer(f: Fitter, call: exp.Anonymous) -> tuple[dict, str]:
    arg, strategy_node = _args(call, "IMPUTER", 2, 2)
    strategy = _constant(strategy_node, None, "IMPUTER", "strategy")
    expr = f.sql(arg)
    if strategy in ("mean", "median"):
        x = _double(expr)
        (value,) = f.scalar_row([f"avg({x})" if strategy == "mean" else f"quantile_cont({x}, 0.5)"])
        return {strategy: value}, f"coalesce({x}, {number(value if value is not None else 0.0)})"
    if strategy == "most_frequent":
        counts = f.counts(expr)
        # Ties go to the smallest value, as scikit-learn's SimpleImputer does.
        value = min(counts, key=lambda vc: (-vc[1], vc[0]))[0] if counts else None
        return {"most_frequent": value}, f"coalesce(CAST({expr} AS VARCHAR), {string(value) if value is not None else 'NULL'})"
    raise TransformError(f"ML.IMPUTER's strategy must be 'mean', 'median' or 'most_frequent'; got {strategy!r}.")


def _bins(x: str, edges: list[float]) -> str:
    """'bin_1' below the first edge, 'bin_i' on [edge_{i-1}, edge_i), NULL stays NULL."""
    whens = " ".join(f"WHEN {x} < {number(e)} THEN 'bin_{i + 1}'" for i, e in enumerate(edges))
    return f"CASE WHEN {x} IS NULL THEN NULL {whens} ELSE 'bin_{len(edges) + 1}' END"


def _fit_bucketize(f: Fitter, call: exp.Anonymous) -> tuple[dict, str]:
    args = _args(call, "BUCKETIZE", 2, 4)
    splits = _constant(args[1], None, "BUCKETIZE", "array_split_points")
    exclude = _constant(args[2] if len(args) > 2 else None, False, "BUCKETIZE", "exclude_boundaries")
    _bucket_names_only(args[3] if len(args) > 3 else None, "BUCKETIZE")
    if not isinstance(splits, list) or not splits or sorted(splits) != splits:
        raise TransformError("ML.BUCKETIZE needs split points in increasing order, e.g. [10, 20, 30].")
    edges = splits[1:-1] if exclude else splits
    return {"split_points": edges}, _bins(_double(f.sql(args[0])), edges)


def _bucket_names_only(node: exp.Expr | None, name: str) -> None:
    output = _constant(node, "bucket_names", name, "output_format")
    if output != "bucket_names":
        raise TransformError(f"ML.{name} supports output_format 'bucket_names' only; got {output!r}.")


def _fit_quantile_bucketize(f: Fitter, call: exp.Anonymous) -> tuple[dict, str]:
    args = _args(call, "QUANTILE_BUCKETIZE", 2, 3)
    buckets = _constant(args[1], None, "QUANTILE_BUCKETIZE", "num_buckets")
    _bucket_names_only(args[2] if len(args) > 2 else None, "QUANTILE_BUCKETIZE")
    if not isinstance(buckets, int) or buckets < 1:
        raise TransformError(f"ML.QUANTILE_BUCKETIZE needs a positive integer number of buckets; got {buckets!r}.")
    x = _double(f.sql(args[0]))
    fractions = ", ".join(repr(i / buckets) for i in range(buckets + 1))
    (quantiles,) = f.scalar_row([f"quantile_cont({x}, [{fractions}])"])
    # Bins narrower than 1e-8 are dropped, as scikit-learn's KBinsDiscretizer does.
    kept: list[float] = []
    for q in quantiles or []:
        if not kept or q - kept[-1] > 1e-8:
            kept.append(q)
    edges = kept[1:-1]
    return {"quantiles": quantiles, "split_points": edges}, _bins(x, edges)


def _vocabulary(f: Fitter, expr: str, top_k: int, threshold: int) -> list[str]:
    """BigQuery's vocabulary: the top_k most frequent values seen at least ``threshold`` times,
    sorted alphabetically."""
    ranked = sorted(f.counts(expr), key=lambda vc: (-vc[1], vc[0]))
    return sorted(v for v, n in ranked[:top_k] if n >= threshold)


def _encoder_options(args: list[exp.Expr], start: int, name: str) -> tuple[int, int]:
    top_k = _constant(args[start] if len(args) > start else None, DEFAULT_TOP_K, name, "top_k")
    threshold = _constant(args[start + 1] if len(args) > start + 1 else None, DEFAULT_FREQUENCY_THRESHOLD, name,
                          "frequency_threshold")
    if not (isinstance(top_k, int) and top_k >= 1 and isinstance(threshold, int) and threshold >= 0):
        raise TransformError(f"ML.{name}'s top_k must be a positive integer and frequency_threshold a non-negative integer.")
    return top_k, threshold


def _fit_label_encoder(f: Fitter, call: exp.Anonymous) -> tuple[dict, str]:
    args = _args(call, "LABEL_ENCODER", 1, 3)
    expr = f"CAST({f.sql(args[0])} AS VARCHAR)"
    vocabulary = _vocabulary(f, expr, *_encoder_options(args, 1, "LABEL_ENCODER"))
    whens = " ".join(f"WHEN {string(v)} THEN {i + 1}" for i, v in enumerate(vocabulary))
    # NULL and values outside the vocabulary are 0.
    return {"vocabulary": vocabulary}, f"CASE {expr} {whens} ELSE 0 END" if vocabulary else "0"


def _fit_one_hot_encoder(f: Fitter, call: exp.Anonymous, alias: str) -> tuple[dict, list[tuple[str, str]]]:
    args = _args(call, "ONE_HOT_ENCODER", 1, 4)
    drop = _constant(args[1] if len(args) > 1 else None, "none", "ONE_HOT_ENCODER", "drop")
    if drop not in ("none", "most_frequent"):
        raise TransformError(f"ML.ONE_HOT_ENCODER's drop must be 'none' or 'most_frequent'; got {drop!r}.")
    expr = f"CAST({f.sql(args[0])} AS VARCHAR)"
    top_k, threshold = _encoder_options(args, 2, "ONE_HOT_ENCODER")
    vocabulary = _vocabulary(f, expr, top_k, threshold)
    dropped = None
    if drop == "most_frequent" and vocabulary:
        counts = dict(f.counts(expr))
        dropped = min(vocabulary, key=lambda v: (-counts[v], v))
    kept = [v for v in vocabulary if v != dropped]
    # NULL and unseen values are all zeros (BigQuery's index 0).
    columns = [(f"{alias}_{v}", f"CASE WHEN {expr} = {string(v)} THEN 1e0 ELSE 0e0 END") for v in kept]
    return {"vocabulary": vocabulary, "dropped": dropped}, columns


def _named(node: exp.Expr) -> tuple[str, exp.Expr] | None:
    """(name, expression) of ``expr AS name``, ``name := expr`` or a bare column; None when unnamed."""
    if isinstance(node, exp.PropertyEQ):
        return node.this.name, node.expression
    if isinstance(node, exp.Alias):
        return node.alias, node.this
    if isinstance(node, exp.Column):
        return node.name, node
    return None


def _struct_fields(call: exp.Anonymous, name: str, low_degree: int) -> tuple[list[tuple[str, exp.Expr]], int]:
    args = _args(call, name, 1, 2)
    if not isinstance(args[0], exp.Struct):
        raise TransformError(f"ML.{name} takes a STRUCT of columns first: ML.{name}(STRUCT(a, b)).")
    fields = []
    for e in args[0].expressions:
        named = _named(e)
        if named is None:
            raise TransformError(f"Every field of ML.{name}'s STRUCT needs a name: write {e.sql()} AS name.")
        fields.append(named)
    if len({n for n, _ in fields}) != len(fields) or not 1 <= len(fields) <= 10:
        raise TransformError(f"ML.{name} takes 1 to 10 distinct named features.")
    degree = _constant(args[1] if len(args) > 1 else None, 2, name, "degree")
    if not isinstance(degree, int) or not low_degree <= degree <= 4:
        raise TransformError(f"ML.{name}'s degree must be an integer in [{low_degree}, 4]; got {degree!r}.")
    return fields, degree


def _fit_feature_cross(f: Fitter, call: exp.Anonymous, alias: str) -> tuple[dict, list[tuple[str, str]]]:
    fields, degree = _struct_fields(call, "FEATURE_CROSS", 2)
    columns = []
    for size in range(2, degree + 1):
        for combo in itertools.combinations(fields, size):
            parts = " || '_' || ".join(f"CAST({f.sql(e)} AS VARCHAR)" for _, e in combo)
            columns.append((f"{alias}_{'_'.join(n for n, _ in combo)}", parts))
    return {"degree": degree}, columns


def _fit_polynomial_expand(f: Fitter, call: exp.Anonymous, alias: str) -> tuple[dict, list[tuple[str, str]]]:
    fields, degree = _struct_fields(call, "POLYNOMIAL_EXPAND", 1)
    columns = []
    for size in range(1, degree + 1):
        for combo in itertools.combinations_with_replacement(fields, size):
            product = " * ".join(_double(f.sql(e)) for _, e in combo)
            columns.append((f"{alias}_{'_'.join(n for n, _ in combo)}", product))
    return {"degree": degree}, sorted(columns)  # BigQuery orders the output fields by name


SINGLE = {
    "STANDARD_SCALER": _fit_standard_scaler,
    "MIN_MAX_SCALER": _fit_min_max_scaler,
    "MAX_ABS_SCALER": _fit_max_abs_scaler,
    "ROBUST_SCALER": _fit_robust_scaler,
    "IMPUTER": _fit_imputer,
    "BUCKETIZE": _fit_bucketize,
    "QUANTILE_BUCKETIZE": _fit_quantile_bucketize,
    "LABEL_ENCODER": _fit_label_encoder,
}


MULTI = {
    "ONE_HOT_ENCODER": _fit_one_hot_encoder,
    "FEATURE_CROSS": _fit_feature_cross,
    "POLYNOMIAL_EXPAND": _fit_polynomial_expand,
}


def _ml_call(node: exp.Expr) -> tuple[str, exp.Anonymous, exp.Expr] | None:
    """(function name, call, node to replace) when ``node`` is ``ML.fn(...)`` (with or without OVER)."""
    if isinstance(node, exp.Dot) and isinstance(node.this, exp.Identifier) and node.this.name.upper() == "ML" \
            and isinstance(node.expression, exp.Anonymous):
        target = node.parent if isinstance(node.parent, exp.Window) else node
        if isinstance(target, exp.Window) and (target.args.get("partition_by") or target.args.get("order")):
            raise TransformError(f"ML.{node.expression.name.upper()} takes an empty OVER (): statistics come from all rows.")
        return node.expression.name.upper(), node.expression, target
    return None


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
        elif not isinstance(node, exp.PropertyEQ) and (named := _named(node)) is not None:
            items.append(named)
        else:
            raise TransformError(f"Every TRANSFORM item needs a name: write {text} AS name.")
    names = [n for n, _ in items]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise TransformError(f"TRANSFORM produces column(s) {', '.join(duplicated)} more than once.")
    return items


def fit(engine: "DuckDBEngine", transform_sqls: list[str], query_sql: str, label: str | None,
        keep: t.Iterable[str] = (), dialect: str = "sqlml") -> dict:
    """Fit every preprocessing function on the rows of ``query_sql`` and compile the TRANSFORM list.

    ``label`` must come out of the TRANSFORM (BigQuery's rule); ``keep`` names query columns that
    training needs besides the features (data_split_col, instance_weight_col), passed through as they are.
    """
    columns = engine.schema(query_sql).names
    fitter = Fitter(engine, query_sql, dialect)
    compiled: list[dict] = []
    for name, node in _items(transform_sqls, columns):
        compiled += _compile_item(fitter, name, node)
    names = [c["name"] for c in compiled]
    if label is not None and label not in names:
        raise TransformError(f"The label column '{label}' must come out of the TRANSFORM clause: list it "
                             f"(TRANSFORM (..., {label})) or select * there.")
    for c in compiled:
        c["role"] = "label" if c["name"] == label else "feature"
    passthrough = [c for c in keep if c and c in columns and c not in names]
    return {"items": compiled, "passthrough": passthrough, "source": list(transform_sqls)}


def _compile_item(fitter: Fitter, name: str, node: exp.Expr) -> list[dict]:
    node = node.copy()
    found = _ml_call(node) or next((m for m in map(_ml_call, node.find_all(exp.Dot)) if m), None)
    if found and found[0] in MULTI:
        function, call, target = found
        if target is not node:
            raise TransformError(f"ML.{function} makes several columns, so it must be a whole TRANSFORM item "
                                 f"(ML.{function}(...) AS {name}).")
        stats, columns = MULTI[function](fitter, call, name)
        return [{"name": n, "sql": _normalize(s, fitter.dialect), "function": function, "statistics": stats,
                 "inputs": _inputs(node)} for n, s in columns]
    functions, statistics = [], {}
    while found:
        function, call, target = found
        if function not in SINGLE:
            known = ", ".join(f"ML.{f}" for f in sorted({**SINGLE, **MULTI}))
            raise TransformError(f"ML.{function} is not a preprocessing function TRANSFORM knows. Known: {known}.")
        inputs = _inputs(call)
        stats, sql = SINGLE[function](fitter, call)
        replacement = sqlglot.parse_one(sql, read="sqlml")
        if target is node:
            node = replacement
        else:
            target.replace(replacement)
        functions.append(function)
        statistics[function.lower()] = {**stats, "inputs": inputs}
        found = next((m for m in map(_ml_call, node.find_all(exp.Dot)) if m), None)
    return [{"name": name, "sql": node.sql(fitter.dialect), "function": "+".join(functions) or None,
             "statistics": statistics or None, "inputs": _inputs(node),
             "unchanged": isinstance(node, exp.Column) and node.name == name}]


def _normalize(sql: str, dialect: str) -> str:
    return sqlglot.parse_one(sql, read="sqlml").sql(dialect)


def _inputs(node: exp.Expr) -> list[str]:
    return sorted({c.name for c in node.find_all(exp.Column)})


def _select(item: dict) -> str:
    return f"{item['sql']} AS {quoted(item['name'])}"


def training_sql(state: dict, query_sql: str) -> str:
    """The query the model is trained on: the compiled TRANSFORM over the training query."""
    parts = [_select(i) for i in state["items"]] + [quoted(c) for c in state["passthrough"]]
    return f"SELECT {', '.join(parts)} FROM ({query_sql}) AS {SOURCE}"


def wrap_sql(state: dict, input_sql: str, columns: list[str] | None) -> str:
    """The input of an ML.* call as the model sees it: the compiled features first, then the label
    when the input can compute it, then the input's other columns unchanged.

    ``columns`` are the input's column names; without them (a view, stored as text) the other
    columns are selected with DuckDB's ``COLUMNS(lambda ...)`` and a computed label is left out."""
    features = [i for i in state["items"] if i["role"] == "feature"]
    # A label the TRANSFORM only passes through stays where the input has it (as in a view).
    label = [i for i in state["items"] if i["role"] == "label" and not i.get("unchanged")
             and columns is not None and set(i["inputs"]) <= set(columns)]
    outputs = features + label
    names = {i["name"] for i in outputs}
    if columns is None:
        excluded = ", ".join(string(n) for n in sorted(names))
        rest = [f"COLUMNS(lambda c: c NOT IN ({excluded}))"]
    else:
        missing = sorted({c for i in features for c in i["inputs"]} - set(columns))
        if missing:
            raise SqlmlError(f"The input is missing column(s) the model's TRANSFORM reads: {', '.join(missing)}.")
        rest = [quoted(c) for c in columns if c not in names]
    return f"SELECT {', '.join([_select(i) for i in outputs] + rest)} FROM ({input_sql}) AS {SOURCE}"


def annotate_schema(schema: list[dict], state: dict | None) -> list[dict]:
    """The registry's input_schema with each TRANSFORM feature's compiled SQL, for display."""
    if not state:
        return schema
    sql = {i["name"]: i["sql"] for i in state["items"]}
    return [{**c, "transform_sql": sql[c["name"]]} if c["name"] in sql else c for c in schema]
