"""ML.ESTIMATE_PERFORMANCE: a binary classifier's metrics estimated without labels (CBPE,
:mod:`sqlml.model.cbpe`), on all rows or per time window (:mod:`sqlml.functions.windows`).

``ML.ESTIMATE_PERFORMANCE(MODEL m, data [, STRUCT('time_hour' AS time_column, 'month' AS time_window)])``
returns ``window_start`` (with a time column), ``row_count``, ``estimated_accuracy``,
``estimated_precision``, ``estimated_recall``, ``estimated_f1_score``, ``estimated_roc_auc`` and
``notes``, which states the assumption (no concept drift) and whether the probabilities were calibrated.
The label column, if the input has it, is not read.
"""

from __future__ import annotations

import functools
import typing as t

import numpy as np
import pyarrow as pa

from ..errors import DataError
from ..model import cbpe
from ..model.kinds import CLASSIFICATION
from ..model.loaded import LoadedModel
from . import windows
from .base import Call, Data
from .slices import groups

ASSUMPTION = ("CBPE estimate from the model's probabilities; it assumes no concept drift (the chance of each "
              "label given the features is as on the evaluation split) and follows only shifts in the features")
CALIBRATED = "calibrated by isotonic regression on the evaluation split"
UNCALIBRATED = ("probabilities not calibrated: the model was trained before sqlml stored calibrators, without an "
                "evaluation split, or on one holding a single class; retrain it with an evaluation split to calibrate")


def estimate_performance(call: Call) -> pa.Table:
    """The ML.ESTIMATE_PERFORMANCE handler."""
    model = call.require_model()
    _require_binary(model)
    data = call.require_input()
    bucketed = windows.from_params("ESTIMATE_PERFORMANCE", call.params, data.schema())
    found = _counted(model, data, bucketed, call.param("threshold"))
    if found is None:
        arrays, indexed = windows.scored(data, bucketed, _scorer(model, call.param("threshold")))
        found = [(start, {k: a[indices] for k, a in arrays.items()}) for start, indices in indexed]
    note = f"{ASSUMPTION}; {CALIBRATED if model.calibrator is not None else UNCALIBRATED}."
    rows = [{"window_start": start,
             "row_count": int(part["count"].sum()) if "count" in part else len(part["probability"]),
             **cbpe.estimate(part["probability"], part["score"], part["predicted"], part.get("count")),
             "notes": note} for start, part in found]
    fields = [pa.field("row_count", pa.int64()), *(pa.field(name, pa.float64()) for name in cbpe.ESTIMATES),
              pa.field("notes", pa.string())]
    if bucketed is None:
        for row in rows:
            del row["window_start"]
    else:
        fields.insert(0, pa.field("window_start", windows.window_type(bucketed, data.schema())))
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))


def _require_binary(model: LoadedModel) -> None:
    if model.kind.task != CLASSIFICATION:
        raise DataError(f"ML.ESTIMATE_PERFORMANCE needs a classification model; '{model.info.name}' is a "
                        f"{model.kind.name}. Evaluate a regressor once labels arrive: ML.EVALUATE with a time_column.")
    if len(model.classes) != 2:
        raise DataError(f"ML.ESTIMATE_PERFORMANCE needs a binary classifier; '{model.info.name}' has "
                        f"{len(model.classes)} classes. Evaluate it once labels arrive: ML.EVALUATE with a time_column.")


def _counted(model: LoadedModel, data: Data, bucketed: windows.Windows | None,
             threshold: float | None) -> list[tuple[t.Any, dict[str, np.ndarray]]] | None:
    """Each window's distinct scored rows with their ``count``, scored and counted where the rows are
    (Spark's executors), in time order (NULL last); None where the rows are read here (DuckDB)."""
    function = functools.partial(_scored_rows, model, threshold, bucketed, data.schema())
    counted = data.counted(function, lambda: function(data.empty()))
    if counted is None:
        return None
    if bucketed is None:
        return [(None, _arrays(counted))] if counted.num_rows else []
    return [(key[0], _arrays(counted.take(indices))) for key, indices in groups(counted, ["window"], windows.MAX_WINDOWS)]


def _scored_rows(model: LoadedModel, threshold: float | None, bucketed: windows.Windows | None,
                 schema: pa.Schema, batch: pa.Table) -> pa.Table:
    """A batch's score, calibrated probability and predicted class per row (and its window)."""
    rows, arrays = _scorer(model, threshold)(batch)
    columns = {"score": pa.array(arrays.get("score", []), pa.float64()),
               "probability": pa.array(arrays.get("probability", []), pa.float64()),
               "predicted": pa.array(arrays.get("predicted", []), pa.int64())}
    if bucketed is not None:
        columns = {"window": pa.array([], windows.window_type(bucketed, schema)) if not rows.num_rows
                   else bucketed.of(rows).combine_chunks(), **columns}
    return pa.table(columns)


def _arrays(counted: pa.Table) -> dict[str, np.ndarray]:
    return {name: counted[name].to_numpy() for name in ("score", "probability", "predicted", "count")}


def _scorer(model: LoadedModel, threshold: float | None):
    """Per row of a batch: the raw positive score, its calibrated probability and the predicted class."""
    def score(batch: pa.Table) -> tuple[pa.Table, dict[str, np.ndarray]]:
        model.preprocessor.check_columns(batch)
        if batch.num_rows == 0:
            return batch, {}
        probs = model.class_probabilities(batch)
        return batch, {"score": probs[:, 1], "probability": cbpe.calibrated(model.calibrator, probs[:, 1]),
                       "predicted": model.decide(probs, threshold)}
    return score
