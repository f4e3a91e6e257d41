"""Model kinds: one row per ``model_type``, mapping BigQuery ML options onto scikit-learn and XGBoost.

The mapping (documented in README, "Model types and options"):

=========================  ==============================  =========================================
model_type                 estimator                       options → parameters
=========================  ==============================  =========================================
linear_reg                 LinearRegression / Ridge /      l2_reg → Ridge(alpha); l1_reg → ElasticNet
                           ElasticNet                      (alpha = l1+l2, l1_ratio = l1/(l1+l2))
logistic_reg               LogisticRegression (lbfgs;      l2_reg → C = 1/l2_reg (default 1: C = 1; no
                           saga when l1_reg > 0)           penalty when 0); l1_reg → l1_ratio; max_iterations
                                                           → max_iter; early_stop, min_rel_progress
boosted_tree_*             XGBoost (sqlml.model.boosted)   max_iterations → boosting rounds; the others
                                                           are XGBoost's parameters (boosted.PARAMETERS);
                                                           early_stop, min_rel_progress
random_forest_*            RandomForest*                   num_parallel_tree → n_estimators,
                                                           max_tree_depth → max_depth
dnn_*                      MLP*                            hidden_units → hidden_layer_sizes, l2_reg →
                                                           alpha, learn_rate → learning_rate_init,
                                                           max_iterations → max_iter, early_stop
kmeans                     KMeans                          num_clusters → n_clusters, max_iterations
pca                        PCA                             num_principal_components or
                                                           pca_explained_variance_ratio → n_components,
                                                           pca_solver → svd_solver, scale_features
autoencoder                MLPRegressor fitted to          hidden_units, activation_fn, optimizer,
                           reconstruct its input           batch_size, learn_rate, l2_reg, max_iterations
matrix_factorization       ALS (sqlml.train.als; implicit  num_factors, l2_reg, wals_alpha, max_iterations,
                           feedback: the implicit library) early_stop, min_rel_progress
arima_plus(_xreg)          statsforecast, per series       BigQuery's time series options
                           (sqlml.train.arima)             (sqlml.model.arima_options)
=========================  ==============================  =========================================

``random_seed`` becomes ``random_state`` (XGBoost's ``seed``) everywhere. BigQuery's other documented
options map through :data:`BIGQUERY_PARAMS` where scikit-learn has the parameter (which values are
refused, and why, is in :mod:`sqlml.model.bigquery_options`); given options only, the others keep
scikit-learn's defaults. Boosted trees take BigQuery's defaults for every option.

Everything a model type decides is on its :class:`ModelKind` in :data:`MODEL_KINDS`: which options
it takes (:mod:`sqlml.model.options` derives their applicability from it), their defaults, how it is
encoded, scored, explained and searched by ``model_type = 'auto'``. A new model type is one entry.
scikit-learn and XGBoost are imported by ``build`` only: importing this module stays cheap.
"""

from __future__ import annotations

import importlib
import typing as t
from dataclasses import dataclass, field

CLASSIFICATION, REGRESSION, CLUSTERING = "classification", "regression", "clustering"
#: Unsupervised kinds that map rows to fewer columns and back (PCA, autoencoder), and recommenders.
REDUCTION, RECOMMENDATION = "dimensionality_reduction", "recommendation"
UNSUPERVISED = (CLUSTERING, REDUCTION)
LINEAR, BOOSTED, FOREST, DNN, KMEANS = "linear", "boosted", "forest", "dnn", "kmeans"  # families
PCA, AUTOENCODER, MATRIX_FACTORIZATION = "pca", "autoencoder", "matrix_factorization"
FORECASTING = "forecasting"
ARIMA = "arima"  # trained by its own trainer (sqlml.train.families), not from a feature matrix
#: How a family is explained (sqlml.model.explain): exactly from its coefficients, exact Tree SHAP,
#: integrated gradients (a network's gradients, as BigQuery explains DNNs), or sampled (shap's
#: PermutationExplainer against background rows).
EXACT_LINEAR, TREE_SHAP, INTEGRATED_GRADIENTS, SAMPLED = "exact_linear", "tree_shap", "integrated_gradients", "sampled"


