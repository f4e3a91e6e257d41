"""ML.EVALUATE, ML.CONFUSION_MATRIX and ML.ROC_CURVE, computed with sklearn.metrics (imported where a
metric is computed: serving and plain SQL never load scikit-learn).

Classifiers: binary metrics are for the positive class (the second class in sorted order);
multiclass precision, recall, f1 and roc_auc are macro averages and accuracy is micro.
"""

from __future__ import annotations

import math
import re
import typing as t
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError
from . import ranking, reduction
from .kinds import (
    AUTOENCODER,
    CLASSIFICATION,
    CLUSTERING,
    FORECASTING,
    MATRIX_FACTORIZATION,
    PCA,
    RECOMMENDATION,
    REDUCTION,
    REGRESSION,
    ModelKind,
)
from .loaded import LoadedModel
from .preprocess import check_unique_names, to_float64


@dataclass(frozen=True)
class Metric:
    """One metric ML.EVALUATE reports: its task, which way is better, whether it is the task's loss."""

    name: str
    task: str
    lower_is_better: bool = False
    loss: bool = False  # a tuning trial's training_loss / eval_loss


#: Every metric, per task in the order hparam_tuning_objectives lists them, the default objective first.
METRICS = (
    Metric("roc_auc", CLASSIFICATION), Metric("pr_auc", CLASSIFICATION),
    Metric("log_loss", CLASSIFICATION, lower_is_better=True, loss=True), Metric("f1_score", CLASSIFICATION),
    Metric("precision", CLASSIFICATION), Metric("recall", CLASSIFICATION), Metric("accuracy", CLASSIFICATION),
    Metric("r2_score", REGRESSION), Metric("mean_absolute_error", REGRESSION, lower_is_better=True),
    Metric("mean_squared_error", REGRESSION, lower_is_better=True, loss=True),
    Metric("mean_squared_log_error", REGRESSION, lower_is_better=True),
    Metric("median_absolute_error", REGRESSION, lower_is_better=True), Metric("explained_variance", REGRESSION),
    Metric("davies_bouldin_index", CLUSTERING, lower_is_better=True),
    Metric("mean_squared_distance", CLUSTERING, lower_is_better=True, loss=True),
    Metric("mean_squared_error", REDUCTION, lower_is_better=True, loss=True),
    Metric("mean_absolute_error", REDUCTION, lower_is_better=True),
    Metric("mean_squared_log_error", REDUCTION, lower_is_better=True),
    Metric("total_explained_variance_ratio", REDUCTION),
    Metric("mean_squared_error", RECOMMENDATION, lower_is_better=True, loss=True),
    Metric("mean_average_precision", RECOMMENDATION), Metric("normalized_discounted_cumulative_gain", RECOMMENDATION),
    Metric("average_rank", RECOMMENDATION, lower_is_better=True),
    Metric("mean_absolute_error", RECOMMENDATION, lower_is_better=True),
    Metric("mean_squared_log_error", RECOMMENDATION, lower_is_better=True),
    Metric("median_absolute_error", RECOMMENDATION, lower_is_better=True), Metric("r2_score", RECOMMENDATION),
    Metric("explained_variance", RECOMMENDATION),
    # Forecasts (ARIMA_PLUS, sqlml.model.forecast_metrics) also report mean_absolute_error and mean_squared_error.
    Metric("mean_absolute_percentage_error", FORECASTING, lower_is_better=True),
    Metric("root_mean_squared_error", FORECASTING, lower_is_better=True),
    Metric("symmetric_mean_absolute_percentage_error", FORECASTING, lower_is_better=True),
)
LOWER_IS_BETTER = frozenset(m.name for m in METRICS if m.lower_is_better)
OBJECTIVES = {task: tuple(m.name for m in METRICS if m.task == task)
              for task in (CLASSIFICATION, REGRESSION, CLUSTERING, REDUCTION, RECOMMENDATION)}
DEFAULT_OBJECTIVE = {task: names[0] for task, names in OBJECTIVES.items()}
EVAL_LOSS = {m.task: m.name for m in METRICS if m.loss}
#: The metrics of model types that report only some of their task's, the default objective first.
FAMILY_OBJECTIVES = {PCA: ("total_explained_variance_ratio",),
                     AUTOENCODER: ("mean_squared_error", "mean_absolute_error", "mean_squared_log_error")}
FEEDBACK_OBJECTIVES = {"EXPLICIT": ("mean_squared_error", "mean_absolute_error", "mean_squared_log_error",
                                    "median_absolute_error", "r2_score", "explained_variance"),
                       "IMPLICIT": ranking.NAMES}


