"""The CREATE MODEL options BigQuery ML's reference documents, per model type, and what sqlml does with each.

sqlml's own table (:data:`sqlml.model.options.OPTIONS`) declares every option once; the options here
are BigQuery's beyond the ones every kind already took. For each, :data:`RULES` says which model
types take it and at which values: any value (honoured through a scikit-learn parameter in
:mod:`sqlml.model.kinds` or an XGBoost one in :mod:`sqlml.model.boosted`, or a no-op where it changes
nothing sqlml computes), or only the value that
changes nothing, the others refused with why (docs/bigquery.md has the table). Pages: the reference
pages ``bigqueryml-syntax-create-{glm,boosted-tree,random-forest,dnn-models,kmeans,pca,autoencoder,
matrix-factorization}``. Also ALTER MODEL's
``labels`` and ``expiration_timestamp`` (``bigqueryml-syntax-alter-model``), and the expiration rule.
"""

from __future__ import annotations

import datetime as dt
import re
import typing as t
import zoneinfo
from dataclasses import dataclass

from ..errors import ModelExpiredError, OptionError
from .kinds import AUTOENCODER, BOOSTED, DNN, FOREST, KMEANS, LINEAR, MODEL_KINDS

EVERY = "every"  # a rule for every model type


@dataclass(frozen=True)
class Rule:
    """Which values of a BigQuery option sqlml can honour for a model type; ``accepted`` None: any."""

    accepted: tuple | None = None
    why: str = ""  # why the other values cannot be honoured

    def refusal(self, value: t.Any) -> str | None:
        return None if self.accepted is None or value in self.accepted else self.why


def labels(value: t.Any) -> dict | None:
    """an array of STRUCT(key, value) strings: [('team', 'ml')]"""
    pairs = value if isinstance(value, list) else None
    if not pairs or not all(isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p) for p in pairs):
        return None
    return {key: text for key, text in pairs}


_MOMENT = re.compile(r"(?P<moment>.*?\d)\s*(?:UTC|Z|(?P<zone>[A-Za-z_]+/[A-Za-z_/]+))?")


def timestamp(value: t.Any) -> str | None:
    """a TIMESTAMP literal: TIMESTAMP '2027-01-01 00:00:00 UTC'"""
    match = _MOMENT.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        return _out_of_range(value) if isinstance(value, str) and "infinity" in value.lower() else None
    try:
        moment = dt.datetime.fromisoformat(match["moment"])
        zone = zoneinfo.ZoneInfo(match["zone"]) if match["zone"] else dt.timezone.utc  # BigQuery's default: UTC
        return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).astimezone(dt.timezone.utc).isoformat()
    except OverflowError:  # 9999-12-31 23:00 in a zone west of UTC is in the year 10000 there
        return _out_of_range(value)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        return _out_of_range(value) if re.match(r"\s*[+-]?\d{5,}-", match["moment"]) else None


def _out_of_range(value: str) -> t.NoReturn:
    raise OptionError(f"The 'expiration_timestamp' option must be a moment from 0001-01-01 to 9999-12-31 UTC (BigQuery's "
                      f"TIMESTAMP range); got {value!r}. For a model that never expires, leave the option out.")


def refuse_expired(name: str, version: int, options: dict) -> None:
    """Serve no version past its expiration_timestamp: BigQuery deletes a model then; sqlml keeps it
    (DROP MODEL deletes it, a later expiration_timestamp serves it again)."""
    expires = options.get("expiration_timestamp")
    if expires and dt.datetime.fromisoformat(expires) <= dt.datetime.now(dt.timezone.utc):
        raise ModelExpiredError(expiry_message(name, version, expires))


def expiry_message(name: str, version: int, expires: str) -> str:
    """Why version ``version`` is not served (also what a compiled view says when it expires)."""
    return (f"Model '{name}' version {version} expired at {expires} (its expiration_timestamp); BigQuery would have "
            "deleted it. Drop it with DROP MODEL, or serve it again with a later expiration: ALTER MODEL "
            f"{name} SET OPTIONS (expiration_timestamp = TIMESTAMP '2030-01-01 00:00:00 UTC').")


