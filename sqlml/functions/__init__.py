"""The ML.* table functions: each handler takes a resolved :class:`~sqlml.functions.base.Call` and
returns an Arrow table, or for row-level outputs (ML.PREDICT, ML.EXPLAIN_PREDICT, ML.TRANSFORM...) a
:class:`~sqlml.functions.base.Stream` of record batches computed as they are read. A new function is one handler module plus one entry in :data:`HANDLERS`
(and its name in :data:`sqlml.sql.catalog.AVAILABLE`)."""

from __future__ import annotations

import typing as t

from ..errors import SqlmlError
from ..model.kinds import MATRIX_FACTORIZATION, REDUCTION
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
    info,
    predict,
    recommend,
    review,
    transform,
    trials,
)

if t.TYPE_CHECKING:
    import pyarrow as pa

    from ..model.loaded import LoadedModel
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
}

#: The only functions a matrix factorization answers: it has no feature matrix to predict from, explain or monitor.
FOR_FACTORIZATION = frozenset({"RECOMMEND", "GENERATE_EMBEDDING", "EVALUATE", "WEIGHTS", "TRAINING_INFO",
                               "FEATURE_INFO", "TRIAL_INFO", "LEADERBOARD", "MODEL_CARD"})
#: Functions that judge predictions against a label or explain them: PCA and autoencoder models predict none.
NEED_A_LABEL = frozenset({"BASELINE", "CONFUSION_MATRIX", "ROC_CURVE", "THRESHOLD_METRICS", "FAIRNESS", "COMPARE",
                          "ESTIMATE_PERFORMANCE", "REVIEW_QUEUE", "EXPLAIN_PREDICT", "GLOBAL_EXPLAIN",
                          "FEATURE_IMPORTANCE"})


def check_applies(function: str, model: "LoadedModel") -> None:
    """Refuse, before any work, an ML.* function the model's family cannot answer, saying what it can."""
    if model.kind.family == MATRIX_FACTORIZATION and function not in FOR_FACTORIZATION:
        hint = " Use ML.RECOMMEND for its predictions." if function == "PREDICT" else ""
        raise SqlmlError(f"ML.{function} does not apply to '{model.info.name}', a matrix_factorization model.{hint} "
                         f"It answers {', '.join('ML.' + f for f in sorted(FOR_FACTORIZATION))}.")
    if model.kind.task == REDUCTION and function in NEED_A_LABEL:
        raise SqlmlError(f"ML.{function} does not apply to '{model.info.name}', a {model.kind.name} model: it "
                         "predicts no label. ML.PREDICT gives its reduced columns, ML.DETECT_ANOMALIES its unusual rows.")
