"""Tree ensembles as SQL, from one library-neutral form of their fitted trees.

:class:`Tree` holds one fitted tree as arrays indexed by node (feature, threshold, children, where a
missing value goes, the category codes of a categorical split, the leaves' values); :class:`Ensemble`
says how trees add up to scores. One small adapter per library fills them in: scikit-learn's
HistGradientBoosting (:func:`from_histogram_boosting`, its ``_predictors`` nodes) and its decision
trees (:func:`from_forest`, each ``tree_``; :func:`from_gradient_boosting`, the trees of
GradientBoosting*, which orbital also compiles: benchmarks/compiled.py compares the two on it), and
XGBoost's boosters, sqlml's boosted trees since it moved to XGBoost (:func:`from_xgboost`, from the
exported form :func:`sqlml.model.trees.of`); HistGradientBoosting still compiles the boosted models
stored before.
:func:`compile_ensemble` writes any ensemble as SQL.

Fast form (measured in docs/compiled_sql.md): every distinct split condition is computed once, in its
own step, as a boolean column; each tree is then a nested CASE over those booleans, and the trees of
an output are added as a balanced sum (DuckDB limits expression depth to ~1,000).

Thresholds compare as the library compares: HistGradientBoosting reads float64 (``x <= t`` as
written); scikit-learn's trees read float32, so ``float32(x) <= t`` is written as ``x <= t'`` with
``t'`` the largest double whose float32 rounding is still ``<= t`` (:func:`float32_threshold`).
"""

from __future__ import annotations

import dataclasses
import typing as t
from dataclasses import dataclass

import numpy as np
from sqlglot import exp

from . import expressions as x
from .expressions import NotCompilableError
from .inputs import Inputs
from .program import Program

#: Nodes (split and leaf) of all trees a compiled model may hold. Generating and planning grow with it:
#: 100 trees of depth 6 are ~6,000 nodes; a default random forest (depth 20) on 20,000 rows ~600,000.
MAX_TREE_NODES = 100_000