#: Declarations of the options new to sqlml's table, as keyword arguments of ``Option``.
SPECS: dict[str, dict] = {
    "labels": {"kind": labels, "scope": "all"},  # ALTER MODEL … SET OPTIONS, like description
    "expiration_timestamp": {"kind": timestamp, "scope": "all"},
    "optimize_strategy": {"kind": str, "choices": ("AUTO_STRATEGY", "BATCH_GRADIENT_DESCENT", "NORMAL_EQUATION")},
    "learn_rate_strategy": {"kind": str, "choices": ("LINE_SEARCH", "CONSTANT")},
    "ls_init_learn_rate": {"kind": float, "low": 0.0, "high": 10.0, "low_open": True},
    "calculate_p_values": {"kind": bool},
    "fit_intercept": {"kind": bool},
    "category_encoding_method": {"kind": str, "choices": ("ONE_HOT_ENCODING", "DUMMY_ENCODING", "LABEL_ENCODING",
                                                          "TARGET_ENCODING")},
    "warm_start": {"kind": bool},
    "enable_global_explain": {"kind": bool, "scope": "all"},
    "approx_global_feature_contrib": {"kind": bool},
    "booster_type": {"kind": str, "choices": ("GBTREE", "DART"), "tunable": True},
    "dart_normalize_type": {"kind": str, "choices": ("TREE", "FOREST"), "tunable": True},
    "dropout": {"kind": float, "low": 0.0, "high": 1.0, "tunable": True},
    "tree_method": {"kind": str, "choices": ("AUTO", "EXACT", "APPROX", "HIST"), "tunable": True},
    "min_tree_child_weight": {"kind": int, "low": 0, "high": 10**9, "tunable": True},
    "colsample_bytree": {"kind": float, "low": 0.0, "high": 1.0, "low_open": True, "tunable": True},
    "colsample_bylevel": {"kind": float, "low": 0.0, "high": 1.0, "low_open": True, "tunable": True},
    "colsample_bynode": {"kind": float, "low": 0.0, "high": 1.0, "low_open": True, "tunable": True},
    "min_split_loss": {"kind": float, "low": 0.0, "high": 1e12, "tunable": True},
    "subsample": {"kind": float, "low": 0.0, "high": 1.0, "low_open": True, "tunable": True},
    "xgboost_version": {"kind": str, "choices": ("0.9", "1.1")},
    "optimizer": {"kind": str, "choices": ("ADAGRAD", "ADAM", "FTRL", "RMSPROP", "SGD"), "tunable": True},
    "activation_fn": {"kind": str, "choices": ("RELU", "RELU6", "CRELU", "ELU", "SELU", "SIGMOID", "TANH"),
                      "tunable": True},
    "batch_size": {"kind": int, "low": 1, "high": 8192, "tunable": True},
    "integrated_gradients_num_steps": {"kind": int, "low": 1, "high": 30},
    "tf_version": {"kind": str, "choices": ("1.15", "2.8.0")},
    "kmeans_init_method": {"kind": str, "choices": ("RANDOM", "KMEANS++", "CUSTOM")},
    "kmeans_init_col": {"kind": str},
    "distance_type": {"kind": str, "choices": ("EUCLIDEAN", "COSINE")},
    "standardize_features": {"kind": bool},
    "data_split_test_fraction": {"kind": float, "low": 0.0, "high": 1.0, "scope": "all"},
    "model_registry": {"kind": str, "choices": ("VERTEX_AI",), "scope": "all"},
    "vertex_ai_model_id": {"kind": str, "scope": "all"},
    "vertex_ai_model_version_aliases": {"kind": "str_list", "scope": "all"},
    "kms_key_name": {"kind": str, "scope": "all"},
}

ANY = Rule()
NO_WARM_START = Rule((False,), "sqlml trains every version from scratch; it does not continue from the previous one")
FOREST_NO_L1 = Rule((0.0,), "scikit-learn's random forests have no L1 penalty on leaf weights")
NO_COLSAMPLE = Rule((1.0,), "scikit-learn's random forests sample features per split only (colsample_bynode → "
                            "max_features), not per tree or per level")
NO_MIN_SPLIT_LOSS = Rule((0.0,), "scikit-learn's random forests have no minimum loss reduction per split "
                                 "(XGBoost's gamma)")
SKLEARN_TOLERANCE = Rule((0.01,), "scikit-learn stops on its own tolerance (an absolute change, tol), not on a relative "
                                  "progress per iteration; only BigQuery's default 0.01 is accepted, as a no-op")
