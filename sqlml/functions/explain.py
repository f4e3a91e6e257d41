"""ML.EXPLAIN_PREDICT, ML.GLOBAL_EXPLAIN and ML.FEATURE_IMPORTANCE; how each model type is explained is
:mod:`sqlml.model.explain`."""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError
from ..model.explain import (
    ATTRIBUTION,
    SEED,
    explain,
    hgb_columns,
    targets,
)
from ..model.kinds import CLASSIFICATION, CLUSTERING, INTEGRATED_GRADIENTS
from ..model.loaded import LoadedModel
from .base import Call, Output

TOP_K_DEFAULT = 5  # BigQuery's default top_k_features
GLOBAL_SAMPLE_ROWS = 2_000


def explain_predict(call: "Call") -> Output:
    """ML.EXPLAIN_PREDICT: ML.PREDICT's columns (a classifier's class probabilities reduced to
    ``probability``), the top attributions, baseline, prediction, approximation error, the input."""
    model = call.require_model()
    top_k = _top_k(call.param("top_k_features", TOP_K_DEFAULT))
    threshold = call.param("threshold")
    steps = _steps(model, call.param("integrated_gradients_num_steps"))
    data = call.require_input()
    explained = functools.partial(_explain_batch, model, top_k=top_k, threshold=threshold, steps=steps)
    return data.map(explained, lambda: explained(data.empty()))


def _steps(model: "LoadedModel", steps: int | None) -> int | None:
    """integrated_gradients_num_steps, which only a DNN's explanation (integrated gradients) has."""
    if steps is not None and model.kind.explainer != INTEGRATED_GRADIENTS:
        raise DataError(f"integrated_gradients_num_steps applies to DNN models (dnn_classifier, dnn_regressor), "
                        f"explained by integrated gradients; '{model.info.name}' is a {model.kind.name}. Leave it out.")
    return steps


