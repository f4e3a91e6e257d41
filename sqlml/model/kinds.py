"""Model kinds: one row per ``model_type``, mapping BigQuery ML options onto scikit-learn.

The mapping (documented in README, "Model types and options"):

=========================  ==============================  =========================================
model_type                 scikit-learn estimator          options → parameters
=========================  ==============================  =========================================
linear_reg                 LinearRegression / Ridge /      l2_reg → Ridge(alpha); l1_reg → ElasticNet
                           ElasticNet                      (alpha = l1+l2, l1_ratio = l1/(l1+l2))
logistic_reg               LogisticRegression (lbfgs;      l2_reg → C = 1/l2_reg (no penalty when 0);
                           saga when l1_reg > 0)           l1_reg → l1_ratio; max_iterations → max_iter
boosted_tree_*             HistGradientBoosting*           max_iterations → max_iter, max_tree_depth →
                                                           max_depth, learn_rate → learning_rate,
                                                           l2_reg → l2_regularization, early_stop →
                                                           early_stopping
random_forest_*            RandomForest*                   num_parallel_tree → n_estimators,
                                                           max_tree_depth → max_depth
dnn_*                      MLP*                            hidden_units → hidden_layer_sizes, l2_reg →
                                                           alpha, learn_rate → learning_rate_init,
                                                           max_iterations → max_iter, early_stop
kmeans                     KMeans                          num_clusters → n_clusters, max_iterations
=========================  ==============================  =========================================

``random_seed`` becomes ``random_state`` everywhere.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from sklearn.cluster import KMeans
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import ElasticNet, LinearRegression, LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier, MLPRegressor

CLASSIFICATION, REGRESSION, CLUSTERING = "classification", "regression", "clustering"


@dataclass(frozen=True)
class ModelKind:
    """What sqlml needs to know about a model type to train, store and score it."""

    name: str
    task: str
    build: t.Callable[[dict], t.Any]
    encoding: str  # "onehot" (BigQuery's default) or "ordinal" (trees: one feature per column)
    standardize: bool
    defaults: dict
    scale_target: bool = False  # gradient-trained regressors learn badly on labels in the thousands
    #: The feature matrix's layout: "C" (row-major) where the estimator would otherwise copy to it
    #: (lbfgs, k-means) or reads rows (MLP mini-batches); "F" where it reads column by column (trees,
    #: coordinate descent). A matching layout saves a copy of the whole matrix at fit time.
    matrix_order: str = "F"
    #: Fit on a CSR matrix when one-hot columns make the matrix mostly zeros (see
    #: :meth:`~sqlml.preprocess.Preprocessor.sparse_pays`): lbfgs then reads ~3× fewer bytes per pass.
    #: Only where the solver is the same on sparse input (not LinearRegression's lstsq → lsqr switch).
    sparse_fit: bool = False

    @property
    def supervised(self) -> bool:
        return self.task != CLUSTERING


def _linear_reg(o: dict):
    l1, l2 = o.get("l1_reg", 0.0), o.get("l2_reg", 0.0)
    if l1 > 0:
        return ElasticNet(alpha=l1 + l2, l1_ratio=l1 / (l1 + l2), max_iter=o["max_iterations"],
                          random_state=o.get("random_seed"))
    return Ridge(alpha=l2) if l2 > 0 else LinearRegression()


def _logistic_reg(o: dict):
    l1, l2 = o.get("l1_reg", 0.0), o.get("l2_reg", 0.0)
    strength = l1 + l2
    return LogisticRegression(
        C=1.0 / strength if strength > 0 else float("inf"),
        l1_ratio=l1 / strength if strength > 0 else 0.0,
        solver="saga" if l1 > 0 else "lbfgs",
        max_iter=o["max_iterations"],
        random_state=o.get("random_seed"),
    )


def _boosted(cls):
    def build(o: dict):
        return cls(
            max_iter=o["max_iterations"],
            max_depth=o["max_tree_depth"],
            learning_rate=o["learn_rate"],
            l2_regularization=o["l2_reg"],
            early_stopping=o["early_stop"],
            random_state=o.get("random_seed"),
        )
    return build


def _forest(cls):
    def build(o: dict):
        return cls(n_estimators=o["num_parallel_tree"], max_depth=o["max_tree_depth"],
                   random_state=o.get("random_seed"), n_jobs=-1)
    return build


def _dnn(cls):
    def build(o: dict):
        return cls(
            hidden_layer_sizes=tuple(o["hidden_units"]),
            alpha=o.get("l2_reg", 0.0001),
            learning_rate_init=o["learn_rate"],
            max_iter=o["max_iterations"],
            early_stopping=o["early_stop"],
            random_state=o.get("random_seed"),
        )
    return build


def _kmeans(o: dict):
    return KMeans(n_clusters=o["num_clusters"], max_iter=o["max_iterations"], n_init="auto",
                  random_state=o.get("random_seed"))


_BOOSTED_DEFAULTS = {"max_iterations": 20, "max_tree_depth": 6, "learn_rate": 0.3, "l2_reg": 1.0, "early_stop": True}
_FOREST_DEFAULTS = {"num_parallel_tree": 100, "max_tree_depth": 20}
_DNN_DEFAULTS = {"hidden_units": [100], "learn_rate": 0.01, "max_iterations": 200, "early_stop": True}
MODEL_KINDS: dict[str, ModelKind] = {
    kind.name: kind
    for kind in (
        ModelKind("linear_reg", REGRESSION, _linear_reg, "onehot", True, {"max_iterations": 1000}),
        ModelKind("logistic_reg", CLASSIFICATION, _logistic_reg, "onehot", True, {"max_iterations": 1000},
                  matrix_order="C", sparse_fit=True),
        ModelKind("boosted_tree_classifier", CLASSIFICATION, _boosted(HistGradientBoostingClassifier),
                  "ordinal", False, _BOOSTED_DEFAULTS),
        ModelKind("boosted_tree_regressor", REGRESSION, _boosted(HistGradientBoostingRegressor),
                  "ordinal", False, _BOOSTED_DEFAULTS),
        ModelKind("random_forest_classifier", CLASSIFICATION, _forest(RandomForestClassifier),
                  "ordinal", False, _FOREST_DEFAULTS),
        ModelKind("random_forest_regressor", REGRESSION, _forest(RandomForestRegressor),
                  "ordinal", False, _FOREST_DEFAULTS),
        ModelKind("dnn_classifier", CLASSIFICATION, _dnn(MLPClassifier), "onehot", True, _DNN_DEFAULTS, matrix_order="C"),
        ModelKind("dnn_regressor", REGRESSION, _dnn(MLPRegressor), "onehot", True, _DNN_DEFAULTS, scale_target=True,
                  matrix_order="C"),
        ModelKind("kmeans", CLUSTERING, _kmeans, "onehot", True, {"num_clusters": 4, "max_iterations": 20},
                  matrix_order="C"),
    )
}


def build_estimator(kind: ModelKind, options: dict):
    """A fresh, unfitted scikit-learn estimator for ``kind`` configured from validated options."""
    return kind.build({**kind.defaults, **options})


_LINEAR_SPACE = {"l2_reg": [1e-4, 10.0]}
_BOOSTED_SPACE = {"learn_rate": [0.02, 0.5], "max_tree_depth": [2, 8], "l2_reg": [1e-3, 10.0]}
_FOREST_SPACE = {"max_tree_depth": [2, 20], "num_parallel_tree": [20, 200]}
_DNN_SPACE = {"l2_reg": [1e-5, 0.1], "learn_rate": [1e-3, 0.1], "hidden_units": [[[32], [64], [128], [64, 32]]]}
AUTO_SPACES = {name: {k: {"function": "HPARAM_CANDIDATES" if k == "hidden_units" else "HPARAM_RANGE", "args": v}
                      for k, v in space.items()}
               for names, space in ((("linear_reg", "logistic_reg"), _LINEAR_SPACE),
                                    (("boosted_tree_classifier", "boosted_tree_regressor"), _BOOSTED_SPACE),
                                    (("random_forest_classifier", "random_forest_regressor"), _FOREST_SPACE),
                                    (("dnn_classifier", "dnn_regressor"), _DNN_SPACE))
               for name in names}


def default_value(model_type: str, name: str) -> t.Any:
    """The value an option takes when it is not given (what an untuned model uses)."""
    kind = MODEL_KINDS[model_type]
    if name in kind.defaults:
        return kind.defaults[name]
    return {"l1_reg": 0.0, "l2_reg": 0.0001 if model_type.startswith("dnn") else 0.0}.get(name)
