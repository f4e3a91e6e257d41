"""Which ML.* functions a model family answers, checked before any work (the others would fail deep inside)."""

from __future__ import annotations

from ..errors import SqlmlError
from ..model.kinds import MATRIX_FACTORIZATION, REDUCTION
from ..model.loaded import LoadedModel

#: The only functions a matrix factorization answers: it has no feature matrix to predict from, explain or monitor.
FOR_FACTORIZATION = frozenset({"RECOMMEND", "GENERATE_EMBEDDING", "EVALUATE", "WEIGHTS", "TRAINING_INFO",
                               "FEATURE_INFO", "TRIAL_INFO", "LEADERBOARD", "MODEL_CARD"})
#: Functions that judge predictions against a label or explain them: PCA and autoencoder models predict none.
NEED_A_LABEL = frozenset({"BASELINE", "CONFUSION_MATRIX", "ROC_CURVE", "THRESHOLD_METRICS", "FAIRNESS", "COMPARE",
                          "ESTIMATE_PERFORMANCE", "REVIEW_QUEUE", "EXPLAIN_PREDICT", "GLOBAL_EXPLAIN",
                          "FEATURE_IMPORTANCE"})


def check_applies(function: str, model: LoadedModel) -> None:
    """Refuse, before any work, an ML.* function the model's family cannot answer, saying what it can."""
    if model.kind.family == MATRIX_FACTORIZATION and function not in FOR_FACTORIZATION:
        hint = " Use ML.RECOMMEND for its predictions." if function == "PREDICT" else ""
        raise SqlmlError(f"ML.{function} does not apply to '{model.info.name}', a matrix_factorization model.{hint} "
                         f"It answers {', '.join('ML.' + f for f in sorted(FOR_FACTORIZATION))}.")
    if model.kind.task == REDUCTION and function in NEED_A_LABEL:
        article = "an" if model.kind.name[0] in "aeiou" else "a"  # an autoencoder
        raise SqlmlError(f"ML.{function} does not apply to '{model.info.name}', {article} {model.kind.name} model: it "
                         "predicts no label. ML.PREDICT gives its reduced columns, ML.DETECT_ANOMALIES its unusual rows.")
