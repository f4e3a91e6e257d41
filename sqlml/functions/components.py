"""ML.PRINCIPAL_COMPONENTS and ML.PRINCIPAL_COMPONENT_INFO of PCA models, ML.RECONSTRUCTION_LOSS of PCA and
autoencoder models, with BigQuery's output columns.

The components are those of the preprocessed features (numbers standardized unless ``scale_features =
FALSE``, categories one-hot): a numeric input has one ``numerical_value`` per component, a categorical one
a ``categorical_value`` per category (the NULL category's name is NULL).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import SqlmlError
from ..model import reduction
from ..model.kinds import PCA, REDUCTION
from ..model.loaded import LoadedModel, thread_limit
from .base import Call, Stream
from .trials import with_trial_id

CATEGORICAL_VALUE = pa.list_(pa.struct([("category", pa.string()), ("value", pa.float64())]))
LOSSES = ("mean_absolute_error", "mean_squared_error", "mean_squared_log_error")


def _pca(call: Call) -> LoadedModel:
    model = call.require_model()
    if model.kind.family != PCA:
        raise SqlmlError(f"ML.{call.function} needs a pca model; '{model.info.name}' has model_type "
                         f"'{model.kind.name}'.")
    return model


def principal_components(call: Call) -> pa.Table:
    """ML.PRINCIPAL_COMPONENTS: principal_component_id, feature, numerical_value, categorical_value."""
    model = _pca(call)
    rows = []
    for component, loadings in enumerate(model.estimator.components_, 1):
        position = 0
        for column in model.preprocessor.columns:
            width = model.preprocessor.width(column)
            values = loadings[position:position + width]
            numeric = column["kind"] == "numeric"
            rows.append({"principal_component_id": component, "feature": column["name"],
                         "numerical_value": float(values[0]) if numeric else None,
                         "categorical_value": None if numeric else [
                             {"category": None if c is None else str(c), "value": float(v)}
                             for c, v in zip(column["categories"], values)]})
            position += width
    schema = pa.schema([("principal_component_id", pa.int64()), ("feature", pa.string()),
                        ("numerical_value", pa.float64()), ("categorical_value", CATEGORICAL_VALUE)])
    return with_trial_id(pa.Table.from_pylist(rows, schema=schema), call)


def principal_component_info(call: Call) -> pa.Table:
    """ML.PRINCIPAL_COMPONENT_INFO: per component its eigenvalue (the variance it explains), its explained
    variance ratio and the cumulative ratio."""
    pca = _pca(call).estimator
    ratio = np.asarray(pca.explained_variance_ratio_, dtype=np.float64)
    return with_trial_id(pa.table({
        "principal_component_id": pa.array(np.arange(1, len(ratio) + 1), pa.int64()),
        "eigenvalue": pa.array(np.asarray(pca.explained_variance_, dtype=np.float64)),
        "explained_variance_ratio": pa.array(ratio),
        "cumulative_explained_variance_ratio": pa.array(np.cumsum(ratio)),
    }), call)


def row_losses(model: LoadedModel, rows: pa.Table) -> dict[str, np.ndarray]:
    """Each row's reconstruction errors (:func:`sqlml.model.reduction.row_errors`)."""
    if rows.num_rows == 0:
        return {name: np.zeros(0) for name in LOSSES}
    X = model.features(rows)
    with thread_limit(len(X)):
        return reduction.row_errors(X, reduction.reconstruct(model.kind.family, model.estimator, X))


def reconstruction_loss(call: Call) -> Stream:
    """ML.RECONSTRUCTION_LOSS: each input row's mean absolute, squared and squared log reconstruction errors
    (the last NULL where a value below −1 leaves the log undefined), then its columns."""
    model = call.require_model()
    if model.kind.task != REDUCTION:
        raise SqlmlError(f"ML.RECONSTRUCTION_LOSS needs an autoencoder or pca model; '{model.info.name}' has "
                         f"model_type '{model.kind.name}'.")
    data = call.require_input()

    def scored(rows: pa.Table) -> pa.Table:
        losses = row_losses(model, rows)
        kept = [c for c in rows.column_names if c not in LOSSES]
        return pa.Table.from_arrays([pa.array(losses[n], pa.float64(), from_pandas=True) for n in LOSSES] + [rows[c] for c in kept],
                                    names=[*LOSSES, *kept])
    return Stream((scored(rows) for rows in data.tables()), lambda: scored(data.empty()))
