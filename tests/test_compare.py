"""ML.COMPARE: each model's figures equal ML.EVALUATE's; the interval equals a paired bootstrap written here
with NumPy and scikit-learn on ML.PREDICT's output (scheme: sqlml/functions/compare.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import sqlglot
from sklearn import metrics as skm

from sqlml import datasets
from sqlml.errors import DataError, ParameterError, SqlmlParseError

TEST = "(SELECT * FROM te)"
LOGISTIC = "model_type = 'logistic_reg', input_label_cols = ['target']"


@pytest.fixture
def cancer(conn):
    """Breast cancer: every third row held out; model ``m`` version 1 on all 30 measurements, version 2 on
    mean_radius alone (the same pair also as models ``full`` and ``small``)."""
    datasets.load(conn.duckdb, "breast_cancer", "bc")
    conn.sql("CREATE TABLE numbered AS SELECT *, row_number() OVER () AS i FROM bc")
    conn.sql("CREATE TABLE tr AS SELECT * EXCLUDE (i) FROM numbered WHERE i % 3 <> 0 ORDER BY i")
    conn.sql("CREATE TABLE te AS SELECT * EXCLUDE (i) FROM numbered WHERE i % 3 = 0 ORDER BY i")
    for name, columns in (("full", "*"), ("small", "mean_radius, target")):
        conn.sql(f"CREATE MODEL {name} OPTIONS ({LOGISTIC}) AS SELECT {columns} FROM tr")
    conn.sql(f"CREATE MODEL m OPTIONS ({LOGISTIC}) AS SELECT * FROM tr")
    conn.sql(f"CREATE OR REPLACE MODEL m OPTIONS ({LOGISTIC}) AS SELECT mean_radius, target FROM tr")
    return conn


def _compare(conn, a: str, b: str, struct: str = "STRUCT(100 AS num_bootstrap)") -> dict:
    frame = conn.sql(f"SELECT * FROM ML.COMPARE({a}, {b}, {TEST}, {struct})").df()
    return {row.metric: row for row in frame.itertuples()}


def _positive_probs(conn, model: str) -> np.ndarray:
    rows = conn.sql(f"SELECT predicted_target_probs FROM ML.PREDICT({model}, {TEST})").df()
    return np.array([next(p["prob"] for p in probs if p["label"] == 1) for probs in rows.predicted_target_probs])


def test_values_equal_ml_evaluate_of_each_model(cancer):
    got = _compare(cancer, "MODEL m VERSION 1", "MODEL m VERSION 2")
    a = cancer.sql(f"SELECT * FROM ML.EVALUATE(MODEL m VERSION 1, {TEST})").df().iloc[0]
    b = cancer.sql(f"SELECT * FROM ML.EVALUATE(MODEL m VERSION 2, {TEST})").df().iloc[0]
    assert list(got) == ["roc_auc", "pr_auc", "log_loss", "f1_score", "precision", "recall", "accuracy"]
    for metric, row in got.items():
        assert (row.model_a_value, row.model_b_value) == (a[metric], b[metric])
        assert row.difference == a[metric] - b[metric]


def test_interval_and_p_value_equal_a_numpy_paired_bootstrap(cancer):
    got = _compare(cancer, "MODEL full", "MODEL small", "STRUCT(300 AS num_bootstrap, 7 AS random_seed)")
    y = cancer.sql(f"SELECT target FROM {TEST}").df().target.to_numpy()
    p_a, p_b = _positive_probs(cancer, "MODEL full"), _positive_probs(cancer, "MODEL small")
    scores = {"roc_auc": lambda y, p: skm.roc_auc_score(y, p),
              "log_loss": lambda y, p: skm.log_loss(y, np.c_[1 - p, p], labels=[0, 1]),
              "accuracy": lambda y, p: np.mean((p >= 0.5) == y)}
    rng = np.random.default_rng(7)
    draws = [rng.integers(0, len(y), size=len(y)) for _ in range(300)]
    for metric, score in scores.items():
        differences = np.array([score(y[r], p_a[r]) - score(y[r], p_b[r]) for r in draws])
        low, high = np.quantile(differences, [0.025, 0.975])
        p_value = min(1.0, 2 * min(np.mean(differences <= 0), np.mean(differences >= 0)))
        row = got[metric]
        assert row.ci_lower == pytest.approx(low, abs=1e-12) and row.ci_upper == pytest.approx(high, abs=1e-12)
        assert row.p_value == pytest.approx(p_value, abs=1e-12)
    # The full model is better on every figure: higher roc_auc and accuracy, lower log_loss (difference < 0).
    assert got["roc_auc"].ci_lower > 0 and got["roc_auc"].better_model == "a"
    assert got["log_loss"].ci_upper < 0 and got["log_loss"].better_model == "a"
    reversed_ = _compare(cancer, "MODEL small", "MODEL full", "STRUCT(300 AS num_bootstrap, 7 AS random_seed)")
    assert reversed_["log_loss"].better_model == "b" and reversed_["accuracy"].better_model == "b"


def test_better_model_is_null_when_the_interval_contains_zero(cancer):
    same = _compare(cancer, "MODEL full", "MODEL m VERSION 1")  # trained alike: identical predictions
    for row in same.values():
        assert (row.difference, row.ci_lower, row.ci_upper, row.p_value) == (0.0, 0.0, 0.0, 1.0)
        assert row.better_model is None


def test_regression_direction_and_values(conn):
    datasets.load(conn.duckdb, "diabetes")
    options = "model_type = 'linear_reg', input_label_cols = ['target'], data_split_method = 'NO_SPLIT'"
    conn.sql(f"CREATE MODEL rich OPTIONS ({options}) AS SELECT * FROM diabetes")
    conn.sql(f"CREATE MODEL poor OPTIONS ({options}) AS SELECT sex, target FROM diabetes")
    frame = conn.sql("SELECT * FROM ML.COMPARE(MODEL rich, MODEL poor, TABLE diabetes, STRUCT(100 AS num_bootstrap))").df()
    got = {row.metric: row for row in frame.itertuples()}
    y = conn.sql("SELECT target FROM diabetes").df().target.to_numpy()
    predicted = {m: conn.sql(f"SELECT predicted_target FROM ML.PREDICT(MODEL {m}, TABLE diabetes)").df()
                 .predicted_target.to_numpy() for m in ("rich", "poor")}
    mae = {m: np.mean(np.abs(y - p)) for m, p in predicted.items()}
    assert got["mean_absolute_error"].model_a_value == pytest.approx(mae["rich"], rel=1e-12)
    assert got["mean_absolute_error"].model_b_value == pytest.approx(mae["poor"], rel=1e-12)
    assert got["mean_absolute_error"].better_model == "a" and got["r2_score"].better_model == "a"


def test_alias_and_deployed_version_name_the_same_rows(cancer):
    cancer.sql("ALTER MODEL m VERSION 1 SET ALIAS champion")
    by_alias = _compare(cancer, "MODEL m VERSION champion", "MODEL small")
    by_number = _compare(cancer, "MODEL m VERSION 1", "MODEL small")
    assert by_alias["roc_auc"] == by_number["roc_auc"]
    deployed = _compare(cancer, "MODEL full", "MODEL small")  # full has one version: the deployed one
    assert deployed["log_loss"] == _compare(cancer, "MODEL full VERSION 1", "MODEL small")["log_loss"]


def test_seed_decides_the_resamples(cancer):
    one = _compare(cancer, "MODEL full", "MODEL small", "STRUCT(100 AS num_bootstrap, 3 AS random_seed)")
    again = _compare(cancer, "MODEL full", "MODEL small", "STRUCT(100 AS num_bootstrap, 3 AS random_seed)")
    other = _compare(cancer, "MODEL full", "MODEL small", "STRUCT(100 AS num_bootstrap, 4 AS random_seed)")
    assert one["roc_auc"] == again["roc_auc"]
    assert one["roc_auc"].ci_lower != other["roc_auc"].ci_lower


def test_dialect_round_trip():
    sql = "SELECT * FROM ML.COMPARE(MODEL m VERSION 1, MODEL m VERSION champion, TABLE t)"
    assert sqlglot.parse_one(sql, read="sqlml").sql("sqlml") == sql


def test_refusals(cancer):
    cancer.sql("CREATE MODEL radius OPTIONS (model_type = 'linear_reg', input_label_cols = ['mean_radius']) "
               "AS SELECT mean_texture, mean_radius FROM tr")
    cancer.sql("CREATE MODEL km OPTIONS (model_type = 'kmeans', num_clusters = 2) AS SELECT mean_radius FROM tr")
    cases = [
        ("ML.COMPARE(MODEL full, MODEL radius, TABLE te)", DataError,
         "predict 'target' (classification) and 'mean_radius' (regression)"),
        ("ML.COMPARE(MODEL full, MODEL km, TABLE te)", DataError, "include a k-means model"),
        ("ML.COMPARE(MODEL full, MODEL small)", ParameterError, "needs two models and the rows to compare them on"),
        ("ML.COMPARE(MODEL full, TABLE te)", ParameterError, "needs two models"),
        ("ML.EVALUATE(MODEL full, MODEL small, TABLE te)", ParameterError, "only ML.COMPARE takes two"),
        ("ML.COMPARE(MODEL full, MODEL small, TABLE te, STRUCT(50 AS num_bootstrap))", ParameterError,
         "'num_bootstrap' parameter of ML.COMPARE must be an integer in the range [100, 100000]"),
        ("ML.COMPARE(MODEL full, MODEL small, MODEL m, TABLE te)", SqlmlParseError, "at most two MODEL arguments"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=re.escape(message)):
            cancer.sql(f"SELECT * FROM {call}")


# --- the vectorized bootstrap, metric by metric, against scikit-learn on the drawn rows --------------------

def _sklearn_metric(name: str, y: np.ndarray, predicted: np.ndarray, probs: np.ndarray | None) -> float:
    """One metric as docs/evaluation.md defines it, by scikit-learn on rows given; NaN where undefined."""
    if probs is None:
        if name == "mean_squared_log_error" and ((y < 0).any() or (predicted < 0).any()):
            return np.nan
        if name in ("r2_score", "explained_variance") and len(y) < 2:
            return np.nan
        return getattr(skm, {"r2_score": "r2_score", "explained_variance": "explained_variance_score"}.get(name, name))(
            y, predicted)
    classes = probs.shape[1]
    binary = classes == 2
    averaged = {"average": "binary"} if binary else {"average": "macro", "labels": np.arange(classes)}
    present = len(np.unique(y))
    if name in ("precision", "recall", "f1_score"):
        return getattr(skm, {"f1_score": "f1_score"}.get(name, f"{name}_score"))(y, predicted, zero_division=0, **averaged)
    if name == "accuracy":
        return skm.accuracy_score(y, predicted)
    if name == "log_loss":
        return skm.log_loss(y, probs, labels=np.arange(classes))
    if present < classes:
        return np.nan
    if name == "pr_auc":
        return skm.average_precision_score(y, probs[:, 1])
    return skm.roc_auc_score(y, probs[:, 1]) if binary else skm.roc_auc_score(y, probs, multi_class="ovr")


def _reference_differences(a, b, names, count, seed):
    """The paired bootstrap as docs/evaluation.md states it, one resample at a time."""
    rng = np.random.default_rng(seed)
    found = {m: [] for m in names}
    for _ in range(count):
        rows = rng.integers(0, len(a.y), size=len(a.y))
        for m in names:
            one, two = (_sklearn_metric(m, s.y[rows], s.predicted[rows], None if s.probs is None else s.probs[rows])
                        for s in (a, b))
            if np.isfinite(one) and np.isfinite(two):
                found[m].append(one - two)
    return found


def _fitted_pair(dataset: str, columns: tuple[slice, slice], rows: slice = slice(None)):
    """Two scikit-learn models of a real dataset on different columns, scored as sqlml's Scored."""
    from sklearn import datasets as skd
    from sklearn.linear_model import LinearRegression, LogisticRegression

    from sqlml.model.metrics import Scored
    X, y = getattr(skd, f"load_{dataset}")(return_X_y=True)
    X, y = (X[rows] - X.mean(axis=0)) / X.std(axis=0), y[rows]  # standardized: lbfgs converges in a few steps
    pair = []
    for chosen in columns:
        if dataset == "diabetes":
            pair.append(Scored(y.astype(float), LinearRegression().fit(X[:, chosen], y).predict(X[:, chosen])))
        else:
            probs = LogisticRegression(max_iter=5000).fit(X[:, chosen], y).predict_proba(X[:, chosen])
            decided = (probs[:, 1] >= 0.5).astype(int) if probs.shape[1] == 2 else probs.argmax(axis=1)
            pair.append(Scored(y, decided, probs))
    return pair