def objectives(kind: ModelKind, options: dict) -> tuple[str, ...]:
    """The metrics ML.EVALUATE reports for a model type with these options, its default objective first."""
    if kind.family == MATRIX_FACTORIZATION:
        return FEEDBACK_OBJECTIVES[options.get("feedback_type", kind.default("feedback_type"))]
    return FAMILY_OBJECTIVES.get(kind.family, OBJECTIVES[kind.task])


def lower_is_better(objective: str) -> bool:
    return objective in LOWER_IS_BETTER


def finite(value: t.Any) -> float | None:
    """A metric as a float, or None where it is undefined (NaN, infinite or None): stored and shown as NULL."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def labelled_rows(model: "LoadedModel", data: pa.Table) -> pa.Table:
    """Rows with a non-NULL label; evaluation needs the label column (once)."""
    check_unique_names(data.column_names, "evaluation data")
    if model.label not in data.column_names:
        raise DataError(f"Evaluation data must contain the label column '{model.label}'.")
    return data.filter(pc.is_valid(data[model.label])) if data[model.label].null_count else data


def true_codes(model: "LoadedModel", data: pa.Table) -> np.ndarray:
    """Class index of each row's label; labels unseen at training are an error."""
    column = data[model.label]
    codes = pc.index_in(pc.cast(column, model.label_type), value_set=pa.array(model.classes, type=model.label_type))
    if codes.null_count:
        unseen = pc.unique(pc.filter(column, pc.is_null(codes))).to_pylist()[:5]
        raise DataError(f"Label '{model.label}' has values the model never saw in training: {unseen}.")
    return np.asarray(codes, dtype=np.int64)


def true_labels(model: "LoadedModel", data: pa.Table) -> np.ndarray:
    """Each labelled row's label as the metrics read it: class codes (classifiers) or floats (regressors)."""
    if model.kind.task == CLASSIFICATION:
        return true_codes(model, data)
    return to_float64(data[model.label]).to_numpy()


@dataclass
class Scored:
    """Labelled rows scored once: true labels (class codes or floats), predictions and, for a classifier,
    class probabilities. Metrics, confusion matrix, ROC curve and slices of the same rows share it.
    ``weight``: how many rows each entry stands for (rows counted where they are, :meth:`of_counts`);
    None when every entry is one row."""

    y: np.ndarray
    predicted: np.ndarray
    probs: np.ndarray | None = None
    weight: np.ndarray | None = None

    @classmethod
    def of(cls, model: "LoadedModel", data: pa.Table, threshold: float | None = None) -> "Scored":
        """Through ML.PREDICT's own scoring path, so figures agree with its output to the last bit."""
        data = labelled_rows(model, data)
        out = model.predict(data, threshold)
        if model.kind.task != CLASSIFICATION:
            return cls(true_labels(model, data), out.column(0).to_numpy())
        probs = pc.struct_field(pc.list_flatten(out.column(1)), "prob").to_numpy().reshape(-1, len(model.classes))
        return cls(true_labels(model, data), model.decide(probs, threshold), probs)

    @classmethod
    def of_tables(cls, model: "LoadedModel", tables: t.Iterable[pa.Table], empty: t.Callable[[], pa.Table],
                  threshold: float | None = None) -> "Scored":
        """Scored one record batch at a time: only each row's label, prediction and probabilities are
        kept, not its input columns (``empty()``: the input's schema, for an input without rows)."""
        parts = [cls.of(model, rows, threshold) for rows in tables] or [cls.of(model, empty(), threshold)]
        probs = None if parts[0].probs is None else np.concatenate([p.probs for p in parts])
        return cls(np.concatenate([p.y for p in parts]), np.concatenate([p.predicted for p in parts]), probs)

    @classmethod
    def of_counts(cls, counted: pa.Table) -> "Scored":
        """Rows counted where they were scored: each distinct row of :func:`scored_table`'s columns with
        its number in ``count`` (:data:`COUNT`)."""
        probs = [c for c in counted.column_names if c.startswith(PROBABILITY)]
        return cls(counted[LABEL].to_numpy(), counted[PREDICTED].to_numpy(),
                   np.column_stack([counted[c].to_numpy() for c in probs]) if probs else None,
                   counted[COUNT].to_numpy().astype(np.float64))

    def take(self, rows: np.ndarray) -> "Scored":
        return Scored(self.y[rows], self.predicted[rows], None if self.probs is None else self.probs[rows],
                      None if self.weight is None else self.weight[rows])

    def __len__(self) -> int:
        return len(self.y) if self.weight is None else int(self.weight.sum())