NO_VERTEX = Rule((), "sqlml's registry is the sqlml.models table of the database; it does not register models with "
                     "Vertex AI")
MLP_NO_DROPOUT = Rule((0.0,), "scikit-learn's MLP has no dropout layers; it regularizes with l2_reg (alpha) and "
                             "early_stop")
MLP_SOLVERS = Rule(("ADAM", "SGD"), "scikit-learn's MLP has the adam and sgd solvers, not ADAGRAD, FTRL or RMSPROP")
MLP_ACTIVATIONS = Rule(("RELU", "SIGMOID", "TANH"), "scikit-learn's MLP has the relu, logistic (sigmoid), tanh and "
                                                    "identity activations only")

#: Option → {model type or family or EVERY: rule}. Options of sqlml's table (l1_reg, early_stop, …)
#: appear for the model types that take them only because BigQuery documents them there.
RULES: dict[str, dict[str, Rule]] = {
    "optimize_strategy": {
        "linear_reg": Rule(("AUTO_STRATEGY", "NORMAL_EQUATION"), "sqlml fits linear regression exactly (least "
                           "squares, or coordinate descent with l1_reg), not by batch gradient descent"),
        "logistic_reg": Rule(("AUTO_STRATEGY",), "logistic regression has no normal equation, and sqlml fits it "
                             "with lbfgs (saga with l1_reg), not batch gradient descent")},
    "learn_rate_strategy": {LINEAR: Rule(("LINE_SEARCH",), "sqlml's solvers choose their own steps by line search "
                                         "or exactly; a constant learning rate has no equivalent")},
    "learn_rate": {LINEAR: Rule((), "BigQuery uses learn_rate only with learn_rate_strategy = 'CONSTANT', which "
                                "sqlml cannot honour (its solvers choose their own steps)")},
    "ls_init_learn_rate": {LINEAR: ANY},  # the initial step of a line search changes the path, not the optimum
    "calculate_p_values": {LINEAR: Rule((False,), "scikit-learn's linear models do not compute p-values of their "
                                        "weights")},
    "fit_intercept": {LINEAR: ANY},  # → fit_intercept
    "category_encoding_method": {
        LINEAR: Rule(("ONE_HOT_ENCODING",), "sqlml one-hot encodes the categories of linear models (NULL as its "
                     "own category); it has no dummy encoding"),
        BOOSTED: Rule(("LABEL_ENCODING",), "sqlml gives boosted trees one ordinal code per category column, "
                     "split on by XGBoost as a categorical feature; one-hot and target encoding are not implemented")},
    "warm_start": {LINEAR: NO_WARM_START, DNN: NO_WARM_START, KMEANS: NO_WARM_START, AUTOENCODER: NO_WARM_START},
    "enable_global_explain": {EVERY: ANY},  # ML.GLOBAL_EXPLAIN is computed when asked, for any model
    "approx_global_feature_contrib": {BOOSTED: ANY, FOREST: ANY},  # tree explanations are exact Tree SHAP
    # Boosted trees take XGBoost's parameters as their own options (sqlml.model.boosted.PARAMETERS): booster_type,
    # dart_normalize_type, dropout, tree_method, min_tree_child_weight, subsample, colsample_*, min_split_loss.
    "dropout": {DNN: MLP_NO_DROPOUT, AUTOENCODER: MLP_NO_DROPOUT},
    "l1_reg": {FOREST: FOREST_NO_L1, DNN: Rule((0.0,), "scikit-learn's MLP has an L2 penalty only (l2_reg → alpha)")},
    "l2_reg": {FOREST: Rule((0.0,), "scikit-learn's random forests average unregularized trees: there are no leaf "
                            "weights to penalize")},
    "tree_method": {FOREST: ANY},  # scikit-learn's forests search exact splits, at least as fine as any method
    "min_tree_child_weight": {FOREST: ANY},  # → min_samples_leaf
    "colsample_bytree": {FOREST: NO_COLSAMPLE},
    "colsample_bylevel": {FOREST: NO_COLSAMPLE},
    "colsample_bynode": {FOREST: ANY},  # → max_features
    "min_split_loss": {FOREST: NO_MIN_SPLIT_LOSS},
    "subsample": {FOREST: ANY},  # → max_samples
    "xgboost_version": {BOOSTED: ANY, FOREST: ANY},  # the installed XGBoost (3.x) trains; forests are scikit-learn's
    "early_stop": {FOREST: ANY, KMEANS: ANY},  # forests have no iterations; k-means: FALSE → tol = 0
    "min_rel_progress": {DNN: SKLEARN_TOLERANCE, KMEANS: SKLEARN_TOLERANCE, FOREST: ANY},
    "optimizer": {DNN: MLP_SOLVERS, AUTOENCODER: MLP_SOLVERS},  # → solver
    "activation_fn": {DNN: MLP_ACTIVATIONS, AUTOENCODER: MLP_ACTIVATIONS},  # → activation
    "batch_size": {DNN: ANY, AUTOENCODER: ANY},  # → batch_size
    "integrated_gradients_num_steps": {DNN: ANY},  # sqlml explains DNNs with sampled Shapley values
    "tf_version": {DNN: ANY},  # the networks are scikit-learn's
    "kmeans_init_method": {KMEANS: ANY},  # → init
    "kmeans_init_col": {KMEANS: ANY},
    "distance_type": {KMEANS: Rule(("EUCLIDEAN",), "scikit-learn's KMeans minimizes Euclidean distances only")},
    "standardize_features": {KMEANS: ANY},  # → the preprocessing standardizes, or not
    "data_split_test_fraction": {EVERY: Rule((0.0,), "sqlml splits the rows into training and evaluation rows "
                                             "only; it keeps no third, test split")},
    "model_registry": {EVERY: NO_VERTEX},
    "vertex_ai_model_id": {EVERY: NO_VERTEX},
    "vertex_ai_model_version_aliases": {EVERY: NO_VERTEX},
    "kms_key_name": {EVERY: Rule((), "sqlml signs the model bytes with its own key (SQLML_SECRET_KEY) but does "
                                 "not encrypt them with Cloud KMS")},
}


