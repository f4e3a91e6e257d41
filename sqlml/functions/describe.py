"""ML.DESCRIBE_DATA: BigQuery's statistics per column, then sqlml's data-check ``findings`` (the checks are
:mod:`sqlml.train.checks`).

    SELECT * FROM ML.DESCRIBE_DATA((SELECT * FROM flights), STRUCT(5 AS num_quantiles, 3 AS top_k, 'is_late' AS label_col))

As the reference defines them: STRUCT columns are expanded into one row per field (``s.field``);
ARRAY columns are unnested (statistics over their elements, plus the array-length ones), and an
``ARRAY<STRUCT<INT64, numeric>>`` sparse column is described by its values with ``dimension`` =
MAX(index) + 1; integers and decimals are numbers (FLOAT64), BOOL, BYTES, dates and times are
categories (cast to STRING). Quantiles are exact where BigQuery's APPROX_QUANTILES approximates them
(see docs/data_checks.md)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError
from ..train.checks import FINDING, describe
from .base import Call

DEFAULTS = {"num_quantiles": 2, "num_array_length_quantiles": 10, "top_k": 1}  # BigQuery's
TOP_VALUE = pa.struct([("value", pa.string()), ("count", pa.int64())])
SCHEMA = pa.schema([
    ("name", pa.string()), ("num_rows", pa.int64()), ("num_nulls", pa.int64()), ("num_zeros", pa.int64()),
    ("min", pa.string()), ("max", pa.string()), ("mean", pa.float64()), ("stdev", pa.float64()),
    ("median", pa.float64()), ("quantiles", pa.list_(pa.float64())), ("unique", pa.int64()),
    ("avg_string_length", pa.float64()), ("num_values", pa.int64()), ("top_values", pa.list_(TOP_VALUE)),
    ("min_array_length", pa.int64()), ("max_array_length", pa.int64()), ("avg_array_length", pa.float64()),
    ("total_array_length", pa.int64()), ("array_length_quantiles", pa.list_(pa.int64())), ("dimension", pa.int64()),
    ("findings", pa.list_(FINDING)),
])


def describe_data(call: "Call") -> pa.Table:
    """ML.DESCRIBE_DATA((query) [, STRUCT(n AS num_quantiles, n AS num_array_length_quantiles, k AS top_k,
    'y' AS label_col)])."""
    if call.model is not None:
        raise DataError("ML.DESCRIBE_DATA takes data, not a model: ML.DESCRIBE_DATA((SELECT ...), STRUCT('y' AS label_col)).")
    settings = {name: call.param(name, default) for name, default in DEFAULTS.items()}
    table = _expanded(call.input_table())
    rows = [column_row(table[name], name, **settings) for name in table.column_names]
    scalars = [name for name in table.column_names if not _is_list(table[name].type)]
    checked = {r["column_name"]: r["findings"] for r in describe(_checkable(table.select(scalars)), call.param("label_col"),
                                                                 float_distincts=False)}
    for row in rows:
        row["findings"] = checked.get(row["name"], [])
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def _expanded(table: pa.Table) -> pa.Table:
    """STRUCT columns flattened into their fields, named ``column.field``, at every depth."""
    while any(pa.types.is_struct(t) for t in table.schema.types):
        table = table.flatten()
    return table


def _is_list(dtype: pa.DataType) -> bool:
    return pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_fixed_size_list(dtype)


def _numeric(dtype: pa.DataType) -> bool:
    dtype = dtype.value_type if pa.types.is_dictionary(dtype) else dtype
    return pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype)


def _checkable(table: pa.Table) -> pa.Table:
    """The columns as the data checks read them: numbers as they are, every other type as STRING."""
    return pa.table({name: table[name] if _numeric(table[name].type) else _as_strings(table[name], name)
                     for name in table.column_names})


def column_row(column: pa.ChunkedArray, name: str, num_quantiles: int, num_array_length_quantiles: int,
               top_k: int) -> dict:
    """One output row: the statistics of a column's values (an array column's elements) and, for arrays,
    of their lengths."""
    row = {field: None for field in SCHEMA.names}
    row.update(name=name, num_rows=len(column), top_values=[], array_length_quantiles=[])
    values = column
    if _is_list(column.type):
        values, dimension = _elements(column, name)
        lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)  # NULL: empty
        row.update(dimension=dimension, **_length_stats(lengths, num_array_length_quantiles))
    row.update(num_nulls=values.null_count, num_values=len(values) - values.null_count)
    row.update(_number_stats(values, num_quantiles) if _numeric(values.type) else _category_stats(values, name, top_k))
    return row


def _elements(column: pa.ChunkedArray, name: str) -> tuple[pa.ChunkedArray, int | None]:
    """An array column's elements; for ``ARRAY<STRUCT<INT64, numeric>>`` the values, with MAX(index) + 1."""
    elements = pa.chunked_array([pc.list_flatten(chunk) for chunk in column.chunks], column.type.value_type)
    kind = elements.type
    if not pa.types.is_struct(kind):
        return elements, None
    if kind.num_fields != 2 or not pa.types.is_integer(kind.field(0).type) or not _numeric(kind.field(1).type):
        raise DataError(f"Column '{name}' is an ARRAY of STRUCT {kind}; ML.DESCRIBE_DATA takes ARRAY<STRUCT<INT64, "
                        "numeric>> (a sparse feature: index, value) only. Unnest it in the query.")
    indices = pc.struct_field(elements, [0])
    top = pc.max(indices).as_py()
    return pc.struct_field(elements, [1]), None if top is None else top + 1


