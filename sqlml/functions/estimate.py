"""ML.ESTIMATE_PERFORMANCE: a binary classifier's metrics estimated without labels (CBPE,
:mod:`sqlml.model.cbpe`), on all rows or per time window (:mod:`sqlml.functions.windows`).

``ML.ESTIMATE_PERFORMANCE(MODEL m, data [, STRUCT('time_hour' AS time_column, 'month' AS time_window)])``
returns ``window_start`` (with a time column), ``row_count``, ``estimated_accuracy``,
``estimated_precision``, ``estimated_recall``, ``estimated_f1_score``, ``estimated_roc_auc`` and
``notes``, which states the assumption (no concept drift) and whether the probabilities were calibrated.
The label column, if the input has it, is not read.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import DataError
from ..model import cbpe
from ..model.kinds import CLASSIFICATION
from ..model.loaded import LoadedModel
from . import windows
from .base import Call

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
    arrays, found = windows.scored(data, bucketed, _scorer(model, call.param("threshold")))
    note = f"{ASSUMPTION}; {CALIBRATED if model.calibrator is not None else UNCALIBRATED}."
    rows = [{"window_start": start, "row_count": len(indices),
             **cbpe.estimate(arrays["probability"][indices], arrays["score"][indices], arrays["predicted"][indices]),
             "notes": note} for start, indices in found]
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
