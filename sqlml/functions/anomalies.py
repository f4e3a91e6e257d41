"""ML.DETECT_ANOMALIES: which rows are unusual for a model, by model family (:data:`DETECTORS`).

    SELECT * FROM ML.DETECT_ANOMALIES(MODEL m, STRUCT(0.02 AS contamination), TABLE t)

For k-means, PCA and autoencoder models (BigQuery's independent-rows case) each row gets a score — k-means:
``normalized_distance``, its distance to the nearest centroid divided by that cluster's radius (the mean
distance of the cluster's training rows to it); PCA and autoencoder: ``mean_squared_error``, the mean squared
error of its reconstruction — and ``is_anomaly`` is TRUE when the score is above the threshold that flags
``contamination`` (a share in [0, 0.5]) of the model's training rows. The training rows are read again, through
the model's TRANSFORM, when the function runs (the model's training query), as BigQuery takes the threshold
from the training data. Output (BigQuery's): k-means ``centroid_id, is_anomaly, normalized_distance``, the
others ``is_anomaly, mean_squared_error``; then every input column.

For time series models (ARIMA_PLUS, ARIMA_PLUS_XREG; :func:`sqlml.functions.forecast_evaluate.detect_anomalies`)
a point is unusual against the model's fit of its history, or its forecast for new points:
``STRUCT(0.95 AS anomaly_prob_threshold)`` and an optional table (the history when none is given).
"""

from __future__ import annotations

import typing as t

import numpy as np
import pyarrow as pa

from ..errors import DataError, ParameterError, SqlmlError
from ..model.kinds import ARIMA, AUTOENCODER, KMEANS, MODEL_KINDS, PCA
from ..model.loaded import LoadedModel, thread_limit
from . import forecast_evaluate
from .applies import a_model
from .base import Call, Data, Stream
from .components import row_losses


def detect_anomalies(call: Call) -> pa.Table | Stream:
    model = call.require_model()
    detector = DETECTORS.get(model.kind.family)
    if detector is None:
        types = sorted(k.name for k in MODEL_KINDS.values() if k.family in DETECTORS)
        raise SqlmlError(f"ML.DETECT_ANOMALIES answers these model types: {', '.join(types)}; "
                         f"'{model.info.name}' has model_type '{model.kind.name}'.")
    takes = THRESHOLDS[model.kind.family]
    for other in sorted(set(THRESHOLDS.values()) - {takes}):
        if call.param(other) is not None:
            users = sorted(k.name for k in MODEL_KINDS.values() if THRESHOLDS.get(k.family) == other)
            raise ParameterError(f"ML.DETECT_ANOMALIES of {a_model(model.kind.name)} takes {takes}, not {other} "
                                 f"({', '.join(users)} models take that).")
    return detector(call)


def _contamination(call: Call) -> float:
    value = call.param("contamination")
    if value is None:
        raise ParameterError(f"ML.DETECT_ANOMALIES of {a_model(call.model.kind.name)} needs the share of training "
                             "rows to call anomalous: ML.DETECT_ANOMALIES(MODEL m, STRUCT(0.02 AS contamination), TABLE t).")
    return float(value)


def threshold(scores: np.ndarray, contamination: float) -> float:
    """The score above which ``contamination`` of the training rows lie (their (1 − contamination) quantile)."""
    if not len(scores):
        raise DataError("The model's training query returned no rows to take the anomaly threshold from.")
    return float(np.quantile(scores, 1.0 - contamination))


def _training(call: Call) -> Data:
    if call.training is None:
        raise DataError(f"'{call.model.info.name}' has no training query to take the anomaly threshold from.")
    return call.training


def _flagged(call: Call, score: t.Callable[[pa.Table], tuple[dict[str, np.ndarray], np.ndarray]]) -> Stream:
    """Each input batch's columns (``score`` gives the named output columns and the score per row), with
    ``is_anomaly`` set by the training rows' threshold."""
    contamination = _contamination(call)
    data = call.require_input()
    cut = threshold(np.concatenate([score(rows)[1] for rows in _training(call).tables()] or [np.zeros(0)]),
                    contamination)

    def flagged(rows: pa.Table) -> pa.Table:
        columns, values = score(rows)
        head = {**{k: v for k, v in columns.items() if k == "centroid_id"}, "is_anomaly": pa.array(values > cut),
                **{k: pa.array(v, pa.float64()) for k, v in columns.items() if k != "centroid_id"}}
        kept = [c for c in rows.column_names if c not in head]
        return pa.Table.from_arrays([*head.values(), *(rows[c] for c in kept)], names=[*head, *kept])
    return Stream((flagged(rows) for rows in data.tables()), lambda: flagged(data.empty()))


def reconstruction(call: Call) -> Stream:
    """PCA and autoencoder models: the rows whose reconstruction error is unusually high."""
    model = call.require_model()

    def score(rows: pa.Table) -> tuple[dict, np.ndarray]:
        error = row_losses(model, rows)["mean_squared_error"]
        return {"mean_squared_error": error}, error
    return _flagged(call, score)


def clusters(call: Call) -> Stream:
    """k-means models: the rows unusually far from their nearest centroid, for its cluster."""
    model = call.require_model()
    radius = _radii(model, _training(call))

    def score(rows: pa.Table) -> tuple[dict, np.ndarray]:
        nearest, distance = _nearest(model, rows)
        normalized = distance / radius[nearest] if len(nearest) else distance
        return {"centroid_id": pa.array(nearest + 1, pa.int64()), "normalized_distance": normalized}, normalized
    return _flagged(call, score)


def _nearest(model: LoadedModel, rows: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Each row's nearest centroid (from 0) and its distance to it, in the model's feature space."""
    if rows.num_rows == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    X = model.features(rows)
    with thread_limit(len(X)):
        distances = model.estimator.transform(X)
    nearest = distances.argmin(axis=1)
    return nearest, distances[np.arange(len(X)), nearest]


def _radii(model: LoadedModel, training: Data) -> np.ndarray:
    """Each cluster's mean distance of its training rows to its centroid (1 for a cluster with none or 0)."""
    count = model.estimator.n_clusters
    sums, sizes = np.zeros(count), np.zeros(count)
    for rows in training.tables():
        nearest, distance = _nearest(model, rows)
        sums += np.bincount(nearest, distance, minlength=count)
        sizes += np.bincount(nearest, minlength=count)
    radius = np.divide(sums, sizes, out=np.ones(count), where=sizes > 0)
    return np.where(radius > 0, radius, 1.0)


#: The anomaly detector of each model family.
DETECTORS: dict[str, t.Callable[[Call], pa.Table | Stream]] = {
    KMEANS: clusters,
    PCA: reconstruction,
    AUTOENCODER: reconstruction,
    ARIMA: forecast_evaluate.detect_anomalies,
}
#: The STRUCT parameter that sets each family's threshold (sqlml.sql.catalog takes both for the function).
THRESHOLDS = {KMEANS: "contamination", PCA: "contamination", AUTOENCODER: "contamination",
              ARIMA: "anomaly_prob_threshold"}
