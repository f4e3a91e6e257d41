"""Evaluation over time: ``ML.EVALUATE(MODEL m, data, STRUCT('time_hour' AS time_column, 'month' AS time_window))``.

One row per window (:mod:`sqlml.functions.windows`): ``window_start``, ``row_count``, the metrics with
the baseline and lift, as ML.EVALUATE gives them, and ``degraded``: the primary metric is worse than
the model's own figure on its evaluation split at training by more than ``degradation_margin``
(default 0.05, in the metric's units). The primary metric is the deploy gate's
(:func:`sqlml.model.baseline.primary_metric`): the ``primary_metric`` parameter, else the model's
``primary_metric`` option, else roc_auc (binary), log_loss (multiclass) or r2_score (regressors).

The input is read once, batch by batch; per row only the label, the prediction, the class
probabilities and the window are kept.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import DataError, ParameterError, SqlmlError
from ..model import metrics
from ..model.baseline import primary_metric
from ..model.loaded import LoadedModel
from . import slices, windows
from .base import Data, as_table

DEGRADATION_MARGIN = 0.05


def evaluate(model: LoadedModel, data: Data, params: dict) -> pa.Table:
    """ML.EVALUATE with ``time_column``: one row per window, oldest first."""
    if not model.kind.supervised:
        raise SqlmlError(f"Evaluation over time needs a classifier or regressor; '{model.info.name}' is a "
                         f"{model.kind.name} (no label to evaluate against).")
    if params.get("slice_by") is not None:
        raise ParameterError("ML.EVALUATE takes slice_by or time_column, not both: evaluate each slice over time "
                             "with a WHERE on the slice in the input query.")
    bucketed = windows.from_params("EVALUATE", params, data.schema())
    arrays, found = windows.scored(data, bucketed, _scorer(model, params.get("threshold")))
    if not found:
        raise DataError("The evaluation data has no rows with a non-NULL label.")
    scored = metrics.Scored(arrays["y"], arrays["predicted"], arrays.get("probs"))
    primary = primary_metric(model, params.get("primary_metric") or model.info.options.get("primary_metric"))
    trained = metrics.finite(model.info.metrics.get(primary))
    margin = slices.setting(params, "degradation_margin", DEGRADATION_MARGIN)
    measure = slices.measurer(model, scored, {**params, "primary_metric": primary})
    rows = []
    for start, indices in found:
        row = {"window_start": start, **measure(indices)}
        row["degraded"] = slices.worse(primary, row[primary], trained, margin)
        rows.append(row)
    return as_table(rows, [pa.field("window_start", windows.window_type(bucketed, data.schema()))])


def _scorer(model: LoadedModel, threshold: float | None):
    """A batch's labelled rows and, per row, the label, the prediction and the class probabilities."""
    def score(batch: pa.Table) -> tuple[pa.Table, dict[str, np.ndarray]]:
        rows = metrics.labelled_rows(model, batch)
        if rows.num_rows == 0:
            return rows, {}
        scored = metrics.Scored.of(model, rows, threshold)
        arrays = {"y": scored.y, "predicted": scored.predicted}
        return rows, arrays if scored.probs is None else {**arrays, "probs": scored.probs}
    return score

