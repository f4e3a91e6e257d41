"""Trivial baselines in every evaluation: the figure a model has to beat to be worth deploying.

=================  ===============================================  ==================================
model              label metrics (precision, accuracy, r2, ...)     probability metrics (log_loss,
                                                                    roc_auc)
=================  ===============================================  ==================================
classifier         majority class of the training rows              training class prior
                   (DummyClassifier 'most_frequent')                (DummyClassifier 'prior')
regressor          training mean (DummyRegressor 'mean'); also
                   ``baseline_median_*`` from the training median
``SEQ`` split      label of the last training row in                classifiers: the class prior
                   ``data_split_col`` order (persistence)
recommender        explicit feedback: the global mean with user and item biases, fitted like the model
                   with no factors; implicit: the most popular items (sqlml.model.factorization)
=================  ===============================================  ==================================

The statistics are taken from the training rows when the model is trained (before any resampling)
and stored in the registry's ``metrics`` JSON under ``"baseline"``, with the baseline's metrics on
the evaluation split, so ``ML.EVALUATE(MODEL m)`` without data reports them too.

``lift_<metric>`` is signed so that positive always means the model is better: model − baseline
for scores, baseline − model for errors and losses (:data:`LOWER_IS_BETTER`). ``beats_baseline``
is ``lift_<primary_metric> > 0``.
"""

from __future__ import annotations

import typing as t
import warnings
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError, OptionError
from . import metrics
from .kinds import CLASSIFICATION, RECOMMENDATION, UNSUPERVISED
from .loaded import LoadedModel
from .metrics import LOWER_IS_BETTER, Scored
from .preprocess import to_float64

STORED_KEY = "baseline"  # key of the baseline in the registry's metrics JSON


def metric_values(scored: Scored, names: t.Collection[str] | None = None) -> dict:
    """sklearn.metrics of ``scored`` (``names``: only those); figures undefined on these rows (r2 of one
    row) are None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UndefinedMetricWarning on small slices: the value becomes NULL
        values = (metrics.classification_metrics(scored.y, scored.probs, scored.predicted, names, scored.weight)
                  if scored.probs is not None else metrics.regression_metrics(scored.y, scored.predicted, scored.weight))
    return {k: metrics.finite(v) for k, v in values.items() if names is None or k in names}


@dataclass
class Baseline:
    """A constant predictor built from stored training statistics."""

    strategy: str  # "most_frequent", "mean" or "last_value"
    prediction: float | int  # class index for classifiers, label value for regressors
    prior: np.ndarray | None = None  # class probabilities, classifiers only
    median: float | None = None  # regressors only

    @classmethod
    def of(cls, model: "LoadedModel") -> "Baseline":
        """The baseline stored with ``model``; models trained before baselines existed have none."""
        stats = (model.info.metrics or {}).get(STORED_KEY, {}).get("statistics")
        if not stats:
            raise DataError(f"Model '{model.info.name}' was trained without baseline statistics; "
                            "retrain it with CREATE OR REPLACE MODEL.")
        return cls.from_statistics(model, stats)

    @classmethod
    def from_statistics(cls, model: "LoadedModel", stats: dict) -> "Baseline":
        if model.kind.task == CLASSIFICATION:
            value = stats["last_value"] if stats["strategy"] == "last_value" else stats["majority_class"]
            return cls(stats["strategy"], model.classes.index(value), prior=np.asarray(stats["class_prior"]))
        value = stats["last_value"] if stats["strategy"] == "last_value" else stats["mean"]
        return cls(stats["strategy"], float(value), median=stats["median"])

    def predict(self, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Predictions for ``n`` rows: labels (class indices or values), and class probabilities."""
        if self.prior is None:
            return np.full(n, self.prediction, dtype=np.float64), None
        return np.full(n, self.prediction, dtype=np.int64), np.tile(self.prior, (n, 1))

    def on(self, y: np.ndarray, weight: np.ndarray | None = None) -> Scored:
        return Scored(y, *self.predict(len(y)), weight)

    def median_on(self, y: np.ndarray, weight: np.ndarray | None = None) -> Scored | None:
        return None if self.median is None else Scored(y, np.full(len(y), self.median, dtype=np.float64), None, weight)


