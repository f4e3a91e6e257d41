"""ML.FAIRNESS: does a binary classifier treat the groups of a sensitive column alike?

``ML.FAIRNESS(MODEL m, data, STRUCT('sex' AS sensitive_col))`` scores the data once and hands the
labels, decisions and groups to fairlearn, whose definitions are the reference. Output: one row per
(sensitive column, group) with ``row_count``, ``selection_rate``, ``true_positive_rate``,
``false_positive_rate`` and ``precision`` of that group, and the column's summary figures —
``demographic_parity_difference``/``_ratio`` and ``equalized_odds_difference``/``_ratio`` —
repeated on each of its rows. The positive class is the model's second class in sorted order
(``TRUE``, ``1``, ``'male'`` after ``'female'``), as in ML.EVALUATE.
"""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
from fairlearn import metrics as fm
from sklearn.metrics import precision_score

from ..errors import DataError, SqlmlError
from ..model import metrics
from ..model.kinds import CLASSIFICATION
from ..model.loaded import LoadedModel
from . import slices
from .base import Call

GROUP_METRICS = {
    "row_count": fm.count,
    "selection_rate": fm.selection_rate,
    "true_positive_rate": fm.true_positive_rate,
    "false_positive_rate": fm.false_positive_rate,
    "precision": functools.partial(precision_score, zero_division=0),  # as ML.EVALUATE reports it
}


SUMMARY = {
    "demographic_parity_difference": fm.demographic_parity_difference,
    "demographic_parity_ratio": fm.demographic_parity_ratio,
    "equalized_odds_difference": fm.equalized_odds_difference,
    "equalized_odds_ratio": fm.equalized_odds_ratio,
}


SCHEMA = pa.schema([("sensitive_column", pa.string()), ("group_value", pa.string()), ("row_count", pa.int64())]
                   + [(name, pa.float64()) for name in list(GROUP_METRICS)[1:] + list(SUMMARY)])


def fairness(call: "Call") -> pa.Table:
    """The ML.FAIRNESS handler."""
    model = call.require_model()
    _require_binary(model)
    data = metrics.labelled_rows(model, call.input_table())
    columns = sensitive_columns(call.params, data)
    if data.num_rows == 0:
        raise DataError("The evaluation data has no rows with a non-NULL label.")
    scored = metrics.Scored.of(model, data, call.param("threshold"))
    y_true, y_pred = scored.y, scored.predicted  # class codes: 1 is the positive class
    rows = []
    for column in columns:
        rows += group_rows(column, data, y_true, y_pred)
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def sensitive_columns(params: dict, data: pa.Table) -> list[str]:
    return slices.column_names(params.get("sensitive_col"), data, "sensitive_col",
                               "ML.FAIRNESS needs the sensitive column: STRUCT('sex' AS sensitive_col) "
                               "(or an array of column names).")


def group_rows(column: str, data: pa.Table, y_true: np.ndarray, y_pred: np.ndarray) -> list[dict]:
    """fairlearn's per-group metrics and summary figures for one sensitive column."""
    found = slices.groups(data, [column])
    group_of = np.empty(data.num_rows, dtype=np.int64)
    for index, (_, rows) in enumerate(found):
        group_of[rows] = index  # integer groups: fairlearn (pandas) would drop a NULL group
    frame = fm.MetricFrame(metrics=GROUP_METRICS, y_true=y_true, y_pred=y_pred, sensitive_features=group_of)
    summary = {name: metrics.finite(f(y_true, y_pred, sensitive_features=group_of)) for name, f in SUMMARY.items()}
    by_group = frame.by_group
    return [{"sensitive_column": column, "group_value": slices.text(values[0]),
             **{name: metrics.finite(by_group.loc[index, name]) for name in list(GROUP_METRICS)[1:]},
             "row_count": int(by_group.loc[index, "row_count"]), **summary}
            for index, (values, _) in enumerate(found)]


def _require_binary(model: "LoadedModel") -> None:
    if model.kind.task != CLASSIFICATION or len(model.classes) != 2:
        what = f"{len(model.classes)} classes" if model.classes else f"a {model.kind.name}"
        raise SqlmlError(f"ML.FAIRNESS needs a binary classifier; '{model.info.name}' has {what}.")
