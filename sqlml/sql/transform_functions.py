"""BigQuery's preprocessing functions of a TRANSFORM clause (``ML.STANDARD_SCALER`` ...), each compiled
into an ordinary SQL expression with the statistics it gathers from the training query as constants.

Everything here is a sqlglot expression: the statistics' queries are written in the dialect of the
engine that runs them, the compiled expressions in whichever dialect the caller needs (sqlml's
canonical one to store them, :mod:`sqlml.sql.transform`). The statistics come through a
``fetch(sql) -> rows`` the caller passes, so this layer runs no engine itself.
:mod:`sqlml.sql.transform` finds the calls in the clause and assembles the compiled list.
"""

from __future__ import annotations

import itertools
import typing as t

from sqlglot import exp

from ..errors import SqlmlError
from .nodes import Quantiles, double, query

SOURCE = "__sqlml_in"
DEFAULT_TOP_K, DEFAULT_FREQUENCY_THRESHOLD = 32_000, 5

#: Runs a query and returns its rows (the engine's ``fetch``).
Fetch = t.Callable[[str], list[tuple]]


class TransformError(SqlmlError):
    """A TRANSFORM item cannot be compiled (unknown function, bad argument, missing name...)."""


def string(value: str) -> exp.Literal:
    return exp.Literal.string(value)


def _text(node: exp.Expr) -> exp.Expr:
    return exp.cast(node.copy(), "TEXT")


def _double(node: exp.Expr) -> exp.Expr:
    return exp.cast(node.copy(), "DOUBLE")


def _function(name: str, *args: exp.Expr) -> exp.Expr:
    return exp.func(name, *args, dialect="sqlml")


class Fitter:
    """Gathers statistics over the rows of ``(query)`` through ``fetch`` for one ML.* call at a time; the
    queries are written in ``dialect``, the engine's."""

    def __init__(self, fetch: Fetch, query_sql: str, dialect: str):
        self.fetch, self.query_sql, self.dialect = fetch, query_sql, dialect

    def scalar_row(self, aggregates: list[exp.Expr]) -> tuple:
        return self.fetch(exp.select(*aggregates).from_(query(self.query_sql, SOURCE)).sql(self.dialect))[0]

    def counts(self, node: exp.Expr) -> list[tuple[str, int]]:
        """(value as text, count) of every non-NULL value of ``node`` (an expression of TEXT)."""
        values = exp.select(exp.alias_(node.copy(), "v")).from_(query(self.query_sql, SOURCE)).subquery("__sqlml_values")
        counted = (exp.select("v", exp.alias_(exp.Count(this=exp.Star()), "n")).from_(values)
                   .where(exp.column("v").is_(exp.null()).not_()).group_by("v"))
        return [(v, int(n)) for v, n in self.fetch(counted.sql(self.dialect))]


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


def _only_number(call: exp.Anonymous, name: str) -> exp.Expr:
    """The one argument of a scaler, as DOUBLE."""
    (arg,) = _args(call, name, 1, 1)
    return _double(arg)


def _option(args: list[exp.Expr], position: int, default: t.Any, name: str, what: str) -> t.Any:
    """The constant at ``position`` of an optional argument, or ``default`` when the call stops before it."""
    return _constant(args[position] if len(args) > position else None, default, name, what)