@dataclass(frozen=True)
class ModelKind:
    """What sqlml needs to know about a model type to train, store, score, explain and tune it."""

    name: str
    task: str
    build: t.Callable[[dict], t.Any]  # options with defaults filled in → an unfitted estimator
    family: str
    options: tuple[str, ...]  # the model options it takes beyond those every type takes
    #: Values of options not given. model_type = 'auto' trials report these as their hyperparameters.
    defaults: dict
    encoding: str  # "onehot" (BigQuery's default) or "ordinal" (trees: one feature per column)
    standardize: bool
    explainer: str
    #: model_type = 'auto': the search space once the type has run with its defaults.
    search_space: dict = field(default_factory=dict)
    #: l1_reg / l2_reg when not given; not reported as 'auto' hyperparameters (0 means no penalty).
    penalties: dict = field(default_factory=dict)
    #: Linear models on one-hot features score without building the one-hot matrix.
    scores_linearly: bool = False
    scale_target: bool = False  # gradient-trained regressors learn badly on labels in the thousands
    #: The feature matrix's layout: "C" (row-major) where the estimator would otherwise copy to it
    #: (lbfgs, k-means) or reads rows (MLP mini-batches, XGBoost's blocks); "F" where it reads column by
    #: column (forests' trees, coordinate descent). A matching layout saves a copy of the whole matrix.
    matrix_order: str = "F"
    #: The matrix's dtype: float32 where the estimator fits in float32 anyway (scikit-learn's trees of a
    #: forest), so it does not copy a float64 matrix into one; the values are the same.
    matrix_dtype: str = "float64"
    #: Fit on a CSR matrix when one-hot columns make the matrix mostly zeros (see
    #: :meth:`~sqlml.preprocess.Preprocessor.sparse_pays`): lbfgs then reads ~3× fewer bytes per pass.
    #: Only where the solver is the same on sparse input (not LinearRegression's lstsq → lsqr switch).
    sparse_fit: bool = False
    #: Trained in blocks of iterations that stop on too little relative progress (early_stop,
    #: min_rel_progress; :mod:`sqlml.train.stopping`) rather than in one call to ``fit``.
    stops_early: bool = False
    #: Options the fit decides and the version records (PCA's component count, when a variance ratio chose it).
    fitted_options: t.Callable[[t.Any], dict] = lambda estimator: {}

    @property
    def supervised(self) -> bool:
        """Learns a label column named by input_label_cols (matrix factorization names its rating_col)."""
        return self.task not in UNSUPERVISED and self.task != RECOMMENDATION

    @property
    def reconstructs(self) -> bool:
        """Fitted to reproduce its input (an autoencoder learns X → X)."""
        return self.family == AUTOENCODER

    @property
    def trees(self) -> bool:
        """Boosted trees and random forests: split gains to report (ML.FEATURE_IMPORTANCE)."""
        return self.family in (BOOSTED, FOREST)

    @property
    def xgboost(self) -> bool:
        """Boosted trees, fitted by XGBoost (:mod:`sqlml.model.boosted`) from the rows a block at a time."""
        return self.family == BOOSTED

    def default(self, name: str) -> t.Any:
        """The value option ``name`` takes when it is not given; None if the kind does not take it."""
        return {**self.penalties, **self.defaults}.get(name)


