"""Confidence-based performance estimation (CBPE, as NannyML does it): a binary classifier's expected
metrics on rows whose labels are not known yet, from its probabilities.

If the positive-class probability ``p`` of a row is calibrated, the row is a true positive with
probability ``p`` when predicted positive (else a false positive), and a false negative with
probability ``p`` when predicted negative (else a true negative). Summing over the rows gives the
expected confusion matrix, and from it accuracy, precision, recall and f1. The expected ROC AUC
follows NannyML: rows ranked by the model's raw score, the expected true and false positives
accumulated down the ranking (rows of equal score taken together, as sklearn's ROC curve does),
and the area under that curve.

The estimate assumes no concept drift: P(label | features) is what it was on the evaluation split.
Covariate shift (the features moving) is what it can follow.

Probabilities are calibrated at training with isotonic regression fitted on the evaluation split
(NannyML's calibrator), stored with the model in its signed skops envelope.
"""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import auc

from .metrics import Scored

ESTIMATES = ("estimated_accuracy", "estimated_precision", "estimated_recall", "estimated_f1_score",
             "estimated_roc_auc")


def fit_calibrator(y: np.ndarray, positive: np.ndarray) -> IsotonicRegression | None:
    """Isotonic regression of the label on the positive-class score; None when the rows hold one class."""
    if len(np.unique(y)) < 2:
        return None
    return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(positive, y)


def parts(scored: Scored | None) -> dict:
    """What a binary classifier stores beside its estimator: the calibrator fitted on its scored
    evaluation rows (none for other models, without held-out rows, or when they hold one class)."""
    if scored is None or scored.probs is None or scored.probs.shape[1] != 2:
        return {}
    calibrator = fit_calibrator(scored.y, scored.probs[:, 1])
    return {} if calibrator is None else {"calibrator": calibrator}


def calibrated(calibrator: IsotonicRegression | None, positive: np.ndarray) -> np.ndarray:
    if calibrator is None:
        return positive
    return np.clip(calibrator.predict(positive), 0.0, 1.0)


def estimate(probability: np.ndarray, score: np.ndarray, predicted: np.ndarray,
             weight: np.ndarray | None = None) -> dict[str, float | None]:
    """Expected metrics of rows with calibrated positive ``probability``, raw ``score`` and
    ``predicted`` class (1 positive), each standing for ``weight`` rows (distinct rows counted where
    they were scored; one each by default); precision, recall and f1 are 0 where nothing is predicted,
    as ML.EVALUATE reports them."""
    weight = np.ones(len(probability)) if weight is None else np.asarray(weight, dtype=float)
    positive = predicted == 1
    tp, fp = (weight * probability)[positive].sum(), (weight * (1.0 - probability))[positive].sum()
    fn, tn = (weight * probability)[~positive].sum(), (weight * (1.0 - probability))[~positive].sum()
    return {
        "estimated_accuracy": float((tp + tn) / weight.sum()),
        "estimated_precision": _ratio(tp, tp + fp),
        "estimated_recall": _ratio(tp, tp + fn),
        "estimated_f1_score": _ratio(2 * tp, 2 * tp + fp + fn),
        "estimated_roc_auc": expected_roc_auc(probability, score, weight),
    }


def expected_roc_auc(probability: np.ndarray, score: np.ndarray, weight: np.ndarray) -> float | None:
    """Area under the expected ROC curve; None when the rows are all expected positive or negative."""
    order = np.argsort(-score, kind="stable")
    ranked, expected, rows = score[order], probability[order], weight[order]
    tps = np.cumsum(rows * expected)
    fps = np.cumsum(rows) - tps
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # the last row of each run of equal scores
    tps, fps = np.r_[0.0, tps[last]], np.r_[0.0, fps[last]]
    if tps[-1] <= 0 or fps[-1] <= 0:
        return None
    return float(auc(fps / fps[-1], tps / tps[-1]))


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else 0.0
