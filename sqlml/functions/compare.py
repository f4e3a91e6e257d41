"""ML.COMPARE: two models' ML.EVALUATE metrics on the same rows, with a paired bootstrap of each difference.

The bootstrap (docs/evaluation.md): the labelled rows are scored once by each model, exactly as
ML.EVALUATE scores them (:class:`~sqlml.model.metrics.Scored`), then resampled in pairs as
:mod:`sqlml.model.bootstrap` says (``num_bootstrap`` resamples seeded by ``random_seed``; a 95 %
interval). ``better_model`` is NULL when the interval contains 0, else the model the metric's
direction favours (:data:`~sqlml.model.metrics.LOWER_IS_BETTER`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import DataError
from ..model import bootstrap, metrics
from ..model.baseline import metric_values
from ..model.kinds import CLUSTERING
from ..model.loaded import LoadedModel
from ..model.metrics import Scored
from .base import Call

DEFAULT_BOOTSTRAP = 1000
SCHEMA = pa.schema([("metric", pa.string()), ("model_a_value", pa.float64()), ("model_b_value", pa.float64()),
                    ("difference", pa.float64()), ("ci_lower", pa.float64()), ("ci_upper", pa.float64()),
                    ("p_value", pa.float64()), ("better_model", pa.string())])


def compare(call: Call) -> pa.Table:
    """One row per metric the two models share, in ML.EVALUATE's order."""
    if call.other is None:
        raise DataError("ML.COMPARE needs two models: ML.COMPARE(MODEL m VERSION 1, MODEL m VERSION 2, TABLE t).")
    a, b = call.require_model(), call.other.require_model()
    _check_comparable(a, b)
    rows_a = metrics.labelled_rows(a, call.input_table())
    rows_b = rows_a if call.other.data is call.data else metrics.labelled_rows(b, call.other.input_table())
    if rows_a.num_rows == 0:
        raise DataError("ML.COMPARE's data has no rows with a non-NULL label.")
    threshold = call.param("threshold")
    scored_a, scored_b = Scored.of(a, rows_a, threshold), Scored.of(b, rows_b, threshold)
    _check_paired(a, scored_a, b, scored_b)
    values_a, values_b = metric_values(scored_a), metric_values(scored_b)
    names = [m for m in metrics.OBJECTIVES[a.kind.task] if m in values_a and m in values_b]
    differences = bootstrap.differences(scored_a, scored_b, names, call.param("num_bootstrap", DEFAULT_BOOTSTRAP),
                            call.param("random_seed", 0))
    return pa.Table.from_pylist([_row(m, values_a[m], values_b[m], differences[m]) for m in names], schema=SCHEMA)


def _row(metric: str, value_a: float | None, value_b: float | None, differences: np.ndarray) -> dict:
    row = {"metric": metric, "model_a_value": value_a, "model_b_value": value_b,
           "difference": None if value_a is None or value_b is None else value_a - value_b,
           "ci_lower": None, "ci_upper": None, "p_value": None, "better_model": None}
    found = bootstrap.interval(differences)
    if row["difference"] is None or found is None:
        return row
    low, high, p_value = found.low, found.high, found.p_value
    higher = "a" if low > 0 else "b" if high < 0 else None  # the model whose metric is significantly higher
    if higher is not None and metrics.lower_is_better(metric):
        higher = "b" if higher == "a" else "a"
    return {**row, "ci_lower": low, "ci_upper": high, "p_value": p_value, "better_model": higher}


def _check_comparable(a: LoadedModel, b: LoadedModel) -> None:
    names = f"'{a.info.name}' version {a.info.version} and '{b.info.name}' version {b.info.version}"
    if CLUSTERING in (a.kind.task, b.kind.task):
        raise DataError(f"ML.COMPARE compares supervised models; {names} include a k-means model, which has no "
                        "label to score against. Compare their ML.EVALUATE rows instead.")
    if a.label != b.label or a.kind.task != b.kind.task:
        raise DataError(f"ML.COMPARE needs two models that predict the same label the same way; {names} predict "
                        f"'{a.label}' ({a.kind.task}) and '{b.label}' ({b.kind.task}).")


def _check_paired(a: LoadedModel, scored_a: Scored, b: LoadedModel, scored_b: Scored) -> None:
    """The two models' rows must be the same rows in the same order (each was read through its own TRANSFORM)."""
    if len(scored_a) != len(scored_b) or not np.array_equal(_labels(a, scored_a), _labels(b, scored_b)):
        raise DataError("ML.COMPARE read the data in a different order (or number) of rows for the two models; "
                        "add ORDER BY to the query so every row is paired with itself.")


def _labels(model: LoadedModel, scored: Scored) -> np.ndarray:
    return np.asarray(model.classes, dtype=object)[scored.y] if scored.probs is not None else scored.y
