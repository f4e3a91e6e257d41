"""The ML.* table functions: each handler takes a resolved :class:`~sqlml.functions.base.Call` and
returns an Arrow table, or for row-level outputs (ML.PREDICT, ML.EXPLAIN_PREDICT, ML.TRANSFORM...) a
:class:`~sqlml.functions.base.Stream` of record batches computed as they are read. A new function is one handler module plus one entry in :data:`HANDLERS`
(and its name in :data:`sqlml.sql.catalog.AVAILABLE`)."""

from __future__ import annotations

import typing as t

from . import (
    card,
    compare,
    describe,
    drift,
    estimate,
    evaluate,
    explain,
    fairness,
    generate_sql,
    info,
    predict,
    review,
    transform,
    trials,
)

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
    "GENERATE_SQL": generate_sql.generate_sql,
}
