"""Sliced evaluation: which group of rows does the model serve worst?

``ML.EVALUATE(MODEL m, data, STRUCT(['carrier', 'origin'] AS slice_by))`` scores the data once, then
groups the predictions in NumPy: one row for everything (``slice_column`` NULL), one per value of each
slice column and, with ``TRUE AS slice_combinations``, one per combination of values of all of them.
Each slice column is also a column of the result, of its own type (NULL where a row is not sliced by it),
so slices can be filtered, joined and sorted in SQL. Each row carries the metrics, the baseline and lift (:mod:`sqlml.baselines`), ``row_count``,
``unreliable`` (fewer than ``min_slice_size`` rows) and ``worse_than_overall`` (primary metric worse
than the overall row's by more than ``slice_margin``).
"""

from __future__ import annotations

import functools
import typing as t
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError, SqlmlError
from ..model import baseline as baselines
from ..model import metrics
from ..model.loaded import LoadedModel
from .base import Data, as_table

MIN_SLICE_SIZE = 30
SLICE_MARGIN = 0.05
MAX_SLICES = 1_000  # per slice column: beyond this it is an identifier, and sklearn per group gets slow


def slice_columns(params: dict, data: pa.Table) -> list[str]:
    """The ``slice_by`` columns, checked against the evaluation data."""
    return column_names(params["slice_by"], data, "slice_by column(s)",
                        "slice_by must be a column name or an array of column names, e.g. "
                        "STRUCT(['carrier', 'origin'] AS slice_by).")


def column_names(value: t.Any, data: pa.Table, role: str, usage: str) -> list[str]:
    """A parameter naming one column or an array of columns, each checked against ``data``."""
    columns = [value] if isinstance(value, str) else list(value or [])
    if not columns or not all(isinstance(c, str) for c in columns):
        raise SqlmlError(usage)
    missing = [c for c in columns if c not in data.column_names]
    if missing:
        raise DataError(f"{role} {', '.join(missing)} not in the evaluation data; "
                        f"its columns are: {', '.join(data.column_names)}.")
    return columns


def groups(data: pa.Table, columns: list[str], limit: int = MAX_SLICES) -> list[tuple[tuple, np.ndarray]]:
    """Row indices of each distinct combination of values of ``columns`` (NULL is a value), in value order."""
    codes, dictionaries = [], []
    for name in columns:
        encoded = pc.dictionary_encode(data[name].combine_chunks(), null_encoding="encode")
        codes.append(np.asarray(encoded.indices, dtype=np.int64))
        dictionaries.append(encoded.dictionary.to_pylist())
    keys, inverse = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)
    if len(keys) > limit:
        raise DataError(f"slice_by {', '.join(columns)} gives {len(keys):,} slices (more than {limit:,}); "
                        "slice by a coarser column, e.g. a bucket of it.")
    order = np.argsort(inverse.ravel(), kind="stable")
    bounds = np.cumsum(np.bincount(inverse.ravel(), minlength=len(keys)))[:-1]
    found = [(tuple(d[k] for d, k in zip(dictionaries, key)), rows)
             for key, rows in zip(keys, np.split(order, bounds))]
    return sorted(found, key=lambda g: tuple((v is None, v) for v in g[0]))


def text(value: t.Any) -> str | None:
    """A slice value as VARCHAR: booleans as SQL spells them, NULL stays NULL."""
    if value is None:
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)


def _joined(values: tuple) -> str | None:
    """One column's value as text; a combination's as 'AA, JFK' (NULL spelled out)."""
    if len(values) == 1:
        return text(values[0])
    return ", ".join("NULL" if v is None else text(v) for v in values)