def _sklearn(path: str) -> type:
    """A scikit-learn estimator class by ``module.Class``, imported when a model is first built."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(f"sklearn.{module}"), name)


def _min_samples_leaf(weight: int) -> int:
    return max(1, weight)  # XGBoost's hessian weight per child is its row count under squared loss


def _max_samples(fraction: float) -> float | None:
    return None if fraction == 1.0 else fraction


#: BigQuery option → (scikit-learn parameter, value conversion), per family, for the options given.
#: Boosted trees' options are XGBoost's parameters: sqlml.model.boosted.PARAMETERS.
BIGQUERY_PARAMS: dict[str, dict[str, tuple[str, t.Callable]]] = {
    LINEAR: {"fit_intercept": ("fit_intercept", bool)},
    FOREST: {"colsample_bynode": ("max_features", float), "min_tree_child_weight": ("min_samples_leaf", _min_samples_leaf),
             "subsample": ("max_samples", _max_samples)},
    DNN: {"activation_fn": ("activation", {"RELU": "relu", "SIGMOID": "logistic", "TANH": "tanh"}.get),
          "optimizer": ("solver", str.lower), "batch_size": ("batch_size", int)},
    # kmeans_init_method = 'CUSTOM' takes its centroids from the data (sqlml.train.centroids)
    KMEANS: {"kmeans_init_method": ("init", {"RANDOM": "random", "KMEANS++": "k-means++", "CUSTOM": "k-means++"}.get),
             "early_stop": ("tol", lambda stop: 1e-4 if stop else 0.0)},
}
BIGQUERY_PARAMS[AUTOENCODER] = BIGQUERY_PARAMS[DNN]


def _mapped(family: str, o: dict) -> dict:
    return {param: convert(o[name]) for name, (param, convert) in BIGQUERY_PARAMS[family].items() if name in o}


def _linear_reg(o: dict):
    l1, l2, mapped = o["l1_reg"], o["l2_reg"], _mapped(LINEAR, o)
    if l1 > 0:
        return _sklearn("linear_model.ElasticNet")(alpha=l1 + l2, l1_ratio=l1 / (l1 + l2), max_iter=o["max_iterations"],
                                                   random_state=o.get("random_seed"), **mapped)
    return _sklearn("linear_model.Ridge")(alpha=l2, **mapped) if l2 > 0 else _sklearn("linear_model.LinearRegression")(**mapped)


def _logistic_reg(o: dict):
    l1, l2 = o["l1_reg"], o["l2_reg"]
    strength = l1 + l2
    return _sklearn("linear_model.LogisticRegression")(
        C=1.0 / strength if strength > 0 else float("inf"),
        l1_ratio=l1 / strength if strength > 0 else 0.0,
        solver="saga" if l1 > 0 else "lbfgs",
        max_iter=o["max_iterations"],
        random_state=o.get("random_seed"),
        **_mapped(LINEAR, o),
    )


def _boosted(classifier: bool):
    def build(o: dict):
        from .boosted import Trees, parameters  # imports xgboost, which takes seconds
        return Trees(parameters(o), o["max_iterations"], classifier, o["early_stop"], o["min_rel_progress"])
    return build


def _forest(estimator: str):
    def build(o: dict):
        return _sklearn(f"ensemble.{estimator}")(n_estimators=o["num_parallel_tree"], max_depth=o["max_tree_depth"],
                                                 random_state=o.get("random_seed"), n_jobs=-1, **_mapped(FOREST, o))
    return build


def _dnn(estimator: str):
    def build(o: dict):
        return _sklearn(f"neural_network.{estimator}")(
            hidden_layer_sizes=tuple(o["hidden_units"]),
            alpha=o["l2_reg"],
            learning_rate_init=o["learn_rate"],
            max_iter=o["max_iterations"],
            early_stopping=o["early_stop"],
            random_state=o.get("random_seed"),
            **_mapped(DNN, o),
        )
    return build


def _kmeans(o: dict):
    return _sklearn("cluster.KMeans")(n_clusters=o["num_clusters"], max_iter=o["max_iterations"], n_init="auto",
                                      random_state=o.get("random_seed"), **_mapped(KMEANS, o))


def _pca(o: dict):
    components = o.get("num_principal_components", o.get("pca_explained_variance_ratio"))
    return _sklearn("decomposition.PCA")(n_components=components, svd_solver=o["pca_solver"].lower(),
                                         random_state=o.get("random_seed"))


def _autoencoder(o: dict):
    """An MLP fitted to reproduce its input (sqlml.train.fit fits it on X → X); the latent columns are the
    activations of its narrowest hidden layer (sqlml.model.loaded)."""
    return _sklearn("neural_network.MLPRegressor")(
        hidden_layer_sizes=tuple(o["hidden_units"]), alpha=o["l2_reg"], learning_rate_init=o["learn_rate"],
        max_iter=o["max_iterations"], early_stopping=o["early_stop"], random_state=o.get("random_seed"),
        **_mapped(AUTOENCODER, o))


def _own_trainer(o: dict):
    raise RuntimeError("matrix factorization and ARIMA models are trained by sqlml.train.families, "
                       "not built as an estimator")


def _ranges(**ranges: list) -> dict:
    return {name: {"function": "HPARAM_RANGE", "args": bounds} for name, bounds in ranges.items()}


def _candidates(**candidates: list) -> dict:
    return {name: {"function": "HPARAM_CANDIDATES", "args": [values]} for name, values in candidates.items()}


#: What the types of a family share (each entry of MODEL_KINDS adds its name, task and estimator).
_LINEAR = {"family": LINEAR, "options": ("l1_reg", "l2_reg", "max_iterations", "early_stop", "min_rel_progress"),
           "defaults": {"max_iterations": 1000, "early_stop": False, "min_rel_progress": 0.01},
           "penalties": {"l1_reg": 0.0, "l2_reg": 0.0}, "encoding": "onehot",
           "standardize": True, "explainer": EXACT_LINEAR, "search_space": _ranges(l2_reg=[1e-4, 10.0]),
           "scores_linearly": True}
#: Logistic regression defaults to scikit-learn's default pipeline: C = 1 on standardized features
#: (l2_reg = 1), fitted to convergence. BigQuery defaults to no penalty and regularizes by stopping early
#: instead; early_stop = TRUE (with min_rel_progress) stops the same way here. Without either, lbfgs runs
#: to a fit that separates the training rows and is overconfident on new ones.
_LOGISTIC = {**_LINEAR, "penalties": {"l1_reg": 0.0, "l2_reg": 1.0}, "matrix_order": "C", "sparse_fit": True, "stops_early": True}
#: BigQuery's defaults, which are XGBoost's except tree_method (XGBoost's 'auto' is its histogram method).
_BOOSTED = {"family": BOOSTED, "options": ("l1_reg", "l2_reg", "max_iterations", "learn_rate", "early_stop",
                                           "min_rel_progress", "max_tree_depth", "num_parallel_tree", "booster_type",
                                           "dart_normalize_type", "tree_method", "min_tree_child_weight", "subsample",
                                           "colsample_bytree", "colsample_bylevel", "colsample_bynode",
                                           "min_split_loss", "dropout"),
            "defaults": {"max_iterations": 20, "max_tree_depth": 6, "learn_rate": 0.3, "l2_reg": 1.0, "early_stop": True,
                         "min_rel_progress": 0.01, "num_parallel_tree": 1, "booster_type": "GBTREE",
                         "dart_normalize_type": "TREE", "tree_method": "AUTO", "min_tree_child_weight": 1,
                         "subsample": 1.0, "colsample_bytree": 1.0, "colsample_bylevel": 1.0, "colsample_bynode": 1.0,
                         "min_split_loss": 0.0, "dropout": 0.0},
            "penalties": {"l1_reg": 0.0}, "encoding": "ordinal", "standardize": False, "explainer": TREE_SHAP,
            "matrix_order": "C",
            "search_space": _ranges(learn_rate=[0.02, 0.5], max_tree_depth=[2, 8], l2_reg=[1e-3, 10.0])}
#: scikit-learn's random forests, kept: XGBoost's forest with BigQuery's defaults was less accurate on the
#: flights (ROC AUC 0.920 against 0.929, RMSE 18.6 against 16.4) and slower to score (benchmarks/boosted.py).
_FOREST = {"family": FOREST, "options": ("max_tree_depth", "num_parallel_tree"),
           "defaults": {"num_parallel_tree": 100, "max_tree_depth": 20}, "encoding": "ordinal", "standardize": False,
           "explainer": TREE_SHAP, "matrix_dtype": "float32", "search_space": _ranges(max_tree_depth=[2, 20], num_parallel_tree=[20, 200])}
_DNN = {"family": DNN, "options": ("l1_reg", "l2_reg", "max_iterations", "learn_rate", "early_stop", "hidden_units"),
        "defaults": {"hidden_units": [100], "learn_rate": 0.01, "max_iterations": 200, "early_stop": True},
        "penalties": {"l1_reg": 0.0, "l2_reg": 0.0001}, "encoding": "onehot", "standardize": True,
        "explainer": INTEGRATED_GRADIENTS,
        "search_space": {**_ranges(l2_reg=[1e-5, 0.1], learn_rate=[1e-3, 0.1]),
                         **_candidates(hidden_units=[[32], [64], [128], [64, 32]])},
        "matrix_order": "C"}
#: BigQuery's default search space for num_trials: num_clusters over its whole range.
_KMEANS = {"family": KMEANS, "options": ("max_iterations", "num_clusters"),
           "defaults": {"num_clusters": 4, "max_iterations": 20}, "encoding": "onehot", "standardize": True,
           "explainer": SAMPLED, "matrix_order": "C", "search_space": _ranges(num_clusters=[2, 100])}
_PCA = {"family": PCA, "options": ("num_principal_components", "pca_explained_variance_ratio", "scale_features",
                                   "pca_solver"),
        "defaults": {"scale_features": True, "pca_solver": "AUTO"}, "encoding": "onehot", "standardize": True,
        "explainer": SAMPLED, "matrix_order": "C",
        "fitted_options": lambda pca: {"num_principal_components": int(pca.n_components_)}}
#: BigQuery's autoencoder defaults, except max_iterations: 200 as sqlml's DNN models (scikit-learn's
#: MLP counts epochs; 20 leave a small table's network far from trained).
_AUTOENCODER = {"family": AUTOENCODER, "options": ("hidden_units", "learn_rate", "l2_reg", "max_iterations",
                                                   "early_stop"),
                "defaults": {"hidden_units": [64, 8, 64], "learn_rate": 0.001, "max_iterations": 200,
                             "early_stop": True},
                "penalties": {"l2_reg": 0.0}, "encoding": "onehot", "standardize": True, "explainer": SAMPLED,
                "matrix_order": "C"}
#: BigQuery's defaults; num_factors' is not a fixed number (sqlml.train.families.default_factors).
_FACTORIZATION = {"family": MATRIX_FACTORIZATION,
                  "options": ("feedback_type", "num_factors", "user_col", "item_col", "rating_col", "wals_alpha",
                              "l2_reg", "max_iterations", "early_stop", "min_rel_progress"),
                  "defaults": {"feedback_type": "EXPLICIT", "user_col": "user", "item_col": "item",
                               "rating_col": "rating", "wals_alpha": 40.0, "max_iterations": 20, "early_stop": True,
                               "min_rel_progress": 0.01},
                  "penalties": {"l2_reg": 1.0}, "encoding": "onehot", "standardize": False, "explainer": SAMPLED,
                  "search_space": _ranges(num_factors=[2, 64], l2_reg=[0.01, 20.0])}


#: ARIMA_PLUS(_XREG): their options are sqlml.model.arima_options' (scope 'forecasters').
_ARIMA = {"family": ARIMA, "options": (), "defaults": {}, "encoding": "none", "standardize": False, "explainer": "none"}

#: Every model type, cheapest first within a task (model_type = 'auto' tries them in this order).
MODEL_KINDS: dict[str, ModelKind] = {
    kind.name: kind
    for kind in (
        ModelKind("linear_reg", REGRESSION, _linear_reg, **_LINEAR),
        ModelKind("logistic_reg", CLASSIFICATION, _logistic_reg, **_LOGISTIC),
        ModelKind("boosted_tree_classifier", CLASSIFICATION, _boosted(True), **_BOOSTED),
        ModelKind("boosted_tree_regressor", REGRESSION, _boosted(False), **_BOOSTED),
        ModelKind("random_forest_classifier", CLASSIFICATION, _forest("RandomForestClassifier"), **_FOREST),
        ModelKind("random_forest_regressor", REGRESSION, _forest("RandomForestRegressor"), **_FOREST),
        ModelKind("dnn_classifier", CLASSIFICATION, _dnn("MLPClassifier"), **_DNN),
        ModelKind("dnn_regressor", REGRESSION, _dnn("MLPRegressor"), **_DNN, scale_target=True),
        ModelKind("kmeans", CLUSTERING, _kmeans, **_KMEANS),
        ModelKind("pca", REDUCTION, _pca, **_PCA),
        ModelKind("autoencoder", REDUCTION, _autoencoder, **_AUTOENCODER),
        ModelKind("matrix_factorization", RECOMMENDATION, _own_trainer, **_FACTORIZATION),
        ModelKind("arima_plus", FORECASTING, _own_trainer, **_ARIMA),
        ModelKind("arima_plus_xreg", FORECASTING, _own_trainer, **_ARIMA),
    )
}


def build_estimator(kind: ModelKind, options: dict):
    """A fresh, unfitted scikit-learn estimator for ``kind`` configured from validated options."""
    return kind.build({**kind.penalties, **kind.defaults, **options})


def default_value(model_type: str, name: str) -> t.Any:
    """The value an option takes when it is not given (what an untuned model uses)."""
    return MODEL_KINDS[model_type].default(name)


def kinds_of(task: str) -> tuple[str, ...]:
    """The model types of a task, cheapest first."""
    return tuple(kind.name for kind in MODEL_KINDS.values() if kind.task == task)