@dataclass
class Tree:
    """One fitted tree as arrays indexed by node; node 0 is the root, ``feature[i] < 0`` marks a leaf.

    A row goes left at a numeric split when its value ``<= threshold[i]`` (compared as doubles); at a
    categorical split when its category code is in ``left_codes[i]``, right when in ``right_codes[i]``
    (None: every other code); NaN, and a code in neither set, go left when ``missing_left[i]``.
    ``value[i]`` holds the leaf's values, one per entry of ``outputs`` (the scores the tree adds to)."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    missing_left: np.ndarray
    left_codes: list[frozenset | None]
    right_codes: list[frozenset | None]
    value: np.ndarray
    outputs: tuple[int, ...]


@dataclass
class Ensemble:
    """Score ``k`` = ``base[k]`` + (sum of the trees' values for ``k``) / ``divisor``; ``link`` turns the
    scores into predictions: 'identity' (values, or a forest's class probabilities), 'logistic' (one
    score: the positive class's log-odds), 'softmax' (one score per class)."""

    trees: list[Tree]
    base: list[float]
    divisor: float
    link: str


def from_histogram_boosting(estimator: t.Any) -> Ensemble:
    """scikit-learn's HistGradientBoosting*. Its own preprocessing puts categorical features first and
    recodes their categories (the codes seen at fit, in order); the adapter maps both back to sqlml's
    feature matrix and category codes, and keeps scikit-learn's rule that a category it does not know
    follows the split's missing-value side."""
    columns, codes = _histogram_features(estimator)
    known, f_idx_map = estimator._bin_mapper.make_known_categories_bitsets()
    classes = estimator.n_trees_per_iteration_
    trees = []
    for iteration in estimator._predictors:
        for k, predictor in enumerate(iteration):
            nodes = predictor.nodes
            leaf = nodes["is_leaf"].astype(bool)
            lefts, rights = [], []
            for i, node in enumerate(nodes):
                if leaf[i] or not node["is_categorical"]:
                    lefts.append(None)
                    rights.append(None)
                    continue
                f = int(node["feature_idx"])
                going_left = _bits(predictor.raw_left_cat_bitsets[node["bitset_idx"]])
                recognized = _bits(known[f_idx_map[f]])
                lefts.append(frozenset(codes[f][c] for c in going_left if c < len(codes[f])))
                rights.append(frozenset(codes[f][c] for c in recognized - going_left if c < len(codes[f])))
            trees.append(Tree(
                feature=np.where(leaf, -1, columns[np.minimum(nodes["feature_idx"], len(columns) - 1)]),
                threshold=nodes["num_threshold"].astype(np.float64), left=nodes["left"].astype(np.int64),
                right=nodes["right"].astype(np.int64), missing_left=nodes["missing_go_to_left"].astype(bool),
                left_codes=lefts, right_codes=rights, value=nodes["value"].astype(np.float64)[:, None],
                outputs=(k,)))
    base = [float(v) for v in np.ravel(estimator._baseline_prediction)]
    link = "identity" if not hasattr(estimator, "classes_") else "logistic" if classes == 1 else "softmax"
    return Ensemble(trees, base, 1.0, link)


def _histogram_features(estimator: t.Any) -> tuple[np.ndarray, dict[int, list[int]]]:
    """For each of HistGradientBoosting's internal features, its column in sqlml's matrix; for its
    categorical ones, sqlml's category code of each internal code."""
    n = estimator.n_features_in_
    if estimator._preprocessor is None:
        return np.arange(n), {}
    categorical = np.asarray(estimator.is_categorical_, dtype=bool)
    order = np.concatenate([np.flatnonzero(categorical), np.flatnonzero(~categorical)])
    encoder = estimator._preprocessor.named_transformers_["encoder"]
    codes = {i: [int(v) for v in seen if not np.isnan(v)] for i, seen in enumerate(encoder.categories_)}
    return order, codes


def _bits(bitset: np.ndarray) -> set[int]:
    """The integers a scikit-learn bitset (uint32 words, little-endian bits) holds."""
    bits = np.unpackbits(np.asarray(bitset, dtype="<u4").view(np.uint8), bitorder="little")
    return {int(i) for i in np.flatnonzero(bits)}


def from_forest(estimator: t.Any) -> Ensemble:
    """scikit-learn's RandomForest*: the mean of the trees' leaf values (class fractions, or values)."""
    trees = [_decision_tree(member.tree_) for member in estimator.estimators_]
    return Ensemble(trees, [0.0] * trees[0].value.shape[1], float(len(trees)), "identity")


def from_gradient_boosting(estimator: t.Any) -> Ensemble:
    """scikit-learn's GradientBoosting*: the initial estimate plus learning rate × each stage's tree."""
    stages = estimator.estimators_
    trees = []
    for stage in stages:
        for k, member in enumerate(stage):
            tree = _decision_tree(member.tree_, estimator.learning_rate)
            trees.append(dataclasses.replace(tree, value=tree.value[:, :1], outputs=(k,)))
    base = estimator._raw_predict_init(np.zeros((1, estimator.n_features_in_)))[0]
    link = "identity" if not hasattr(estimator, "classes_") else "logistic" if stages.shape[1] == 1 else "softmax"
    return Ensemble(trees, [float(v) for v in base], 1.0, link)


def _decision_tree(tree: t.Any, scale: float = 1.0) -> Tree:
    """A scikit-learn ``tree_`` (which compares float32 values) with its leaf values times ``scale``."""
    leaf = tree.children_left < 0
    values = tree.value[:, 0, :].astype(np.float64)
    return Tree(
        feature=np.where(leaf, -1, tree.feature), threshold=np.array([float32_threshold(v) for v in tree.threshold]),
        left=tree.children_left.astype(np.int64), right=tree.children_right.astype(np.int64),
        missing_left=np.asarray(getattr(tree, "missing_go_to_left", np.zeros(len(leaf))), dtype=bool),
        left_codes=[None] * len(leaf), right_codes=[None] * len(leaf),
        value=values * scale if scale != 1.0 else values, outputs=tuple(range(values.shape[1])))


def from_xgboost(estimator: t.Any) -> Ensemble:
    """sqlml's boosted trees on XGBoost (:class:`sqlml.model.boosted.Trees`, or anything holding a
    ``booster``), from their exported form :func:`sqlml.model.trees.of` (XGBoost's JSON model read once).

    XGBoost compares float32 values: a row goes left when ``float32(x) < threshold``, written as
    ``x <= t`` with :func:`float32_threshold` of the float32 just below the threshold. A categorical split
    sends the categories it lists right and every other code left; NaN (a category unseen in training, a
    NULL) follows ``missing_left``. A DART booster's trees carry their dropout weights; the base margins
    are the exported ``base_score``."""
    from ..model import trees as exported

    ensemble = exported.of(estimator)
    trees = [_xgboost_tree(tree, (int(k),), float(w))
             for tree, k, w in zip(ensemble.trees, ensemble.output, ensemble.weight)]
    return Ensemble(trees, [float(v) for v in ensemble.base_score], 1.0, ensemble.link)


ALL_CODES = frozenset(range(256))  # every category code sqlml gives (at most 254 categories per column)


def _xgboost_tree(tree: t.Any, outputs: tuple[int, ...], weight: float) -> Tree:
    """An exported tree (:class:`sqlml.model.trees.Tree`) in the compiler's form."""
    numeric = ~np.isnan(tree.threshold)  # numeric splits (categorical splits and leaves hold NaN)
    below = np.nextafter(tree.threshold[numeric], np.float32(-np.inf))  # float32(x) < c ⇔ float32(x) <= c's predecessor
    threshold = np.zeros(len(tree.feature))
    threshold[numeric] = [float32_threshold(float(b)) for b in below]
    return Tree(
        feature=tree.feature, threshold=threshold, left=tree.left, right=tree.right, missing_left=tree.missing_left,
        left_codes=[None if right is None else ALL_CODES - right for right in tree.categories],
        right_codes=list(tree.categories), value=(tree.value * weight)[:, None], outputs=outputs)


def float32_threshold(threshold: float) -> float:
    """The largest double ``t`` with ``float32(x) <= threshold`` exactly when ``x <= t`` (round to nearest,
    ties to even): the midpoint above the largest float32 ``f <= threshold`` when ties round down to
    ``f`` (``f``'s last bit even), else the double just below that midpoint."""
    f = np.float32(threshold)
    if float(f) > threshold:
        f = np.nextafter(f, np.float32(-np.inf))
    above = np.nextafter(f, np.float32(np.inf))
    if np.isinf(above):
        return float(np.finfo(np.float64).max)
    midpoint = (float(f) + float(above)) / 2  # exact: float32 values have 24-bit mantissas
    even = int(np.asarray(f).view(np.uint32)) % 2 == 0
    return midpoint if even else float(np.nextafter(midpoint, -np.inf))


def ensemble_of(estimator: t.Any) -> Ensemble:
    """The neutral form of a fitted tree ensemble, by library."""
    if hasattr(estimator, "booster") and hasattr(estimator.booster, "save_raw"):
        return from_xgboost(estimator)
    if hasattr(estimator, "_predictors"):
        return from_histogram_boosting(estimator)
    if hasattr(estimator, "init_") and hasattr(estimator, "estimators_"):
        return from_gradient_boosting(estimator)
    if hasattr(estimator, "estimators_") and all(hasattr(e, "tree_") for e in estimator.estimators_):
        return from_forest(estimator)
    raise NotCompilableError(f"sqlml cannot compile trees of {type(estimator).__name__} to SQL yet.")


def compile_ensemble(program: Program, ensemble: Ensemble, inputs: Inputs, wanted: t.Sequence[int]) -> list[exp.Expr]:
    """Scores ``wanted`` of ``ensemble`` (base plus trees, before the link): one step of the distinct
    split conditions, then each score as a balanced sum of nested CASEs over them."""
    nodes = sum(len(tree.feature) for tree in ensemble.trees)
    if nodes > MAX_TREE_NODES:
        raise NotCompilableError(
            f"The model's trees have {nodes:,} nodes; sqlml compiles at most {MAX_TREE_NODES:,} to SQL (generating and "
            "planning the SQL grows with them). Train fewer or shallower trees (num_parallel_tree, max_iterations, "
            "max_tree_depth), or score with ML.PREDICT.")
    conditions = _Conditions(inputs)
    for tree in ensemble.trees:
        for i in np.flatnonzero(tree.feature >= 0):
            conditions.key(tree, int(i))
    refs = dict(zip(conditions.expressions, program.step(list(conditions.expressions.values()), "c")))
    per_output: dict[int, list[exp.Expr]] = {k: [] for k in wanted}
    for tree in ensemble.trees:
        for slot, k in enumerate(tree.outputs):
            if k in per_output:
                per_output[k].append(_nested(tree, 0, slot, lambda i: refs[conditions.key(tree, i)].copy()))
    scores = []
    for k in wanted:
        total = x.balanced_sum(per_output[k])
        if ensemble.divisor != 1.0:
            total = x.divide(total, x.number(ensemble.divisor))
        scores.append(x.plus(x.number(ensemble.base[k]), total) if ensemble.base[k] else total)
    return scores


class _Conditions:
    """The distinct split conditions of an ensemble, each a NULL-free boolean "goes left", by key."""

    def __init__(self, inputs: Inputs):
        self.inputs = inputs
        self.expressions: dict[tuple, exp.Expr] = {}

    def key(self, tree: Tree, i: int) -> tuple:
        """The condition of node ``i`` (registered with its expression the first time it is seen)."""
        c = self.inputs.columns[int(tree.feature[i])]
        if c["kind"] == "numeric":
            key: tuple = ("num", c["name"], float(tree.threshold[i]))
            if key not in self.expressions:
                self.expressions[key] = exp.LTE(this=self.inputs.numeric(c), expression=x.number(key[2]))
            return key
        left, right = _category_sides(tree, i, len(c["categories"]))
        # A category in neither set, unseen at training or NULL without a NULL category, is "missing".
        key = ("cat", c["name"], right if tree.missing_left[i] else left, bool(tree.missing_left[i]))
        if key not in self.expressions:
            test = self.inputs.member(c, key[2])
            self.expressions[key] = exp.Not(this=exp.Paren(this=test)) if key[3] else test
        return key


def _category_sides(tree: Tree, i: int, n: int) -> tuple[frozenset, frozenset]:
    """The category codes (of the ``n`` known at training) a split sends left and right; scikit-learn's
    trees split the codes as numbers."""
    everything = frozenset(range(n))
    if tree.left_codes[i] is None:
        left = frozenset(k for k in everything if k <= tree.threshold[i])
        return left, everything - left
    left = tree.left_codes[i] & everything
    return left, (everything - left if tree.right_codes[i] is None else tree.right_codes[i] & everything)


def _nested(tree: Tree, i: int, slot: int, condition: t.Callable[[int], exp.Expr]) -> exp.Expr:
    """Node ``i``'s subtree as nested CASEs over the condition columns (``condition(i)``: node i's)."""
    if tree.feature[i] < 0:
        return x.number(tree.value[i, slot])
    return x.if_(condition(i), _nested(tree, int(tree.left[i]), slot, condition),
                 _nested(tree, int(tree.right[i]), slot, condition))