def _length_stats(lengths: np.ndarray, count: int) -> dict:
    if not len(lengths):
        return {}
    return {"min_array_length": int(lengths.min()), "max_array_length": int(lengths.max()),
            "avg_array_length": float(lengths.mean()), "total_array_length": int(lengths.sum()),
            "array_length_quantiles": [int(q) for q in quantiles(lengths, count)]}


def quantiles(values: np.ndarray, count: int) -> list[float]:
    """``count`` + 1 boundaries, minimum first and maximum last, as APPROX_QUANTILES(x, count) returns
    them but exact: each is a value of the data, the smallest whose share of values at or below it
    reaches i / count (NumPy's ``inverted_cdf``)."""
    return np.quantile(values, np.linspace(0.0, 1.0, count + 1), method="inverted_cdf").tolist()


def _number_stats(values: pa.ChunkedArray, num_quantiles: int) -> dict:
    """Numbers as FLOAT64: zeros, MIN and MAX as STRING, mean, sample standard deviation, median, quantiles."""
    present = pc.cast(values, pa.float64()).drop_null().to_numpy()
    if not len(present):
        return {"num_zeros": 0}
    return {"num_zeros": int((present == 0).sum()), "min": _float_text(present.min()), "max": _float_text(present.max()),
            "mean": float(present.mean()), "stdev": float(present.std(ddof=1)) if len(present) > 1 else None,
            "median": float(np.median(present)), "quantiles": quantiles(present, num_quantiles)}


def _float_text(value: float) -> str:
    """CAST(FLOAT64 AS STRING): the shortest text that reads back as the value ('1.0', '1e+20'); 0 unsigned."""
    return repr(float(value) + 0.0)


def _category_stats(values: pa.ChunkedArray, name: str, top_k: int) -> dict:
    """Categories as STRING: MIN and MAX, distinct values, mean length in characters, the ``top_k`` most
    frequent values (NULL counted as a value, as APPROX_TOP_COUNT does; ties in value order)."""
    strings = _as_strings(values, name)
    bounds = pc.min_max(strings).as_py()
    counts = [(vc["values"], vc["counts"]) for vc in pc.value_counts(strings).to_pylist()]
    ranked = sorted(counts, key=lambda vc: (-vc[1], vc[0] is None, vc[0] or ""))
    return {"min": bounds["min"], "max": bounds["max"], "unique": pc.count_distinct(strings, mode="only_valid").as_py(),
            "avg_string_length": pc.mean(pc.utf8_length(strings)).as_py(),
            "top_values": [{"value": value, "count": count} for value, count in ranked[:top_k]]}


def _as_strings(values: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    """CAST(x AS STRING) for BOOL ('true'/'false'), BYTES, dates, times and strings."""
    try:
        return pc.cast(values, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise DataError(f"Column '{name}' has type {values.type}, which ML.DESCRIBE_DATA cannot describe "
                        f"({error}). Convert it in the query, or leave it out.") from error