#: The columns of :func:`scored_table` (named apart from any column of the input they may be kept beside).
LABEL, PREDICTED, PROBABILITY, COUNT = "__sqlml_y", "__sqlml_predicted", "__sqlml_p_", "count"


def scored_table(model: "LoadedModel", threshold: float | None, rows: pa.Table, keep: t.Sequence[str] = ()) -> pa.Table:
    """:class:`Scored`'s columns of a batch's labelled rows, as a table an engine can count where the rows
    are: the label and prediction (class codes or floats), each class's probability, and the input
    columns ``keep`` beside them."""
    rows = labelled_rows(model, rows)
    scored = Scored.of(model, rows, threshold)
    columns = {LABEL: scored.y, PREDICTED: scored.predicted}
    if scored.probs is not None:
        columns.update({f"{PROBABILITY}{i}": scored.probs[:, i] for i in range(scored.probs.shape[1])})
    return pa.Table.from_arrays([*map(pa.array, columns.values()), *(rows[c] for c in keep)],
                                names=[*columns, *keep])


def evaluate(model: "LoadedModel", data: pa.Table, threshold: float | None = None,
             scored: Scored | None = None) -> dict:
    """One row of BigQuery's ML.EVALUATE metrics for ``data`` (already ``scored``, for a classifier)."""
    if model.kind.task == RECOMMENDATION:
        return recommendation_metrics(model, data)
    if model.kind.task == REDUCTION:
        if data.num_rows == 0:
            raise DataError(f"The evaluation data has no rows; the metrics of '{model.info.name}' need at least one.")
        return reduction.evaluation(model.kind.family, model.estimator, model.features(data))
    if model.kind.task == CLUSTERING:
        if data.num_rows == 0:
            raise DataError(f"The evaluation data has no rows; k-means metrics of '{model.info.name}' need at least one.")
        return clustering_metrics(model.features(data), model.estimator)
    return scored_metrics(model, scored or Scored.of(model, data), threshold)


def scored_metrics(model: "LoadedModel", scored: Scored, threshold: float | None = None) -> dict:
    """ML.EVALUATE's metrics of a classifier or regressor on rows already scored."""
    if len(scored) == 0:
        raise DataError("The evaluation data has no rows with a non-NULL label.")
    if model.kind.task == CLASSIFICATION:
        return classification_metrics(scored.y, scored.probs, model.decide(scored.probs, threshold), weight=scored.weight)
    return regression_metrics(scored.y, scored.predicted, scored.weight)


def classification_metrics(y: np.ndarray, probs: np.ndarray, predicted: np.ndarray,
                           names: t.Collection[str] | None = None, weight: np.ndarray | None = None) -> dict:
    """sklearn.metrics of a classifier's rows; ``names``: only those (a bootstrap needs one); ``weight``:
    how many rows each stands for."""
    from sklearn import metrics as skm
    labels = np.arange(probs.shape[1])
    binary = probs.shape[1] == 2
    average = "binary" if binary else "macro"
    present = np.unique(y)
    weighted = {} if weight is None else {"sample_weight": weight}
    per_class = {"average": average, "labels": None if binary else labels, "zero_division": 0, **weighted}

    def auc():
        if binary:
            return skm.roc_auc_score(y, probs[:, 1], **weighted) if len(present) == 2 else None
        return skm.roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=labels, **weighted) \
            if len(present) == probs.shape[1] else None
    figures = {
        "precision": lambda: skm.precision_score(y, predicted, **per_class),
        "recall": lambda: skm.recall_score(y, predicted, **per_class),
        "accuracy": lambda: skm.accuracy_score(y, predicted, **weighted),
        "f1_score": lambda: skm.f1_score(y, predicted, **per_class),
        "log_loss": lambda: skm.log_loss(y, probs, labels=labels, **weighted),
        "roc_auc": auc,
        # Area under the precision-recall curve: unlike roc_auc, it drops when a rare class is missed.
        **({"pr_auc": lambda: skm.average_precision_score(y, probs[:, 1], **weighted) if len(present) == 2 else None}
           if binary else {}),
    }
    return {k: f() for k, f in figures.items() if names is None or k in names}


