"""What a model learned, from its registry row and estimator: ML.TRAINING_INFO, ML.FEATURE_INFO, ML.WEIGHTS."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import DataError
from ..model.kinds import CLUSTERING
from ..model.loaded import LoadedModel
from .base import Call


def training_info(call: Call) -> pa.Table:
    return pa.Table.from_pylist(call.require_model().info.training_info)


def feature_info(call: Call) -> pa.Table:
    schema = pa.schema([("input", pa.string()), ("min", pa.float64()), ("max", pa.float64()), ("mean", pa.float64()),
                        ("median", pa.float64()), ("stddev", pa.float64()), ("category_count", pa.int64()),
                        ("null_count", pa.int64())])
    return pa.Table.from_pylist(call.require_model().info.feature_info, schema=schema)


def weights(call: Call) -> pa.Table:
    """ML.WEIGHTS for linear models: one row per input column, categories as ``category_weights``.
    Weights apply to the raw inputs unless ``STRUCT(TRUE AS standardize)``."""
    model = call.require_model()
    coef = getattr(model.estimator, "coef_", None)
    if coef is None or model.kind.task == CLUSTERING:
        raise DataError(f"ML.WEIGHTS needs a linear model (linear_reg, logistic_reg); '{model.info.name}' is a {model.kind.name}.")
    coef = np.atleast_2d(coef)
    intercept = np.atleast_1d(model.estimator.intercept_)
    standardize = bool(call.param("standardize", False))
    rows = []
    class_labels = model.classes[1:] if model.classes and len(model.classes) == 2 else model.classes
    for k, class_coef in enumerate(coef):
        rows += _weight_rows(model, class_coef, float(intercept[k]), standardize,
                             class_labels[k] if model.classes and len(model.classes) > 2 else None)
    return pa.Table.from_pylist(rows, schema=pa.schema([
        ("processed_input", pa.string()), ("weight", pa.float64()),
        ("category_weights", pa.list_(pa.struct([("category", pa.string()), ("weight", pa.float64())]))),
        ("class_label", pa.string()),
    ]))


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
