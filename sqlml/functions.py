"""The ML.* table functions: each takes a resolved :class:`Call` and returns an Arrow table.

A new function is one handler here (or in its own module) plus one entry in :data:`FUNCTIONS`.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from . import baselines, fairness, metrics, slices
from .errors import DataError, SqlmlError
from .models import CLUSTERING

if t.TYPE_CHECKING:
    from .engine import DuckDBEngine
    from .scoring import LoadedModel


@dataclass
class Call:
    """One ML.* call with its model loaded, its input as SQL and its parameters as Python values."""

    function: str
    engine: "DuckDBEngine"
    model: "LoadedModel | None" = None
    input_sql: str | None = None
    params: dict = field(default_factory=dict)
    argument: t.Any = None  # a non-STRUCT last argument, e.g. GENERATE_ARRAY(...) for ML.ROC_CURVE

    def require_model(self) -> "LoadedModel":
        if self.model is None:
            raise SqlmlError(f"ML.{self.function} needs a MODEL argument: ML.{self.function}(MODEL name, ...).")
        return self.model

    def require_input(self) -> str:
        if self.input_sql is None:
            raise SqlmlError(f"ML.{self.function} needs input data: ML.{self.function}(MODEL m, TABLE t) or (SELECT ...).")
        return self.input_sql

    def input_table(self) -> pa.Table:
        return self.engine.read_arrow(self.require_input())

    def param(self, name: str, default: t.Any = None) -> t.Any:
        return self.params.get(name, default)


def predict(call: Call) -> pa.Table:
    """ML.PREDICT: prediction columns first, then every input column (BigQuery's order).
    The input is streamed in record batches, each scored in one vectorized call."""
    model = call.require_model()
    threshold = call.param("threshold")
    pieces = [_with_predictions(model.predict(batch, threshold), pa.Table.from_batches([batch]))
              for batch in call.engine.read_batches(call.require_input())]
    if not pieces:
        empty = pa.Table.from_batches([], schema=model.output_schema())
        return _with_predictions(empty, call.engine.schema(call.input_sql).empty_table())
    return pa.concat_tables(pieces)


def _with_predictions(predictions: pa.Table, inputs: pa.Table) -> pa.Table:
    """Prediction columns, then the input columns they do not replace."""
    kept = [name for name in inputs.column_names if name not in predictions.column_names]
    return pa.Table.from_arrays(predictions.columns + [inputs[name] for name in kept],
                                names=predictions.column_names + kept)


def evaluate(call: Call) -> pa.Table:
    """ML.EVALUATE: one row of metrics with the baseline's beside them (:mod:`sqlml.baselines`), on the
    given data or the evaluation split kept at training; ``slice_by`` adds a row per group (:mod:`sqlml.slices`)."""
    model = call.require_model()
    if call.param("slice_by") is not None:
        return slices.evaluate(model, call.input_table(), call.params)
    return baselines.evaluate(model, call.input_table() if call.input_sql is not None else None, call.params)


def confusion_matrix(call: Call) -> pa.Table:
    if call.input_sql is None and call.param("threshold") is None:
        return _stored_table(call, "confusion_matrix")
    return metrics.confusion_matrix(call.require_model(), call.input_table(), call.param("threshold"))


def roc_curve(call: Call) -> pa.Table:
    thresholds = call.argument if isinstance(call.argument, list) else call.param("thresholds")
    if call.input_sql is None and thresholds is None:
        return _stored_table(call, "roc_curve")
    return metrics.roc_curve(call.require_model(), call.input_table(), thresholds)


def threshold_metrics(call: Call) -> pa.Table:
    """ML.THRESHOLD_METRICS: metrics per decision threshold, to pick one for ALTER MODEL ... threshold."""
    thresholds = call.argument if isinstance(call.argument, list) else call.param("thresholds")
    if call.input_sql is None and thresholds is None:
        return metrics.metrics_from_counts(_stored_table(call, "roc_curve").to_pydict())
    return metrics.threshold_metrics(call.require_model(), call.input_table(), thresholds)


def _stored_table(call: Call, name: str) -> pa.Table:
    """A table computed on the evaluation split at training time."""
    rows = (call.require_model().info.eval_tables or {}).get(name)
    if rows is None:
        raise DataError(f"ML.{call.function} of '{call.model.info.name}' needs evaluation data: no stored {name} "
                        "(it needs a classifier; the ROC curve a binary one).")
    return pa.Table.from_pylist(rows)


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


FUNCTIONS: dict[str, t.Callable[[Call], pa.Table]] = {
    "PREDICT": predict,
    "EVALUATE": evaluate,
    "CONFUSION_MATRIX": confusion_matrix,
    "ROC_CURVE": roc_curve,
    "THRESHOLD_METRICS": threshold_metrics,
    "TRAINING_INFO": training_info,
    "FEATURE_INFO": feature_info,
    "WEIGHTS": weights,
    "BASELINE": baselines.baseline_predictions,
    "FAIRNESS": fairness.fairness,
}

#: Functions whose result depends only on the model, not on input data.
MODEL_ONLY = {"TRAINING_INFO", "FEATURE_INFO", "WEIGHTS"}

from . import card, explain  # noqa: E402  (their handlers take a Call, defined above)

FUNCTIONS.update(explain.FUNCTIONS)
MODEL_ONLY |= explain.MODEL_ONLY

from . import tuning  # noqa: E402

FUNCTIONS.update(tuning.FUNCTIONS)
MODEL_ONLY |= tuning.MODEL_ONLY
FUNCTIONS["MODEL_CARD"] = card.model_card

from . import describe, transform  # noqa: E402

FUNCTIONS["DESCRIBE_DATA"] = describe.describe_data
FUNCTIONS["TRANSFORM"] = transform.ml_transform