def regression_metrics(y: np.ndarray, predicted: np.ndarray, weight: np.ndarray | None = None) -> dict:
    from sklearn import metrics as skm
    nonnegative = (y >= 0).all() and (predicted >= 0).all()
    weighted = {} if weight is None else {"sample_weight": weight}
    return {
        "mean_absolute_error": skm.mean_absolute_error(y, predicted, **weighted),
        "mean_squared_error": skm.mean_squared_error(y, predicted, **weighted),
        "mean_squared_log_error": skm.mean_squared_log_error(y, predicted, **weighted) if nonnegative else None,
        "median_absolute_error": skm.median_absolute_error(y, predicted, **weighted),
        "r2_score": skm.r2_score(y, predicted, **weighted),
        "explained_variance": skm.explained_variance_score(y, predicted, **weighted),
    }


def recommendation_metrics(model: "LoadedModel", data: pa.Table, baseline: bool = False,
                           top_k: int | None = None) -> dict:
    """A matrix factorization's metrics (or its baseline's) on rows of (user, item, rating): explicit feedback
    the regression metrics of the predicted ratings, implicit feedback the ranking metrics of
    :mod:`sqlml.model.ranking` (``top_k``: of the first k places only). A row with a NULL rating is left
    out; a NULL or unseen user or item gets the intercepts, as in ML.RECOMMEND."""
    factorization, options = model.estimator, model.info.options
    columns = [options["user_col"], options["item_col"], options["rating_col"]]
    missing = [c for c in columns if c not in data.column_names]
    if missing:
        raise DataError(f"The evaluation data of '{model.info.name}' needs the columns {', '.join(columns)}; "
                        f"it lacks {', '.join(missing)}.")
    data = labelled_rows(model, data)
    users = factorization.user_index(data[columns[0]], columns[0])
    items = factorization.item_index(data[columns[1]], columns[1])
    ratings = to_float64(data[columns[2]]).to_numpy()
    if not factorization.explicit:
        return ranking.ranking_metrics(factorization, users, items, ratings, top_k, baseline)
    if not len(ratings):
        raise DataError("The evaluation data has no rows with a non-NULL rating.")
    return regression_metrics(ratings, factorization.pairs(users, items, baseline))


def clustering_metrics(X: np.ndarray, estimator: t.Any) -> dict:
    from sklearn import metrics as skm
    distances = estimator.transform(X)
    assigned = distances.argmin(axis=1)
    # The index compares clusters: it needs two at least, and is undefined when each row is its own.
    defined = 1 < len(np.unique(assigned)) < len(X)
    return {
        "davies_bouldin_index": skm.davies_bouldin_score(X, assigned) if defined else None,
        "mean_squared_distance": float(np.mean(distances.min(axis=1) ** 2)),
    }


def confusion_matrix(model: "LoadedModel", data: pa.Table, threshold: float | None = None,
                     scored: Scored | None = None) -> pa.Table:
    """ML.CONFUSION_MATRIX: ``expected_label`` and one count column per predicted class."""
    _require_classifier(model, "ML.CONFUSION_MATRIX")
    from sklearn import metrics as skm
    scored = scored or Scored.of(model, data)
    matrix = skm.confusion_matrix(scored.y, model.decide(scored.probs, threshold), labels=np.arange(len(model.classes)),
                                  sample_weight=scored.weight).astype(np.int64)
    columns = {"expected_label": pa.array(model.classes, type=model.label_type)}
    for index, label in enumerate(model.classes):
        columns[sanitize(label)] = pa.array(matrix[:, index], type=pa.int64())
    return pa.table(columns)


def sanitize(label: t.Any) -> str:
    """BigQuery's column name for a class: non-alphanumerics become '_'; numbers and names that
    start with a digit get a leading '_' (labels 0 and 1 give columns _0 and _1)."""
    text = str(label).lower() if isinstance(label, bool) else re.sub(r"\W", "_", str(label))
    numeric = isinstance(label, (int, float)) and not isinstance(label, bool)
    return f"_{text}" if numeric or not text or text[0].isdigit() else text


def roc_curve(model: "LoadedModel", data: pa.Table, thresholds: list[float] | None = None,
              scored: Scored | None = None) -> pa.Table:
    """ML.ROC_CURVE for a binary classifier, at the given thresholds or at score percentiles."""
    _require_classifier(model, "ML.ROC_CURVE")
    if len(model.classes) != 2:
        raise DataError("ML.ROC_CURVE needs a binary classifier; this model has "
                        f"{len(model.classes)} classes.")
    scored = scored or Scored.of(model, data)
    scores, positive = scored.probs[:, 1], scored.y == 1
    if thresholds is None:
        thresholds = np.unique(quantiles(scores, np.linspace(0, 1, 101), scored.weight))[::-1]
    counts = threshold_counts(scores, positive, np.asarray(thresholds, dtype=np.float64), scored.weight)
    n_pos, n_neg = (positive.sum(), (~positive).sum()) if scored.weight is None else \
        (int(scored.weight[positive].sum()), int(scored.weight[~positive].sum()))
    return pa.table({
        "threshold": counts["threshold"],
        "recall": counts["true_positives"] / n_pos if n_pos else np.full(len(thresholds), np.nan),
        "false_positive_rate": counts["false_positives"] / n_neg if n_neg else np.full(len(thresholds), np.nan),
        "true_positives": counts["true_positives"],
        "false_positives": counts["false_positives"],
        "true_negatives": counts["true_negatives"],
        "false_negatives": counts["false_negatives"],
        "precision": _ratio(counts["true_positives"], counts["true_positives"] + counts["false_positives"]),
    })


