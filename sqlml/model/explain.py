"""Explanations: ML.EXPLAIN_PREDICT, ML.GLOBAL_EXPLAIN and ML.FEATURE_IMPORTANCE.

Attributions are additive in the model's raw output space, per row:
``baseline_prediction_value + Σ attributions = prediction_value``. The raw output is the prediction
for regressors, the log-odds of the positive class for binary classifiers and the raw score of the
predicted class for multiclass ones (random forests average probabilities, so theirs is a
probability). How each model type is explained:

* linear_reg, logistic_reg: exact, ``coef × (x − mean of the encoded training rows)``.
* boosted trees: exact Tree SHAP (path-dependent), XGBoost's own ``pred_contribs`` (what shap's
  TreeExplainer computes for the same booster).
* random forests, and boosted trees stored before sqlml moved to XGBoost: exact Tree SHAP, shap's
  TreeExplainer. shap reads HistGradientBoosting's categorical splits as numeric ones, so those models
  are first rewritten into an equivalent tree (see :func:`_hgb_tree`) that shap explains exactly.
* dnn_*: integrated gradients, as BigQuery explains DNNs: from the mean encoded training row to each
  row, the network's gradients (computed by hand from its weights) averaged over ``steps`` + 1 points
  of the straight path (trapezoid rule); the sum misses the prediction by the integral's error,
  reported as ``approximation_error``, which shrinks as ``integrated_gradients_num_steps`` grows.
* kmeans: approximate, shap's PermutationExplainer against a small background sample of training
  rows; ``approximation_error`` reports how far the sum is from the prediction.

Attributions of one-hot parts are summed back to their input column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import scipy.sparse as sp
from scipy import special
from threadpoolctl import threadpool_limits

from ..errors import DataError
from .kinds import CLASSIFICATION, CLUSTERING, INTEGRATED_GRADIENTS, REGRESSION, SAMPLED, TREE_SHAP
from .loaded import LoadedModel

BACKGROUND_ROWS = 50  # encoded training rows kept in the model header for sampled explanations
INTEGRATED_GRADIENTS_STEPS = 15  # BigQuery's default integrated_gradients_num_steps
SEED = 0
UNREACHED = 1e6  # category codes never reach this (sklearn keeps at most 255 per column)
ATTRIBUTION = pa.struct([("feature", pa.string()), ("attribution", pa.float64())])


@dataclass
class Explanation:
    """Attributions per encoded feature of one raw output per row."""

    baseline: np.ndarray  # (rows,)
    attributions: np.ndarray  # (rows, encoded features)
    prediction: np.ndarray  # (rows,) the raw output computed by the model itself

    def per_column(self, model: "LoadedModel") -> np.ndarray:
        """(rows, input columns): one-hot parts summed back to the column they came from."""
        columns = model.preprocessor.input_columns
        position = {name: i for i, name in enumerate(columns)}
        sources = [position[s] for s in model.preprocessor.feature_sources]
        fold = np.zeros((len(sources), len(columns)))
        fold[np.arange(len(sources)), sources] = 1.0
        return self.attributions @ fold

    @property
    def error(self) -> np.ndarray:
        return np.abs(self.prediction - (self.baseline + self.attributions.sum(axis=1)))


def background(X: np.ndarray | sp.csr_matrix, encoding: str) -> dict | None:
    """What explanations need from the training rows, kept in the model header: the mean encoded
    row (linear models' reference point) and a seeded sample (sampled explainers' background).
    Trees need neither: Tree SHAP uses the node counts stored in the trees."""
    if encoding != "onehot" or X.shape[0] == 0:
        return None
    rows = np.random.default_rng(SEED).choice(X.shape[0], min(X.shape[0], BACKGROUND_ROWS), replace=False)
    sample = X[np.sort(rows)]
    # scipy's CSR mean copies the matrix twice (astype, then a scaled copy); this is the same sum, in the same order.
    mean = X.T @ np.full(X.shape[0], 1.0 / X.shape[0]) if sp.issparse(X) else X.mean(axis=0)
    return {"mean": mean.tolist(),
            "sample": (sample.toarray() if sp.issparse(sample) else sample).tolist()}


def explain(model: "LoadedModel", X: np.ndarray, target: np.ndarray | None, steps: int | None = None) -> Explanation:
    """Explain the raw output for class ``target[i]`` of each row (None: regression). ``steps``: the
    integrated gradients' steps for a DNN (default: the model's integrated_gradients_num_steps, else 15).

    For a binary classifier whose raw output is the positive class's log-odds, class 0 is the
    negated explanation of class 1."""
    estimator = model.estimator
    if len(X) == 0:  # scikit-learn refuses inputs of zero rows: nothing to explain
        return Explanation(np.zeros(0), np.zeros(X.shape), np.zeros(0))
    with threadpool_limits(1):
        if model.kind.explainer == TREE_SHAP:
            explained = _tree_shap(estimator, X, target)
        elif model.kind.explainer == SAMPLED:
            return _sampled(model, X, target, _background(model))
        elif model.kind.explainer == INTEGRATED_GRADIENTS:
            steps = steps or model.info.options.get("integrated_gradients_num_steps", INTEGRATED_GRADIENTS_STEPS)
            explained = integrated_gradients(estimator, X, target, np.asarray(_background(model)["mean"]), steps)
        else:
            explained = _linear(estimator, X, target, np.asarray(_background(model)["mean"]))
    if model.kind.task == REGRESSION:  # back to the label's units, as ML.PREDICT reports it
        mean, std = model.target_scale
        explained = Explanation(explained.baseline * std + mean, explained.attributions * std,
                                explained.prediction * std + mean)
    return explained


def _shap():
    import shap  # imported on first use: it takes seconds and most statements never explain
    return shap


def _pick(outputs: int, target: np.ndarray | None, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Which raw output explains each row, and its sign (binary log-odds: class 0 = −class 1)."""
    if target is None:
        return np.zeros(rows, dtype=np.int64), np.ones(rows)
    if outputs == 1:
        return np.zeros(rows, dtype=np.int64), np.where(target == 1, 1.0, -1.0)
    return np.asarray(target, dtype=np.int64), np.ones(rows)