def rule(name: str, model_type: str) -> Rule | None:
    """The rule of a BigQuery option for a model type; None where BigQuery does not document it."""
    rules = RULES.get(name, {})
    kind = MODEL_KINDS.get(model_type)
    return rules.get(model_type) or (rules.get(kind.family) if kind else None) or rules.get(EVERY)


def takes(name: str, model_type: str) -> bool:
    return name in RULES and rule(name, model_type) is not None


def check(options: dict, model_type: str | None) -> None:
    """Refuse a BigQuery option at a value sqlml cannot honour, and options that need each other."""
    if model_type not in MODEL_KINDS:
        return  # 'auto' or ALTER MODEL: each trial's type is checked when it trains
    for name, value in options.items():
        found = rule(name, model_type) if name in RULES else None
        for candidate in _values(value) if found else ():
            why = found.refusal(candidate)
            if why is not None:
                raise OptionError(_refused(name, candidate, model_type, found, why))
    if "num_principal_components" in options and "pca_explained_variance_ratio" in options:
        raise OptionError("num_principal_components and pca_explained_variance_ratio both say how many principal "
                          "components to keep; give one of them.")
    method, column = options.get("kmeans_init_method"), options.get("kmeans_init_col")
    if (method == "CUSTOM") != (column is not None):
        raise OptionError("kmeans_init_method = 'CUSTOM' and kmeans_init_col go together: the column (BOOL) marks "
                          "with TRUE the rows that are the initial centroids, one per cluster.")


def _values(value: t.Any) -> list:
    """The values an option may take: itself, or the ends or candidates of a search space."""
    if isinstance(value, dict) and "args" in value:
        args = value["args"]
        return list(args[0]) if value.get("function") == "HPARAM_CANDIDATES" else list(args)
    return [value]


def _refused(name: str, value: t.Any, model_type: str, found: Rule, why: str) -> str:
    shown = ("TRUE" if value else "FALSE") if isinstance(value, bool) else repr(value)
    if found.accepted:
        values = [("TRUE" if v else "FALSE") if isinstance(v, bool) else repr(v) for v in found.accepted]
        what = f"Leave it out or set it to {values[0]}." if len(values) == 1 else \
            f"Leave it out or set it to one of {', '.join(values)}."
    else:
        what = "Leave it out."
    return (f"{name} = {shown} is a BigQuery ML option sqlml cannot honour for model_type '{model_type}': {why}. "
            f"{what}")
