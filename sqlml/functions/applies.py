"""Which ML.* functions a model family answers, checked before any work (the others would fail deep inside)."""

from __future__ import annotations

from ..errors import SqlmlError
from ..model.kinds import ARIMA, MATRIX_FACTORIZATION, REDUCTION
from ..model.loaded import LoadedModel

#: The only functions a matrix factorization answers: it has no feature matrix to predict from, explain or monitor.
FOR_FACTORIZATION = frozenset({"RECOMMEND", "GENERATE_EMBEDDING", "EVALUATE", "WEIGHTS", "TRAINING_INFO",
                               "FEATURE_INFO", "TRIAL_INFO", "LEADERBOARD", "MODEL_CARD"})
#: The only functions a time series model (ARIMA_PLUS, ARIMA_PLUS_XREG) answers: it forecasts series, not rows.
FOR_FORECASTING = frozenset({"FORECAST", "EXPLAIN_FORECAST", "DETECT_ANOMALIES", "EVALUATE", "ARIMA_EVALUATE",
                             "ARIMA_COEFFICIENTS", "HOLIDAY_INFO", "TRAINING_INFO", "FEATURE_INFO", "MODEL_CARD"})
#: Families that answer only some functions, and the function that gives their predictions.
ONLY = {MATRIX_FACTORIZATION: (FOR_FACTORIZATION, "ML.RECOMMEND"), ARIMA: (FOR_FORECASTING, "ML.FORECAST")}
#: Functions that judge predictions against a label or explain them: PCA and autoencoder models predict none.
NEED_A_LABEL = frozenset({"BASELINE", "CONFUSION_MATRIX", "ROC_CURVE", "THRESHOLD_METRICS", "FAIRNESS", "COMPARE",
                          "ESTIMATE_PERFORMANCE", "REVIEW_QUEUE", "EXPLAIN_PREDICT", "GLOBAL_EXPLAIN",
                          "FEATURE_IMPORTANCE"})


def a_model(kind: str) -> str:
    """'a kmeans model', 'an arima_plus model': a model type named in a sentence."""
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} model"


def check_applies(function: str, model: LoadedModel) -> None:
    """Refuse, before any work, an ML.* function the model's family cannot answer, saying what it can."""
    answered, predictions = ONLY.get(model.kind.family, (None, None))
    if answered is not None and function not in answered:
        hint = f" Use {predictions} for its predictions." if function == "PREDICT" else ""
        raise SqlmlError(f"ML.{function} does not apply to '{model.info.name}', {a_model(model.kind.name)}.{hint} "
                         f"It answers {', '.join('ML.' + f for f in sorted(answered))}.")
    if model.kind.task == REDUCTION and function in NEED_A_LABEL:
        raise SqlmlError(f"ML.{function} does not apply to '{model.info.name}', {a_model(model.kind.name)}: it "
                         "predicts no label. ML.PREDICT gives its reduced columns, ML.DETECT_ANOMALIES its unusual rows.")