def _linear(estimator, X: np.ndarray, target: np.ndarray | None, mean: np.ndarray) -> Explanation:
    coef = np.atleast_2d(estimator.coef_)
    intercept = np.atleast_1d(estimator.intercept_)
    index, sign = _pick(coef.shape[0], target, len(X))
    row_coef = coef[index] * sign[:, None]
    row_intercept = intercept[index] * sign
    return Explanation(
        baseline=row_intercept + row_coef @ mean,
        attributions=row_coef * (X - mean),
        prediction=row_intercept + np.einsum("ij,ij->i", row_coef, X),
    )


def _trees(explainers: list, raw: np.ndarray, X: np.ndarray, target: np.ndarray | None) -> Explanation:
    """Tree SHAP from one explainer (all outputs) or one per output (HGB's per-class trees)."""
    values, expected = [], []
    for explainer in explainers:
        v = np.asarray(explainer.shap_values(X, check_additivity=False))
        values.append(v if v.ndim == 3 else v[:, :, None])
        expected.append(np.atleast_1d(explainer.expected_value))
    values, expected = np.concatenate(values, axis=2), np.concatenate(expected)
    index, sign = _pick(values.shape[2], target, len(X))
    rows = np.arange(len(X))
    return Explanation(expected[index] * sign, values[rows, :, index] * sign[:, None], raw[rows, index] * sign)


def _xgboost(trees, X: np.ndarray, target: np.ndarray | None) -> Explanation:
    """XGBoost's exact Tree SHAP of its margin (the bias column is the baseline), per class when there
    are several."""
    values = trees.contributions(X)
    values = values[:, None, :] if values.ndim == 2 else values  # (rows, outputs, features + bias)
    index, sign = _pick(values.shape[1], target, len(X))
    rows = np.arange(len(X))
    chosen = values[rows, index] * sign[:, None]
    margin = trees.decision_function(X).reshape(len(X), -1)
    return Explanation(chosen[:, -1], chosen[:, :-1], margin[rows, index] * sign)