@pytest.mark.parametrize("dataset, columns, rows, count", [
    ("breast_cancer", (slice(0, 30), slice(0, 1)), slice(0, 200), 15),   # binary
    ("iris", (slice(0, 4), slice(0, 1)), slice(None), 15),               # three classes
    ("diabetes", (slice(0, 10), slice(2, 3)), slice(0, 200), 15),         # regression
    ("breast_cancer", (slice(0, 30), slice(0, 1)), slice(17, 23), 60),    # 6 rows, 3 benign: one-class resamples
    ("diabetes", (slice(0, 2), slice(2, 3)), slice(0, 3), 60),            # 3 rows: resamples of one row, r2 forced finite
])
def test_the_vectorized_bootstrap_equals_scikit_learn_on_each_resample(dataset, columns, rows, count):
    from sqlml.model import bootstrap
    from sqlml.model.metrics import OBJECTIVES
    a, b = _fitted_pair(dataset, columns, rows)
    names = [m for m in OBJECTIVES["regression" if a.probs is None else "classification"]
             if not (m == "pr_auc" and a.probs.shape[1] > 2)]
    got = bootstrap.differences(a, b, names, count, 11)
    expected = _reference_differences(a, b, names, count, 11)
    for m in names:
        assert len(got[m]) == len(expected[m]), m
        np.testing.assert_allclose(got[m], expected[m], rtol=1e-9, atol=1e-12, err_msg=m)
    if rows == slice(17, 23):  # the check can tell: some resamples drew one class only, and were left out
        assert 0 < len(got["roc_auc"]) < count