def _top_k(value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DataError(f"top_k_features must be a positive integer; got {value!r}.")
    return int(value)


def _explain_batch(model: "LoadedModel", table: pa.Table, *, top_k: int, threshold, steps: int | None) -> pa.Table:
    X = model.features(table)
    explained = explain(model, X, targets(model, X), steps)
    per_column = explained.per_column(model)
    front = _prediction_columns(model, X, table, threshold)
    front = front.append_column("top_feature_attributions",
                                _top_attributions(per_column, model.preprocessor.input_columns, top_k))
    for name, values in (("baseline_prediction_value", explained.baseline), ("prediction_value", explained.prediction),
                         ("approximation_error", explained.error)):
        front = front.append_column(name, pa.array(values, type=pa.float64()))
    rest = [c for c in table.column_names if c not in front.column_names]
    return pa.Table.from_arrays(front.columns + table.select(rest).columns, names=front.column_names + rest)


def _prediction_columns(model: "LoadedModel", X: np.ndarray, table: pa.Table, threshold) -> pa.Table:
    if model.kind.task != CLASSIFICATION:
        return model.predict(table, threshold)
    probs = model.probabilities(X) if len(X) else np.zeros((0, len(model.classes)))
    codes = model.decide(probs, threshold)
    predicted = pa.array(model.classes, type=model.label_type).take(pa.array(codes, type=pa.int64()))
    probability = probs[np.arange(len(codes)), codes]
    return pa.table({f"predicted_{model.label}": predicted, "probability": pa.array(probability, type=pa.float64())})


def _top_attributions(values: np.ndarray, names: list[str], top_k: int) -> pa.ListArray:
    """Per row, the ``top_k`` columns with the largest |attribution|, largest first."""
    rows, width = values.shape
    k = min(top_k, width)
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
    structs = pa.StructArray.from_arrays(
        [pa.array(np.asarray(names, dtype=object)[order].ravel(), type=pa.string()),
         pa.array(np.take_along_axis(values, order, axis=1).ravel(), type=pa.float64())],
        fields=list(ATTRIBUTION))
    return pa.ListArray.from_arrays(pa.array(np.arange(0, rows * k + 1, k, dtype=np.int32)), structs)


def global_explain(call: "Call") -> pa.Table:
    """ML.GLOBAL_EXPLAIN: mean |attribution| per input column over at most 2,000 rows (seeded sample)
    of the training query, re-run now: the evaluation rows themselves are not stored."""
    model = call.require_model()
    method = str(call.param("method", "shap")).lower()
    if method not in ("shap", "permutation"):
        raise DataError(f"GLOBAL_EXPLAIN method must be 'shap' or 'permutation'; got {method!r}.")
    table = evaluation_sample(call, model)
    class_level = bool(call.param("class_level_explain", False))
    if method == "permutation":
        if class_level:
            raise DataError("class_level_explain is not available with method 'permutation'.")
        return _permutation(model, table)
    X = model.features(table)
    columns = model.preprocessor.input_columns
    if not class_level:
        return _ranked(columns, explain(model, X, targets(model, X)).per_column(model))
    if model.kind.task != CLASSIFICATION:
        raise DataError(f"class_level_explain needs a classifier; '{model.info.name}' is a {model.kind.name}.")
    pieces = []
    for k, label in enumerate(model.classes):
        ranked = _ranked(columns, explain(model, X, np.full(len(X), k)).per_column(model))
        pieces.append(ranked.add_column(0, "class_label", pa.array([str(label)] * ranked.num_rows, type=pa.string())))
    return pa.concat_tables(pieces)


def evaluation_sample(call: "Call", model: "LoadedModel") -> pa.Table:
    """At most GLOBAL_SAMPLE_ROWS rows of the model's training query, sampled with a fixed seed."""
    if call.training is None:
        raise DataError(f"Model '{model.info.name}' has no stored training query to explain over.")
    table = call.training.table()
    if model.label and model.label in table.column_names:
        table = table.filter(pc.is_valid(table[model.label]))
    if table.num_rows > GLOBAL_SAMPLE_ROWS:
        rows = np.random.default_rng(SEED).choice(table.num_rows, GLOBAL_SAMPLE_ROWS, replace=False)
        table = table.take(np.sort(rows))
    if table.num_rows == 0:
        raise DataError(f"The training query of '{model.info.name}' returns no rows now; nothing to explain.")
    return table


def _ranked(columns: list[str], per_column: np.ndarray, absolute: bool = True) -> pa.Table:
    mean = (np.abs(per_column) if absolute else per_column).mean(axis=0)
    order = np.argsort(-mean, kind="stable")
    return pa.table({"feature": pa.array([columns[i] for i in order], type=pa.string()),
                     "attribution": pa.array(mean[order], type=pa.float64())})


def _permutation(model: "LoadedModel", table: pa.Table) -> pa.Table:
    """Mean drop in score when one input column is shuffled: sklearn's permutation_importance run
    on the input columns (so a column's one-hot parts move together). The score is the negative
    log loss for classifiers and R² for regressors, as computed by ML.EVALUATE."""
    from sklearn.inspection import permutation_importance

    from ..model import metrics

    if model.kind.task == CLUSTERING:
        raise DataError("Permutation importance needs a label; k-means models have none.")
    table = metrics.labelled_rows(model, table)
    columns = model.preprocessor.input_columns
    key = "log_loss" if model.kind.task == CLASSIFICATION else "r2_score"
    sign = -1.0 if key == "log_loss" else 1.0
    frame = table.select(columns).to_pandas()

    def score(_, shuffled, labels):
        data = pa.Table.from_pandas(shuffled, preserve_index=False).append_column(model.label, labels)
        return sign * metrics.evaluate(model, data)[key]

    # The scorer scores the stored model through sqlml; the estimator argument only satisfies the API.
    result = permutation_importance(model.estimator, frame, table[model.label], scoring=score, n_repeats=5,
                                    random_state=SEED, n_jobs=1)
    return _ranked(columns, result.importances_mean[None, :], absolute=False)


def feature_importance(call: "Call") -> pa.Table:
    """ML.FEATURE_IMPORTANCE for tree models, per input column (trees use one feature per column), as
    BigQuery defines it (XGBoost's importance types): ``importance_weight`` = number of splits on it;
    ``importance_gain`` = its mean split gain; ``importance_cover`` = mean number of training rows
    (hessian weight for XGBoost) reaching its splits."""
    model = call.require_model()
    if not model.kind.trees:
        raise DataError(f"ML.FEATURE_IMPORTANCE needs a tree model (boosted_tree_*, random_forest_*); "
                        f"'{model.info.name}' is a {model.kind.name}. Use ML.GLOBAL_EXPLAIN or ML.WEIGHTS.")
    columns = model.preprocessor.input_columns
    weight, gain, cover = _importances(model.estimator, len(columns))
    table = pa.table({"feature": pa.array(columns, type=pa.string()), "importance_weight": pa.array(weight, pa.int64()),
                      "importance_gain": pa.array(gain, pa.float64()), "importance_cover": pa.array(cover, pa.float64())})
    return table.take(np.argsort(-np.asarray(gain), kind="stable"))


def _importances(estimator, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weight, gain, cover) per feature: XGBoost's own scores, or for the scikit-learn trees stored
    before sqlml moved to XGBoost, the same figures from their nodes (impurity-based
    ``feature_importances_`` as a forest's gain)."""
    if hasattr(estimator, "booster"):
        scores = [estimator.booster.get_score(importance_type=kind) for kind in ("weight", "gain", "cover")]
        return tuple(np.array([score.get(f"f{i}", 0.0) for i in range(width)]) for score in scores)
    if hasattr(estimator, "_predictors"):  # HistGradientBoosting
        splits = np.concatenate([p.nodes[~p.nodes["is_leaf"].astype(bool)]
                                 for per_class in estimator._predictors for p in per_class])
        features, gains, counts = splits["feature_idx"].astype(np.int64), splits["gain"], splits["count"]
        order = hgb_columns(estimator)
        features = features if order is None else order[features]
    else:  # RandomForest
        trees = [e.tree_ for e in estimator.estimators_]
        features = np.concatenate([tr.feature[tr.feature >= 0] for tr in trees])
        counts = np.concatenate([tr.n_node_samples[tr.feature >= 0] for tr in trees])
        gains = None
    weight = np.bincount(features, minlength=width)
    used = np.maximum(weight, 1)
    gain = estimator.feature_importances_ if gains is None else np.bincount(features, gains, width) / used
    return weight, gain, np.bincount(features, counts.astype(np.float64), width) / used