def _tree_raw(estimator, X: np.ndarray) -> np.ndarray:
    """What Tree SHAP explains: HGB's decision function (log-odds), a forest's averaged probabilities,
    a regressor's prediction; one column per output."""
    method = next(m for m in ("decision_function", "predict_proba", "predict") if hasattr(estimator, m))
    return getattr(estimator, method)(X).reshape(len(X), -1)


def _tree_shap(estimator, X: np.ndarray, target: np.ndarray | None) -> Explanation:
    """shap explains the trees directly unless an HGB has categorical features. Then scikit-learn's trees
    split an internal matrix (categorical columns first, re-coded by an OrdinalEncoder) with
    categorical splits shap would misread as numeric thresholds; so each class's trees are
    rewritten by :func:`_hgb_tree`, explained on that internal matrix and mapped back. XGBoost explains
    its own trees."""
    if hasattr(estimator, "contributions"):
        return _xgboost(estimator, X, target)
    raw = _tree_raw(estimator, X)
    order = hgb_columns(estimator)
    if order is None:
        return _trees([_shap().TreeExplainer(estimator, model_output="raw")], raw, X, target)
    internal = _trees(_hgb_explainers(estimator), raw, estimator._preprocessor.transform(X), target)
    attributions = np.empty_like(internal.attributions)
    attributions[:, order] = internal.attributions
    return Explanation(internal.baseline, attributions, internal.prediction)


def hgb_columns(estimator) -> np.ndarray | None:
    """For an HGB with categorical features, the input column behind each column of its internal
    matrix (what the trees' ``feature_idx`` counts); None when it splits the input directly."""
    if getattr(estimator, "_preprocessor", None) is None:
        return None
    categorical = np.asarray(estimator.is_categorical_)
    return np.concatenate([np.flatnonzero(categorical), np.flatnonzero(~categorical)])


def _hgb_explainers(estimator) -> list:
    shap = _shap()
    base = np.ravel(estimator._baseline_prediction)
    return [
        shap.TreeExplainer({"trees": [_hgb_tree(p[k]) for p in estimator._predictors], "base_offset": float(base[k]),
                            "tree_output": "raw_value", "input_dtype": np.float64, "internal_dtype": np.float64},
                           model_output="raw")
        for k in range(len(estimator._predictors[0]))
    ]


