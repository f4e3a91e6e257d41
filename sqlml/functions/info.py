"""What a model learned, from its registry row and estimator: ML.TRAINING_INFO, ML.FEATURE_INFO, ML.WEIGHTS."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import DataError
from ..model.kinds import CLUSTERING, MATRIX_FACTORIZATION
from ..model.loaded import LoadedModel
from . import recommend
from .base import Call
from .trials import with_trial_id

CLUSTER_INFO = pa.list_(pa.struct([("centroid_id", pa.int64()), ("cluster_radius", pa.float64()),
                                    ("cluster_size", pa.int64())]))


def training_info(call: Call) -> pa.Table:
    """ML.TRAINING_INFO: BigQuery's columns in its order, then sqlml's ``notes``. k-means has no
    ``eval_loss`` and has ``cluster_info`` (NULL for versions stored before it was kept)."""
    model = call.require_model()
    clustering = model.kind.task == CLUSTERING
    schema = pa.schema([("training_run", pa.int64()), ("iteration", pa.int64()), ("loss", pa.float64()),
                        *([] if clustering else [("eval_loss", pa.float64())]), ("learning_rate", pa.float64()),
                        ("duration_ms", pa.int64()), *([("cluster_info", CLUSTER_INFO)] if clustering else []),
                        ("notes", pa.string())])
    rate = learning_rate(model.estimator)
    rows = [{**row, "learning_rate": rate} for row in model.info.training_info]
    return pa.Table.from_pylist([{name: row.get(name) for name in schema.names} for row in rows], schema=schema)


def learning_rate(estimator) -> float | None:
    """The step size of every iteration, where scikit-learn keeps it constant: boosting's shrinkage
    (``learn_rate``), an MLP's ``learning_rate_init`` under Adam or constant SGD. None where the fit has
    none (closed form, L-BFGS, forests, k-means) or SGD changes it between iterations."""
    if hasattr(estimator, "learning_rate_init"):
        constant = estimator.solver == "adam" or (estimator.solver == "sgd" and estimator.learning_rate == "constant")
        return float(estimator.learning_rate_init) if constant else None
    rate = getattr(estimator, "learning_rate", None)
    return float(rate) if isinstance(rate, (int, float)) and not isinstance(rate, bool) else None


def feature_info(call: Call) -> pa.Table:
    """ML.FEATURE_INFO; ``dimension`` is for ARRAY<STRUCT> inputs, which sqlml does not take: always NULL."""
    schema = pa.schema([("input", pa.string()), ("min", pa.float64()), ("max", pa.float64()), ("mean", pa.float64()),
                        ("median", pa.float64()), ("stddev", pa.float64()), ("category_count", pa.int64()),
                        ("null_count", pa.int64()), ("dimension", pa.int64())])
    return pa.Table.from_pylist(call.require_model().info.feature_info, schema=schema)


def weights(call: Call) -> pa.Table:
    """ML.WEIGHTS for linear models: one row per input column, categories as ``category_weights``.
    Weights apply to the raw inputs unless ``STRUCT(TRUE AS standardize)``."""
    model = call.require_model()
    if model.kind.family == MATRIX_FACTORIZATION:
        return recommend.weights(call)
    coef = getattr(model.estimator, "coef_", None)
    if coef is None or model.kind.task == CLUSTERING:
        raise DataError(f"ML.WEIGHTS needs a linear model (linear_reg, logistic_reg); '{model.info.name}' has model_type "
                        f"'{model.kind.name}'.")
    coef = np.atleast_2d(coef)
    intercept = np.atleast_1d(model.estimator.intercept_)
    standardize = bool(call.param("standardize", False))
    rows = []
    class_labels = model.classes[1:] if model.classes and len(model.classes) == 2 else model.classes
    for k, class_coef in enumerate(coef):
        rows += _weight_rows(model, class_coef, float(intercept[k]), standardize,
                             class_labels[k] if model.classes and len(model.classes) > 2 else None)
    return with_trial_id(pa.Table.from_pylist(rows, schema=pa.schema([
        ("processed_input", pa.string()), ("weight", pa.float64()),
        ("category_weights", pa.list_(pa.struct([("category", pa.string()), ("weight", pa.float64())]))),
        ("class_label", pa.string()),
    ])), call)


def _weight_rows(model: "LoadedModel", coef: np.ndarray, intercept: float, standardize: bool, class_label) -> list[dict]:
    rows, position = [], 0
    label = None if class_label is None else str(class_label)
    for column in model.preprocessor.columns:
        if column["kind"] == "numeric":
            w = float(coef[position])
            if not standardize and model.preprocessor.standardize:
                intercept -= w * column["mean"] / column["std"]
                w /= column["std"]
            rows.append({"processed_input": column["name"], "weight": w, "category_weights": [], "class_label": label})
            position += 1
        else:
            categories = column["categories"]
            parts = coef[position:position + len(categories)]
            rows.append({"processed_input": column["name"], "weight": None, "class_label": label,
                         "category_weights": [{"category": c, "weight": float(w)} for c, w in zip(categories, parts)]})
            position += len(categories)
    rows.append({"processed_input": "__INTERCEPT__", "weight": intercept, "category_weights": [], "class_label": label})
    return rows