def threshold_metrics(model: "LoadedModel", data: pa.Table | None, thresholds: list[float] | None = None,
                      scored: Scored | None = None) -> pa.Table:
    """ML.THRESHOLD_METRICS: the metrics a binary classifier would score at each decision threshold."""
    _require_classifier(model, "ML.THRESHOLD_METRICS")
    if len(model.classes) != 2:
        raise DataError("ML.THRESHOLD_METRICS needs a binary classifier; this model has "
                        f"{len(model.classes)} classes.")
    return metrics_from_counts(roc_curve(model, data, thresholds, scored).to_pydict())


def metrics_from_counts(counts: dict) -> pa.Table:
    """Per-threshold precision, recall, f1, false positive rate and accuracy from confusion counts
    (``roc_curve`` columns); NULL where a ratio has nothing to divide by."""
    tp, fp, tn, fn = (np.asarray(counts[k], dtype=np.int64) for k in
                      ("true_positives", "false_positives", "true_negatives", "false_negatives"))
    return pa.table({
        "threshold": pa.array(counts["threshold"], type=pa.float64()),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1_score": _ratio(2 * tp, 2 * tp + fp + fn),
        "false_positive_rate": _ratio(fp, fp + tn),
        "accuracy": _ratio(tp + tn, tp + fp + tn + fn),
        "true_positives": tp, "false_positives": fp, "true_negatives": tn, "false_negatives": fn,
    })


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> pa.Array:
    safe = np.where(denominator > 0, denominator, 1)
    return pa.array(numerator / safe, type=pa.float64(), mask=np.asarray(denominator) == 0)


def threshold_counts(scores: np.ndarray, positive: np.ndarray, thresholds: np.ndarray,
                     weight: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Confusion counts at each threshold (score ≥ threshold is positive), in one sort; ``weight``: how
    many rows each score stands for."""
    if weight is None:
        pos_scores, neg_scores = np.sort(scores[positive]), np.sort(scores[~positive])
        tp = len(pos_scores) - np.searchsorted(pos_scores, thresholds, side="left")
        fp = len(neg_scores) - np.searchsorted(neg_scores, thresholds, side="left")
        return {"threshold": thresholds, "true_positives": tp, "false_positives": fp,
                "true_negatives": len(neg_scores) - fp, "false_negatives": len(pos_scores) - tp}
    (tp, pos), (fp, neg) = (_weight_at_or_above(scores[side], weight[side], thresholds) for side in (positive, ~positive))
    return {"threshold": thresholds, "true_positives": tp, "false_positives": fp,
            "true_negatives": neg - fp, "false_negatives": pos - tp}


def _weight_at_or_above(scores: np.ndarray, weight: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, int]:
    """The rows scoring at least each threshold, and all rows (``weight`` rows per score)."""
    order = np.argsort(scores, kind="stable")
    below = np.concatenate([[0], np.cumsum(weight[order])]).astype(np.int64)  # rows below each sorted position
    return below[-1] - below[np.searchsorted(scores[order], thresholds, side="left")], int(below[-1])


def quantiles(values: np.ndarray, fractions: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """numpy's (linearly interpolated) quantiles of ``values``, each standing for ``weight`` rows."""
    if weight is None:
        return np.quantile(values, fractions)
    order = np.argsort(values, kind="stable")
    sorted_values, ends = values[order], np.cumsum(weight[order])  # rows up to each distinct value
    position = fractions * (ends[-1] - 1)  # in the sorted rows, as numpy places a quantile
    low, high = np.floor(position), np.ceil(position)
    at = lambda row: sorted_values[np.searchsorted(ends, row, side="right")]  # noqa: E731
    return at(low) + (position - low) * (at(high) - at(low))


def _require_classifier(model: "LoadedModel", function: str) -> None:
    if model.kind.task != CLASSIFICATION:
        raise DataError(f"{function} needs a classification model; '{model.info.name}' is a {model.kind.name}.")