def _hgb_tree(predictor) -> dict:
    """One fitted HGB tree as shap's dict format, categorical splits included, exactly.

    A categorical split "code in S" becomes a chain of threshold splits on the same feature, one
    per run of consecutive codes on the same side, whose branches point to the two original
    subtrees (the result is a DAG, which Tree SHAP walks like a tree). Tree SHAP merges repeated
    splits on one feature, so the chain keeps the split's meaning when the feature is unknown as
    long as the runs of each side share that side's cover equally: each side gets as many runs,
    padded with never-reached code ranges, and each run the side's cover divided by that count.
    """
    nodes, bitsets = predictor.nodes, predictor.raw_left_cat_bitsets
    tree = {k: [] for k in ("children_left", "children_right", "children_default", "features", "thresholds",
                            "values", "node_sample_weight")}
    built: dict[int, int] = {}

    def add(feature: int, threshold: float, value: float, weight: float) -> int:
        for key, v in zip(tree, (-1, -1, -1, feature, threshold, [value], weight)):
            tree[key].append(v)
        return len(tree["features"]) - 1

    def link(i: int, left: int, right: int, default_left: bool) -> None:
        tree["children_left"][i], tree["children_right"][i] = left, right
        tree["children_default"][i] = left if default_left else right

    def build(n: int, scale: float) -> int:
        if n in built:
            return built[n]
        node = nodes[n]
        if node["is_leaf"]:
            built[n] = add(-2, 0.0, float(node["value"]), node["count"] * scale)
        elif not node["is_categorical"]:
            i = built[n] = add(int(node["feature_idx"]), float(node["num_threshold"]), 0.0, node["count"] * scale)
            link(i, build(node["left"], scale), build(node["right"], scale), bool(node["missing_go_to_left"]))
        else:
            built[n] = chain(node, scale)
        return built[n]

    def chain(node, scale: float) -> int:
        runs = _runs(bitsets[node["bitset_idx"]])
        lefts = sum(side for side, _ in runs)
        per_side = max(lefts, len(runs) - lefts)
        # Never-reached code ranges after the last run even out the sides' run counts.
        runs += [(lefts < per_side and k < per_side - lefts, UNREACHED + k) for k in range(2 * per_side - len(runs))]
        child = {True: build(node["left"], scale / per_side), False: build(node["right"], scale / per_side)}
        weight = {side: tree["node_sample_weight"][i] for side, i in child.items()}
        missing_left = bool(node["missing_go_to_left"])
        nxt = child[runs[-1][0]]
        for side, upper in reversed(runs[:-1]):
            i = add(int(node["feature_idx"]), upper + 0.5, 0.0, weight[side] + tree["node_sample_weight"][nxt])
            # NaN follows the missing side: here if this run is on it, else further down the chain
            link(i, child[side], nxt, default_left=(side == missing_left))
            nxt = i
        return nxt

    root = build(0, 1.0)
    return _rooted({key: np.asarray(v) for key, v in tree.items()}, root)


def _rooted(tree: dict, root: int) -> dict:
    """Renumber nodes so the root is node 0, as shap expects (a chain's first node is made last)."""
    order = np.concatenate([[root], np.delete(np.arange(len(tree["features"])), root)])
    new_index = np.empty_like(order)
    new_index[order] = np.arange(len(order))
    renumbered = {key: v[order] for key, v in tree.items()}
    for key in ("children_left", "children_right", "children_default"):
        children = renumbered[key]
        renumbered[key] = np.where(children >= 0, new_index[np.maximum(children, 0)], -1)
    for key in ("thresholds", "values", "node_sample_weight"):
        renumbered[key] = renumbered[key].astype(np.float64)
    return renumbered


def _runs(bitset: np.ndarray) -> list[tuple[bool, float]]:
    """Runs of consecutive category codes the split sends to the same side, as (goes left, last
    code); the last run (right) is open-ended: codes past the bitset go right, as in scikit-learn."""
    bits = np.unpackbits(bitset.astype("<u4").view(np.uint8), bitorder="little").astype(bool)
    changes = np.flatnonzero(bits[1:] != bits[:-1])
    runs = [(bool(bits[end]), float(end)) for end in changes]
    runs.append((bool(bits[-1]), float(UNREACHED - 1)))
    return runs


#: An MLP's hidden activations (scikit-learn's), and each one's derivative written from its output.
ACTIVATIONS = {"relu": lambda z: np.maximum(z, 0), "logistic": special.expit, "tanh": np.tanh, "identity": lambda z: z}
ACTIVATION_SLOPES = {"relu": lambda a: (a > 0).astype(np.float64), "logistic": lambda a: a * (1 - a),
                     "tanh": lambda a: 1 - a * a, "identity": np.ones_like}