def training_statistics(model: "LoadedModel", train_rows: pa.Table) -> dict:
    """What the baselines need from the training rows: class prior and majority, or mean and median;
    for ``data_split_method='SEQ'`` also the label of the last row in ``data_split_col`` order."""
    options = model.info.options
    labels = train_rows[model.label]
    last_value = None
    if options.get("data_split_method") == "SEQ":
        last = pc.sort_indices(train_rows[options["data_split_col"]])[-1].as_py()
        last_value = labels[last].as_py()
    strategy = "last_value" if last_value is not None else None
    if model.kind.task == CLASSIFICATION:
        counts = np.bincount(metrics.true_codes(model, train_rows), minlength=len(model.classes))
        return {"strategy": strategy or "most_frequent", "class_prior": (counts / counts.sum()).tolist(),
                "majority_class": model.classes[int(np.argmax(counts))], "last_value": last_value}
    values = to_float64(labels).to_numpy()
    return {"strategy": strategy or "mean", "mean": float(values.mean()), "median": float(np.median(values)),
            "last_value": None if last_value is None else float(last_value)}


def at_training(model: "LoadedModel", train_rows: pa.Table, eval_rows: pa.Table) -> dict:
    """The ``"baseline"`` entry of a new version's metrics: training statistics plus the baseline's
    metrics on the evaluation split. Clustering and dimensionality reduction have no baseline; a
    recommender's is fitted with it and kept in its bytes."""
    if model.kind.task in UNSUPERVISED:
        return {}
    if model.kind.task == RECOMMENDATION:
        strategy = "user_item_bias" if model.estimator.explicit else "most_popular"
        return {STORED_KEY: {"statistics": {"strategy": strategy},
                             "metrics": {k: metrics.finite(v) for k, v in
                                         metrics.recommendation_metrics(model, eval_rows, baseline=True).items()}}}
    statistics = training_statistics(model, train_rows)
    baseline = Baseline.from_statistics(model, statistics)
    eval_rows = metrics.labelled_rows(model, eval_rows)
    y = metrics.true_labels(model, eval_rows)
    stored = {"statistics": statistics, "metrics": metric_values(baseline.on(y))}
    median = baseline.median_on(y)
    if median is not None:
        stored["median_metrics"] = metric_values(median)
    return {STORED_KEY: stored}


def primary_metric(model: "LoadedModel", chosen: str | None, available: t.Iterable[str] | None = None) -> str:
    """The model's primary metric — what ``beats_baseline``, slices and the deploy gate judge on:
    ``chosen`` (the ``primary_metric`` option or parameter), else roc_auc for a binary classifier,
    log_loss for a multiclass one (its roc_auc is undefined on rows that lack a class), r2_score for a
    regressor, davies_bouldin_index for k-means, total_explained_variance_ratio for PCA, mean_squared_error
    for an autoencoder or an explicit recommender,
    mean_average_precision for an implicit one. It must be one of ``available`` (the model's metrics)."""
    task = model.kind.task
    own = metrics.objectives(model.kind, model.info.options)
    available = list(own if available is None else available)
    if chosen is None:
        chosen = "log_loss" if task == CLASSIFICATION and len(model.classes) > 2 else own[0]
    if chosen not in available:
        raise OptionError(f"primary_metric {chosen!r} is not a metric of a {task} model; "
                          f"choose one of: {', '.join(available)}.")
    return chosen


def lift(metric: str, model_value: float | None, baseline_value: float | None) -> float | None:
    """How much better the model is than the baseline; positive = better, for every metric."""
    if model_value is None or baseline_value is None:
        return None
    return baseline_value - model_value if metric in LOWER_IS_BETTER else model_value - baseline_value


def compare(model_values: dict, baseline_values: dict, median_values: dict | None, strategy: str, primary: str) -> dict:
    """One evaluation row: model metrics, ``baseline_*``, ``baseline_median_*``, ``lift_*``,
    ``baseline_strategy``, ``primary_metric`` and ``beats_baseline``."""
    row = dict(model_values)
    row.update({f"baseline_{k}": baseline_values.get(k) for k in model_values})
    if median_values:
        row.update({f"baseline_median_{k}": median_values.get(k) for k in model_values})
    row.update({f"lift_{k}": lift(k, v, baseline_values.get(k)) for k, v in model_values.items()})
    primary_lift = row[f"lift_{primary}"]
    row.update(baseline_strategy=strategy, primary_metric=primary,
               beats_baseline=None if primary_lift is None else primary_lift > 0)
    return row


def evaluate_rows(model: "LoadedModel", scored: Scored, baseline: Baseline, primary: str) -> dict:
    """Model and baseline metrics on the rows of ``scored``."""
    median = baseline.median_on(scored.y, scored.weight)
    return compare(metric_values(scored), metric_values(baseline.on(scored.y, scored.weight)),
                   metric_values(median) if median is not None else None, baseline.strategy, primary)
