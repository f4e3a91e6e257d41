"""The fitted trees of a tree model (boosted_tree_*, random_forest_*) in a plain, documented form.

    ensemble = trees.of(model.estimator)     # a model trained since sqlml moved to XGBoost

What the model computes from a row's encoded features ``x`` (the preprocessor's columns, in order:
numbers with NULL replaced by the training mean, not standardized; category columns as the index of
the category in the column's ``categories``, NaN for a category not seen in training)::

    margin[k] = base_score[k] + Σ over the trees t with output[t] == k of weight[t] · leaf value of t at x
    regressor:   prediction = margin[0]
    binary:      P(second class) = 1 / (1 + exp(−margin[0]))
    multiclass:  P(class k) = softmax(margin)[k]

Each :class:`Tree` is a set of arrays indexed by node (node 0 is the root):

============  =============================================================================
feature       the encoded feature split on; −1 at a leaf
threshold     numeric split: ``x[feature] < threshold`` goes to ``left``, else ``right``; NaN elsewhere
left, right   the children; −1 at a leaf
missing_left  where a missing value (NaN) goes: ``left`` if true, else ``right``
categories    categorical split: the category codes that go to ``right`` (the others, present or
              not in training, go ``left``); None at numeric splits and leaves
value         the leaf's value (0 at inner nodes)
============  =============================================================================

Thresholds are float32 (XGBoost compares in float32: cast ``x`` to float32 before comparing).
``weight`` is 1 except for DART boosters, whose trees carry their dropout weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tree:
    feature: np.ndarray  # int64
    threshold: np.ndarray  # float32
    left: np.ndarray  # int64
    right: np.ndarray  # int64
    missing_left: np.ndarray  # bool
    categories: list[frozenset[int] | None]
    value: np.ndarray  # float64


@dataclass(frozen=True)
class Ensemble:
    trees: list[Tree]
    output: np.ndarray  # per tree: the margin (class) it adds to
    weight: np.ndarray  # per tree: its leaf values' factor
    base_score: np.ndarray  # per margin, in margin space
    link: str  # "identity" (regressor), "logistic" (binary) or "softmax" (multiclass)


LINKS = {"reg:squarederror": "identity", "binary:logistic": "logistic", "multi:softprob": "softmax"}


def of(estimator) -> Ensemble:
    """The trees of an XGBoost tree model (:class:`sqlml.model.boosted.Trees`)."""
    model = json.loads(bytes(estimator.booster.save_raw("json")))["learner"]
    booster = model["gradient_booster"]
    dart = booster["name"] == "dart"
    forest = (booster["gbtree"] if dart else booster)["model"]
    trees = [_tree(tree) for tree in forest["trees"]]
    weight = np.asarray(booster["weight_drop"], dtype=np.float64) if dart else np.ones(len(trees))
    link = LINKS[model["objective"]["name"]]
    base = np.asarray(json.loads(model["learner_model_param"]["base_score"]), dtype=np.float64).ravel()
    if link == "logistic":  # XGBoost keeps a logistic model's base score as a probability
        base = np.log(base / (1.0 - base))
    return Ensemble(trees, np.asarray(forest["tree_info"], dtype=np.int64), weight, base, link)


def _tree(tree: dict) -> Tree:
    left = np.asarray(tree["left_children"], dtype=np.int64)
    leaf = left == -1
    categories: list[frozenset[int] | None] = [None] * len(left)
    for node, start, size in zip(tree["categories_nodes"], tree["categories_segments"], tree["categories_sizes"]):
        categories[node] = frozenset(int(c) for c in tree["categories"][start:start + size])
    conditions = np.asarray(tree["split_conditions"], dtype=np.float32)  # a leaf's value at a leaf
    categorical = np.asarray(tree["split_type"], dtype=bool)
    return Tree(feature=np.where(leaf, -1, np.asarray(tree["split_indices"], dtype=np.int64)),
                threshold=np.where(leaf | categorical, np.float32(np.nan), conditions),
                left=left, right=np.asarray(tree["right_children"], dtype=np.int64),
                missing_left=np.asarray(tree["default_left"], dtype=bool) & ~leaf,
                categories=categories, value=np.where(leaf, conditions, 0).astype(np.float64))