def integrated_gradients(net, X: np.ndarray, target: np.ndarray | None, baseline: np.ndarray,
                         steps: int) -> Explanation:
    """Integrated gradients of an MLP's raw output (see :func:`mlp_output`) from ``baseline`` to each row:
    (x − baseline) × the gradient averaged over ``steps`` + 1 evenly spaced points of the straight path,
    by the trapezoid rule."""
    alphas = np.linspace(0.0, 1.0, steps + 1)
    weights = np.full(steps + 1, 1.0 / steps)
    weights[[0, -1]] /= 2
    index, sign = _pick(net.coefs_[-1].shape[1], target, len(X))
    path = (baseline + alphas[:, None, None] * (X - baseline)).reshape(-1, X.shape[1])
    _, gradients = mlp_output(net, path, np.tile(index, steps + 1))
    mean_gradient = np.tensordot(weights, gradients.reshape(steps + 1, *X.shape), axes=1)
    at_baseline, _ = mlp_output(net, np.tile(baseline, (len(X), 1)), index)
    at_rows, _ = mlp_output(net, X, index)
    return Explanation(at_baseline * sign, (X - baseline) * mean_gradient * sign[:, None], at_rows * sign)


def mlp_output(net, X: np.ndarray, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A scikit-learn MLP's raw output per row and its gradient with respect to the row, backpropagated
    by hand through its weights: the output unit (a regressor's prediction, a binary classifier's
    log-odds), or for several classes the log-odds of class ``output[i]``: z_k − log Σ_{j≠k} exp(z_j)."""
    layers = [X]
    for W, b in zip(net.coefs_[:-1], net.intercepts_[:-1]):
        z = layers[-1] @ W + b
        layers.append(ACTIVATIONS[net.activation](z))
    z = layers[-1] @ net.coefs_[-1] + net.intercepts_[-1]
    rows = np.arange(len(X))
    if z.shape[1] == 1:
        value, slope = z[:, 0], np.ones_like(z)
    else:
        others = z.copy()
        others[rows, output] = -np.inf
        rest = special.logsumexp(others, axis=1)
        value = z[rows, output] - rest
        slope = -np.exp(others - rest[:, None])
        slope[rows, output] = 1.0
    for W, activation in zip(reversed(net.coefs_), reversed(layers)):
        slope = slope @ W.T
        if activation is not X:
            slope *= ACTIVATION_SLOPES[net.activation](activation)
    return value, slope


def _sampled(model: "LoadedModel", X: np.ndarray, target: np.ndarray, reference: dict) -> Explanation:
    """shap's PermutationExplainer of k-means' distance to each row's centroid, rows grouped by centroid.
    Masked features take their values from the background rows (one-hot parts independently), so this
    is an estimate. The caller has capped threads once: entering threadpool_limits on each of shap's
    many calls costs more."""
    shap = _shap()
    sample = np.asarray(reference["sample"])
    masker = shap.maskers.Independent(sample, max_samples=len(sample))
    result = Explanation(np.zeros(len(X)), np.zeros(X.shape), np.zeros(len(X)))
    for group in np.unique(target):
        rows = np.flatnonzero(target == group)
        centroid = model.estimator.cluster_centers_[group]

        def output(Z: np.ndarray, centroid: np.ndarray = centroid) -> np.ndarray:
            return np.linalg.norm(Z - centroid, axis=1)
        explained = shap.PermutationExplainer(output, masker, seed=SEED)(
            X[rows], max_evals=2 * X.shape[1] + 1, silent=True)
        result.baseline[rows] = explained.base_values
        result.attributions[rows] = explained.values
        result.prediction[rows] = output(X[rows])
    return result


def _background(model: "LoadedModel") -> dict:
    """The training reference stored with the model (its header), which sampled explanations compare against."""
    if model.background is None:
        raise DataError(f"Model '{model.info.name}' has no stored training reference to explain against; retrain it.")
    return model.background


def targets(model: "LoadedModel", X: np.ndarray) -> np.ndarray | None:
    """The output each row's explanation is about: the positive class (binary), the predicted class
    (multiclass), the assigned centroid (k-means), nothing (regression)."""
    if len(X) == 0 and model.kind.task != REGRESSION:
        return np.zeros(0, dtype=np.int64)
    if model.kind.task == CLASSIFICATION:
        return np.ones(len(X), dtype=np.int64) if len(model.classes) == 2 else model.probabilities(X).argmax(axis=1)
    if model.kind.task == CLUSTERING:
        with threadpool_limits(1):
            return model.estimator.predict(X)
    return None
