"""The ML.* table functions: each handler takes a resolved :class:`~sqlml.functions.base.Call` and
returns an Arrow table, or for row-level outputs (ML.PREDICT, ML.EXPLAIN_PREDICT, ML.TRANSFORM...) a
:class:`~sqlml.functions.base.Stream` of record batches computed as they are read. A new function is one handler module plus one entry in :data:`HANDLERS`
(and its name in :data:`sqlml.sql.catalog.AVAILABLE`)."""

from __future__ import annotations

import typing as t

from . import (
    anomalies,
    card,
    compare,
    components,
    describe,
    drift,
    estimate,
    evaluate,
    explain,
    fairness,
    forecast,
    generate_sql,
    info,
    predict,
    recommend,
    review,
    transform,
    trials,
)
from .applies import check_applies

__all__ = ["HANDLERS", "check_applies"]

if t.TYPE_CHECKING:
    import pyarrow as pa

    from .base import Call, Stream

HANDLERS: dict[str, t.Callable[["Call"], "pa.Table | Stream"]] = {
    "PREDICT": predict.predict,
    "BASELINE": predict.baseline_predictions,
    "EVALUATE": evaluate.evaluate,
    "CONFUSION_MATRIX": evaluate.confusion_matrix,
    "ROC_CURVE": evaluate.roc_curve,
    "THRESHOLD_METRICS": evaluate.threshold_metrics,
    "TRAINING_INFO": info.training_info,
    "FEATURE_INFO": info.feature_info,
    "WEIGHTS": info.weights,
    "FAIRNESS": fairness.fairness,
    "EXPLAIN_PREDICT": explain.explain_predict,
    "GLOBAL_EXPLAIN": explain.global_explain,
    "FEATURE_IMPORTANCE": explain.feature_importance,
    "TRIAL_INFO": trials.trial_info,
    "LEADERBOARD": trials.leaderboard,
    "MODEL_CARD": card.model_card,
    "DESCRIBE_DATA": describe.describe_data,
    "TRANSFORM": transform.ml_transform,
    "COMPARE": compare.compare,
    "ESTIMATE_PERFORMANCE": estimate.estimate_performance,
    "REVIEW_QUEUE": review.review_queue,
    "VALIDATE_DATA_DRIFT": drift.validate_data_drift,
    "VALIDATE_DATA_SKEW": drift.validate_data_skew,
    "RECOMMEND": recommend.recommend,
    "GENERATE_EMBEDDING": recommend.generate_embedding,
    "PRINCIPAL_COMPONENTS": components.principal_components,
    "PRINCIPAL_COMPONENT_INFO": components.principal_component_info,
    "RECONSTRUCTION_LOSS": components.reconstruction_loss,
    "DETECT_ANOMALIES": anomalies.detect_anomalies,
    "FORECAST": forecast.forecast,
    "EXPLAIN_FORECAST": forecast.explain_forecast,
    "ARIMA_EVALUATE": forecast.arima_evaluate,
    "ARIMA_COEFFICIENTS": forecast.arima_coefficients,
    "HOLIDAY_INFO": forecast.holiday_info,
    "GENERATE_SQL": generate_sql.generate_sql,
}