def evaluate(model: "LoadedModel", data: Data, params: dict) -> pa.Table:
    """ML.EVALUATE with ``slice_by``: the overall row, then one row per slice."""
    if not model.kind.supervised:
        raise SqlmlError(f"slice_by needs a classifier or regressor: a {model.kind.name} model has no label to "
                         "evaluate against.")
    columns = slice_columns(params, data.empty())
    min_size, margin = setting(params, "min_slice_size", MIN_SLICE_SIZE), setting(params, "slice_margin", SLICE_MARGIN)
    scored, data = _scored(model, data, columns, params.get("threshold"))
    if len(scored) == 0:
        raise DataError("The evaluation data has no rows with a non-NULL label.")
    measure = measurer(model, scored, params)
    overall = {"slice_column": None, "slice_value": None, **measure(np.arange(data.num_rows))}
    rows, shown = [overall], [None]  # shown: per row, the index of a row of ``data`` that has its slice's values
    plans = [[c] for c in columns] + ([columns] if params.get("slice_combinations") and len(columns) > 1 else [])
    for plan in plans:
        for values, indices in groups(data, plan):
            rows.append({"slice_column": ", ".join(plan), "slice_value": _joined(values), **measure(indices)})
            shown.append((plan, int(indices[0])))
    primary = overall["primary_metric"]
    for row in rows:
        row["unreliable"] = row["row_count"] < min_size
        row["worse_than_overall"] = None if row is overall else worse(primary, row[primary], overall[primary], margin)
    return with_slice_values(as_table(rows), data, columns, shown)


def _scored(model: "LoadedModel", data: Data, columns: list[str], threshold: float | None) -> tuple[metrics.Scored, pa.Table]:
    """The labelled rows scored, and their slice columns: one entry per row, or (where the engine scores
    and counts the rows, Spark) one per distinct combination of slice values and scores, with its count."""
    score = functools.partial(metrics.scored_table, model, threshold, keep=columns)
    counted = data.counted(score, lambda: score(data.empty()))
    if counted is not None:
        return metrics.Scored.of_counts(counted), counted.select(columns)
    rows = metrics.labelled_rows(model, data.table())
    return metrics.Scored.of(model, rows, threshold), rows


def with_slice_values(table: pa.Table, data: pa.Table, columns: list[str], shown: list) -> pa.Table:
    """``table`` with a column per slice column, of the data's own type, after ``slice_value``: the
    row's value of it, NULL where the row is not sliced by that column (and on the overall row)."""
    clash = [c for c in columns if c in table.column_names]
    if clash:
        raise DataError(f"slice_by column(s) {', '.join(clash)} have the name of a column ML.EVALUATE returns; "
                        f"rename them in the evaluation query, e.g. SELECT *, {clash[0]} AS {clash[0]}_slice.")
    for position, name in enumerate(columns, start=table.column_names.index("slice_value") + 1):
        picks = pa.array([None if row is None or name not in row[0] else row[1] for row in shown], pa.int64())
        table = table.add_column(position, data.schema.field(name), data[name].take(picks))
    return table


def measurer(model: "LoadedModel", scored: metrics.Scored, params: dict) -> t.Callable[[np.ndarray], dict]:
    """Metrics (with the baseline unless ``FALSE AS baselines``) of a subset of the scored rows."""
    with_baseline = params.get("baselines", True)
    baseline = baselines.Baseline.of(model) if with_baseline else None
    primary = baselines.primary_metric(model, params.get("primary_metric"), baselines.metric_values(scored))

    def measure(rows: np.ndarray) -> dict:
        part = scored.take(rows)
        if baseline is not None:
            values = baselines.evaluate_rows(model, part, baseline, primary)
        else:
            values = {**baselines.metric_values(part), "primary_metric": primary}
        return {"row_count": len(part), **values}
    return measure


def worse(metric: str, value: float | None, overall: float | None, margin: float) -> bool | None:
    """Is a slice's ``metric`` worse than the overall value by more than ``margin`` (absolute)?"""
    if value is None or overall is None:
        return None
    gap = value - overall if metric in metrics.LOWER_IS_BETTER else overall - value
    return gap > margin


def setting(params: dict, name: str, default: float) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)) or value < 0:
        raise SqlmlError(f"{name} must be a non-negative number; got {value!r}.")
    return float(value)  # SQL literals such as 0.02 arrive as DECIMAL