def _by_frequency(counts: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Most frequent first, ties to the smallest value (as scikit-learn's SimpleImputer breaks them)."""
    return sorted(counts, key=lambda vc: (-vc[1], vc[0]))


def _scaled(x: exp.Expr, center: float, scale: float) -> exp.Expr:
    """``(x - center) / scale``."""
    return exp.Div(this=exp.paren(exp.Sub(this=x.copy(), expression=double(center))), expression=double(scale))


def _fit_standard_scaler(f: Fitter, call: exp.Anonymous) -> tuple[dict, exp.Expr]:
    x = _only_number(call, "STANDARD_SCALER")
    mean, std = f.scalar_row([_function("avg", x.copy()), _function("stddev_samp", x.copy())])
    # BigQuery divides by the sample standard deviation; a constant column scales to 0.
    scale = std if std else 1.0
    stats = {"mean": mean, "stddev": std}
    return stats, _scaled(x, mean or 0.0, scale)


def _fit_min_max_scaler(f: Fitter, call: exp.Anonymous) -> tuple[dict, exp.Expr]:
    x = _only_number(call, "MIN_MAX_SCALER")
    low, high = f.scalar_row([_function("min", x.copy()), _function("max", x.copy())])
    width = (high - low) if low is not None and high != low else 1.0
    scaled = _scaled(x, low or 0.0, width)
    # Values outside the training range are capped to [0, 1], as BigQuery does at prediction.
    capped = _function("least", _function("greatest", scaled, double(0.0)), double(1.0))
    return {"min": low, "max": high}, exp.case().when(x.copy().is_(exp.null()), exp.null()).else_(capped)


def _fit_max_abs_scaler(f: Fitter, call: exp.Anonymous) -> tuple[dict, exp.Expr]:
    x = _only_number(call, "MAX_ABS_SCALER")
    (max_abs,) = f.scalar_row([_function("max", _function("abs", x.copy()))])
    return {"max_abs": max_abs}, exp.Div(this=x, expression=double(max_abs or 1.0))


def _quantiles(x: exp.Expr, fractions: list[float]) -> exp.Expr:
    return Quantiles(this=x.copy(), expressions=[exp.Literal.number(repr(q)) for q in fractions])


def _fit_robust_scaler(f: Fitter, call: exp.Anonymous) -> tuple[dict, exp.Expr]:
    args = _args(call, "ROBUST_SCALER", 1, 4)
    x = _double(args[0])
    low_q, high_q = _option(args, 1, [25, 75], "ROBUST_SCALER", "quantile_range")
    with_median = _option(args, 2, True, "ROBUST_SCALER", "with_median")
    with_range = _option(args, 3, True, "ROBUST_SCALER", "with_quantile_range")
    if not 0 < low_q < high_q < 100:
        raise TransformError(f"ML.ROBUST_SCALER's quantile_range must be [low, high] with 0 < low < high < 100; got [{low_q}, {high_q}].")
    (quantiles,) = f.scalar_row([_quantiles(x, [low_q / 100, 0.5, high_q / 100])])
    q_low, median, q_high = quantiles if quantiles is not None else (0.0, 0.0, 1.0)
    center = median if with_median else 0.0
    spread = (q_high - q_low) if with_range and q_high != q_low else 1.0
    stats = {"median": median, "quantile_low": q_low, "quantile_high": q_high}
    return stats, _scaled(x, center, spread)


def _fit_imputer(f: Fitter, call: exp.Anonymous) -> tuple[dict, exp.Expr]:
    arg, strategy_node = _args(call, "IMPUTER", 2, 2)
    strategy = _constant(strategy_node, None, "IMPUTER", "strategy")
    if strategy in ("mean", "median"):
        x = _double(arg)
        (value,) = f.scalar_row([_function("avg", x.copy()) if strategy == "mean" else _quantiles(x, [0.5])])
        value = value[0] if isinstance(value, list) else value
        return {strategy: value}, _function("coalesce", x, double(value if value is not None else 0.0))
    if strategy == "most_frequent":
        ranked = _by_frequency(f.counts(_text(arg)))
        value = ranked[0][0] if ranked else None
        return {"most_frequent": value}, _function("coalesce", _text(arg),
                                                   string(value) if value is not None else exp.null())
    raise TransformError(f"ML.IMPUTER's strategy must be 'mean', 'median' or 'most_frequent'; got {strategy!r}.")


def _bins(x: exp.Expr, edges: list[float]) -> exp.Expr:
    """'bin_1' below the first edge, 'bin_i' on [edge_{i-1}, edge_i), NULL stays NULL."""
    case = exp.case().when(x.copy().is_(exp.null()), exp.null())
    for i, e in enumerate(edges):
        case = case.when(exp.LT(this=x.copy(), expression=double(e)), string(f"bin_{i + 1}"))
    return case.else_(string(f"bin_{len(edges) + 1}"))


def _bucket_names_only(args: list[exp.Expr], position: int, name: str) -> None:
    output = _option(args, position, "bucket_names", name, "output_format")
    if output != "bucket_names":
        raise TransformError(f"ML.{name} supports output_format 'bucket_names' only; got {output!r}.")


def _fit_bucketize(f: Fitter, call: exp.Anonymous) -> tuple[dict, exp.Expr]:
    args = _args(call, "BUCKETIZE", 2, 4)
    splits = _constant(args[1], None, "BUCKETIZE", "array_split_points")
    exclude = _option(args, 2, False, "BUCKETIZE", "exclude_boundaries")
    _bucket_names_only(args, 3, "BUCKETIZE")
    if not isinstance(splits, list) or not splits or sorted(splits) != splits:
        raise TransformError("ML.BUCKETIZE needs split points in increasing order, e.g. [10, 20, 30].")
    edges = splits[1:-1] if exclude else splits
    return {"split_points": edges}, _bins(_double(args[0]), edges)


def _fit_quantile_bucketize(f: Fitter, call: exp.Anonymous) -> tuple[dict, exp.Expr]:
    args = _args(call, "QUANTILE_BUCKETIZE", 2, 3)
    buckets = _constant(args[1], None, "QUANTILE_BUCKETIZE", "num_buckets")
    _bucket_names_only(args, 2, "QUANTILE_BUCKETIZE")
    if not isinstance(buckets, int) or buckets < 1:
        raise TransformError(f"ML.QUANTILE_BUCKETIZE needs a positive integer number of buckets; got {buckets!r}.")
    x = _double(args[0])
    (quantiles,) = f.scalar_row([_quantiles(x, [i / buckets for i in range(buckets + 1)])])
    # Bins narrower than 1e-8 are dropped, as scikit-learn's KBinsDiscretizer does.
    kept: list[float] = []
    for q in quantiles or []:
        if not kept or q - kept[-1] > 1e-8:
            kept.append(q)
    edges = kept[1:-1]
    return {"quantiles": quantiles, "split_points": edges}, _bins(x, edges)


def _encoder_options(args: list[exp.Expr], start: int, name: str) -> tuple[int, int]:
    """top_k and frequency_threshold, the arguments from ``start``."""
    top_k = _option(args, start, DEFAULT_TOP_K, name, "top_k")
    threshold = _option(args, start + 1, DEFAULT_FREQUENCY_THRESHOLD, name, "frequency_threshold")
    if not (isinstance(top_k, int) and top_k >= 1 and isinstance(threshold, int) and threshold >= 0):
        raise TransformError(f"ML.{name}'s top_k must be a positive integer and frequency_threshold a non-negative integer.")
    return top_k, threshold


def _vocabulary(counts: list[tuple[str, int]], top_k: int, threshold: int) -> list[str]:
    """BigQuery's vocabulary: the top_k most frequent values seen at least ``threshold`` times,
    sorted alphabetically."""
    return sorted(v for v, n in _by_frequency(counts)[:top_k] if n >= threshold)


def _index(value: exp.Expr, vocabulary: list[str]) -> exp.Expr:
    """The 1-based position of ``value`` in ``vocabulary``; 0 for NULL and values outside it."""
    if not vocabulary:
        return exp.Literal.number(0)
    case = exp.case(value.copy())
    for i, v in enumerate(vocabulary):
        case = case.when(string(v), exp.Literal.number(i + 1))
    return case.else_(exp.Literal.number(0))


def _fit_label_encoder(f: Fitter, call: exp.Anonymous) -> tuple[dict, exp.Expr]:
    args = _args(call, "LABEL_ENCODER", 1, 3)
    value = _text(args[0])
    top_k, threshold = _encoder_options(args, 1, "LABEL_ENCODER")
    vocabulary = _vocabulary(f.counts(value), top_k, threshold)
    return {"vocabulary": vocabulary}, _index(value, vocabulary)


def _fit_one_hot_encoder(f: Fitter, call: exp.Anonymous, alias: str) -> tuple[dict, list[tuple[str, exp.Expr]], exp.Expr]:
    args = _args(call, "ONE_HOT_ENCODER", 1, 4)
    drop = _option(args, 1, "none", "ONE_HOT_ENCODER", "drop")
    if drop not in ("none", "most_frequent"):
        raise TransformError(f"ML.ONE_HOT_ENCODER's drop must be 'none' or 'most_frequent'; got {drop!r}.")
    value = _text(args[0])
    top_k, threshold = _encoder_options(args, 2, "ONE_HOT_ENCODER")
    counts = f.counts(value)  # once for the vocabulary and the dropped value
    vocabulary = _vocabulary(counts, top_k, threshold)
    known = set(vocabulary)
    ranked = _by_frequency([vc for vc in counts if vc[0] in known])
    dropped = ranked[0][0] if drop == "most_frequent" and ranked else None
    kept = [v for v in vocabulary if v != dropped]
    # NULL and unseen values are all zeros (BigQuery's index 0).
    columns = [(f"{alias}_{v}", _indicator(value, v, double(1.0), double(0.0))) for v in kept]
    return {"vocabulary": vocabulary, "dropped": dropped}, columns, _one_hot_array(value, vocabulary, dropped)


def _indicator(value: exp.Expr, equal_to: str, then: exp.Expr, otherwise: exp.Expr) -> exp.Expr:
    return exp.case().when(exp.EQ(this=value.copy(), expression=string(equal_to)), then).else_(otherwise)


def _one_hot_array(value: exp.Expr, vocabulary: list[str], dropped: str | None) -> exp.Expr:
    """BigQuery's shape: ``[{index, value}]``, index the 1-based alphabetical position (0 for NULL and
    unseen values), value 1.0 except 0.0 for the category dummy encoding drops."""
    index = exp.cast(_index(value, vocabulary), "BIGINT")
    weight = _indicator(value, dropped, double(0.0), double(1.0)) if dropped is not None else double(1.0)
    return exp.Array(expressions=[_struct([("index", index), ("value", weight)])])


def _struct(fields: list[tuple[str, exp.Expr]]) -> exp.Struct:
    return exp.Struct(expressions=[exp.PropertyEQ(this=exp.to_identifier(n), expression=e) for n, e in fields])


def named(node: exp.Expr) -> tuple[str, exp.Expr] | None:
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
        field = named(e)
        if field is None:
            raise TransformError(f"Every field of ML.{name}'s STRUCT needs a name: write {e.sql()} AS name.")
        fields.append(field)
    if len({n for n, _ in fields}) != len(fields) or not 1 <= len(fields) <= 10:
        raise TransformError(f"ML.{name} takes 1 to 10 distinct named features.")
    degree = _option(args, 1, 2, name, "degree")
    if not isinstance(degree, int) or not low_degree <= degree <= 4:
        raise TransformError(f"ML.{name}'s degree must be an integer in [{low_degree}, 4]; got {degree!r}.")
    return fields, degree


def _combined(combos: t.Iterable[tuple[tuple[str, exp.Expr], ...]],
              join: t.Callable[[exp.Expr, exp.Expr], exp.Expr],
              each: t.Callable[[exp.Expr], exp.Expr]) -> list[tuple[str, exp.Expr]]:
    """(``<field>_<field>...``, expression) of every combination of STRUCT fields: ``each`` field joined."""
    return [("_".join(n for n, _ in combo), _joined([each(e) for _, e in combo], join)) for combo in combos]


def _joined(parts: list[exp.Expr], join: t.Callable[[exp.Expr, exp.Expr], exp.Expr]) -> exp.Expr:
    joined = parts[0]
    for part in parts[1:]:
        joined = join(joined, part)
    return joined


def _struct_outputs(alias: str, fields: list[tuple[str, exp.Expr]]) -> tuple[list[tuple[str, exp.Expr]], exp.Expr]:
    """One column ``<alias>_<field>`` per field for the model, and BigQuery's one STRUCT of them."""
    return [(f"{alias}_{n}", e) for n, e in fields], _struct([(n, e.copy()) for n, e in fields])


def _fit_feature_cross(f: Fitter, call: exp.Anonymous, alias: str) -> tuple[dict, list[tuple[str, exp.Expr]], exp.Expr]:
    fields, degree = _struct_fields(call, "FEATURE_CROSS", 2)
    combos = itertools.chain.from_iterable(itertools.combinations(fields, size) for size in range(2, degree + 1))
    crossed = _combined(combos, lambda a, b: exp.DPipe(this=exp.DPipe(this=a, expression=string("_"), safe=True),
                                                        expression=b, safe=True), _text)
    return {"degree": degree}, *_struct_outputs(alias, crossed)


def _fit_polynomial_expand(f: Fitter, call: exp.Anonymous, alias: str) -> tuple[dict, list[tuple[str, exp.Expr]], exp.Expr]:
    fields, degree = _struct_fields(call, "POLYNOMIAL_EXPAND", 1)
    combos = itertools.chain.from_iterable(
        itertools.combinations_with_replacement(fields, size) for size in range(1, degree + 1))
    products = _combined(combos, lambda a, b: exp.Mul(this=a, expression=b), _double)
    return {"degree": degree}, *_struct_outputs(alias, sorted(products, key=lambda p: p[0]))  # BigQuery orders by name


#: One output column each: (statistics, expression) of a call.
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


#: Several output columns each, so a whole TRANSFORM item: (statistics, [(name, expression)] for the model,
#: BigQuery's one STRUCT or ARRAY value) of a call.
MULTI = {
    "ONE_HOT_ENCODER": _fit_one_hot_encoder,
    "FEATURE_CROSS": _fit_feature_cross,
    "POLYNOMIAL_EXPAND": _fit_polynomial_expand,
}
