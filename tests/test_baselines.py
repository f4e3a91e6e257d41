"""Baselines in ML.EVALUATE and ML.BASELINE, checked against scikit-learn's DummyClassifier /
DummyRegressor fitted on the training rows and sklearn.metrics on the same evaluation rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.dummy import DummyClassifier, DummyRegressor

from sqlml.errors import SqlmlError

TRAIN = "SELECT * EXCLUDE (month, day) FROM flights WHERE month <= 9"
TEST = "(SELECT * EXCLUDE (month, day) FROM flights WHERE month > 9)"
LOWER_IS_BETTER = {"log_loss", "mean_absolute_error", "mean_squared_error", "mean_squared_log_error",
                   "median_absolute_error"}


def _dummy_classifier_metrics(train_y: pd.Series, test_y: pd.Series, binary: bool) -> dict:
    """What ML.EVALUATE's baseline columns must hold: DummyClassifier on the training labels."""
    X_train, X_test = np.zeros((len(train_y), 1)), np.zeros((len(test_y), 1))
    labels = DummyClassifier(strategy="most_frequent").fit(X_train, train_y).predict(X_test)
    prior = DummyClassifier(strategy="prior").fit(X_train, train_y)
    probs = prior.predict_proba(X_test)
    average = {"average": "binary", "pos_label": prior.classes_[1]} if binary else {"average": "macro"}
    return {
        "precision": skm.precision_score(test_y, labels, zero_division=0, **average),
        "recall": skm.recall_score(test_y, labels, zero_division=0, **average),
        "accuracy": skm.accuracy_score(test_y, labels),
        "f1_score": skm.f1_score(test_y, labels, zero_division=0, **average),
        "log_loss": skm.log_loss(test_y, probs, labels=prior.classes_),
        "roc_auc": skm.roc_auc_score(test_y, probs[:, 1]) if binary
        else skm.roc_auc_score(test_y, probs, multi_class="ovr", labels=prior.classes_),
    }


def _regression_metrics(y: np.ndarray, predicted: np.ndarray) -> dict:
    return {
        "mean_absolute_error": skm.mean_absolute_error(y, predicted),
        "mean_squared_error": skm.mean_squared_error(y, predicted),
        "median_absolute_error": skm.median_absolute_error(y, predicted),
        "r2_score": skm.r2_score(y, predicted),
        "explained_variance": skm.explained_variance_score(y, predicted),
    }


def _assert_lifts(row: pd.Series, names) -> None:
    for name in names:
        model, baseline = row[name], row[f"baseline_{name}"]
        expected = baseline - model if name in LOWER_IS_BETTER else model - baseline
        assert row[f"lift_{name}"] == pytest.approx(expected, abs=1e-12), name


def test_binary_classifier_baseline_equals_dummy_classifier(flights):
    flights.sql(f"CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late'], "
                f"data_split_method = 'NO_SPLIT') AS {TRAIN}")
    row = flights.sql(f"SELECT * FROM ML.EVALUATE(MODEL m, {TEST})").df().iloc[0]
    train_y = flights.sql(f"SELECT is_late FROM ({TRAIN})").df().is_late
    scored = flights.sql(f"SELECT * FROM ML.PREDICT(MODEL m, {TEST})").df()
    expected = _dummy_classifier_metrics(train_y, scored.is_late, binary=True)
    for name, value in expected.items():
        assert row[f"baseline_{name}"] == pytest.approx(value, abs=1e-12), name
    # the model's own columns are unchanged by the baseline
    assert row.accuracy == pytest.approx(skm.accuracy_score(scored.is_late, scored.predicted_is_late))
    _assert_lifts(row, expected)
    assert row.baseline_strategy == "most_frequent"
    assert row.primary_metric == "roc_auc"
    assert row.beats_baseline == (row.roc_auc > row.baseline_roc_auc)
    columns = list(row.index)
    assert columns.index("roc_auc") < columns.index("baseline_precision") < columns.index("lift_precision") \
        < columns.index("primary_metric") < columns.index("beats_baseline")


def test_multiclass_baseline_and_settable_primary_metric(penguins):
    penguins.sql("CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['species'], "
                 "data_split_method = 'NO_SPLIT') AS SELECT * FROM penguins WHERE year < 2009")
    test = "(SELECT * FROM penguins WHERE year = 2009)"
    row = penguins.sql(f"SELECT * FROM ML.EVALUATE(MODEL m, {test}, STRUCT('f1_score' AS primary_metric))").df().iloc[0]
    train_y = penguins.sql("SELECT species FROM penguins WHERE year < 2009").df().species
    test_y = penguins.sql(f"SELECT species FROM {test}").df().species
    expected = _dummy_classifier_metrics(train_y, test_y, binary=False)
    for name, value in expected.items():
        assert row[f"baseline_{name}"] == pytest.approx(value, abs=1e-12), name
    _assert_lifts(row, expected)
    assert row.primary_metric == "f1_score"
    assert row.beats_baseline == (row.f1_score > row.baseline_f1_score)


def test_regressor_baseline_is_training_mean_and_median(penguins):
    train = "SELECT * FROM penguins WHERE body_mass_g IS NOT NULL AND year < 2009"
    test = "(SELECT * FROM penguins WHERE body_mass_g IS NOT NULL AND year = 2009)"
    penguins.sql(f"CREATE MODEL m OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g'], "
                 f"data_split_method = 'NO_SPLIT') AS {train}")
    row = penguins.sql(f"SELECT * FROM ML.EVALUATE(MODEL m, {test})").df().iloc[0]
    train_y = penguins.sql(train).df().body_mass_g.to_numpy()
    test_y = penguins.sql(f"SELECT body_mass_g FROM {test}").df().body_mass_g.to_numpy()
    X_train, X_test = np.zeros((len(train_y), 1)), np.zeros((len(test_y), 1))
    for strategy, prefix in (("mean", "baseline_"), ("median", "baseline_median_")):
        predicted = DummyRegressor(strategy=strategy).fit(X_train, train_y).predict(X_test)
        for name, value in _regression_metrics(test_y, predicted).items():
            assert row[f"{prefix}{name}"] == pytest.approx(value, rel=1e-9), (strategy, name)
    _assert_lifts(row, _regression_metrics(test_y, test_y))
    assert row.primary_metric == "r2_score"
    assert row.beats_baseline == (row.r2_score > row.baseline_r2_score)


def test_stored_evaluation_carries_the_baseline_of_the_evaluation_split(flights):
    """Without data, ML.EVALUATE reports the evaluation split kept at training, baseline included."""
    flights.sql("CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late'], "
                "data_split_method = 'CUSTOM', data_split_col = 'is_eval') AS "
                "SELECT * EXCLUDE (month, day), month > 9 AS is_eval FROM flights")
    row = flights.sql("SELECT * FROM ML.EVALUATE(MODEL m)").df().iloc[0]
    train_y = flights.sql("SELECT is_late FROM flights WHERE month <= 9").df().is_late
    test_y = flights.sql("SELECT is_late FROM flights WHERE month > 9").df().is_late
    for name, value in _dummy_classifier_metrics(train_y, test_y, binary=True).items():
        assert row[f"baseline_{name}"] == pytest.approx(value, abs=1e-12), name
    fresh = flights.sql(f"SELECT * FROM ML.EVALUATE(MODEL m, {TEST})").df().iloc[0]
    assert row.roc_auc == pytest.approx(fresh.roc_auc, abs=1e-12)  # one scoring path at training and after
    assert row.beats_baseline == fresh.beats_baseline
    stats = flights.sql("SELECT metrics->'baseline'->'statistics' AS s FROM sqlml.models").df().s[0]
    assert '"majority_class":false' in stats.replace(" ", "")


def test_baselines_can_be_turned_off(flights):
    flights.sql(f"CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late']) AS {TRAIN}")
    for data in (f", {TEST}", ""):
        off = flights.sql(f"SELECT * FROM ML.EVALUATE(MODEL m{data}, STRUCT(FALSE AS baselines))").df()
        on = flights.sql(f"SELECT * FROM ML.EVALUATE(MODEL m{data})").df()
        assert not [c for c in off.columns if c.startswith(("baseline", "lift_"))]
        assert "beats_baseline" not in off.columns
        assert list(off.columns) == list(on.columns[: len(off.columns)])
        assert off.iloc[0].to_dict() == pytest.approx(on[off.columns].iloc[0].to_dict())


def test_model_that_does_not_beat_its_baseline_says_so(conn):
    """Noise features and a 90/10 label: the model predicts the majority every time, like the baseline."""
    conn.sql("SELECT setseed(0.5)")
    conn.sql("CREATE TABLE noise AS SELECT random() AS x, (i % 10 = 0) AS y FROM range(2000) r(i)")
    conn.sql("CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['y'], "
             "data_split_method = 'NO_SPLIT') AS SELECT * FROM noise")
    row = conn.sql("SELECT * FROM ML.EVALUATE(MODEL m, TABLE noise, STRUCT('accuracy' AS primary_metric))").df().iloc[0]
    assert row.accuracy == pytest.approx(0.9)
    assert row.baseline_accuracy == pytest.approx(0.9)
    assert not row.beats_baseline


def test_seq_split_baseline_is_the_last_training_value(penguins):
    """A persistence baseline: the label of the last training row in data_split_col order."""
    penguins.sql("CREATE TABLE ordered AS SELECT row_number() OVER () AS t, * FROM penguins "
                 "WHERE body_mass_g IS NOT NULL")
    penguins.sql("CREATE MODEL m OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g'], "
                 "data_split_method = 'SEQ', data_split_col = 't', data_split_eval_fraction = 0.25) "
                 "AS SELECT * FROM ordered")
    data = penguins.sql("SELECT * FROM ordered ORDER BY t").df()
    n_eval = round(len(data) * 0.25)
    last_training_value = data.body_mass_g.iloc[len(data) - n_eval - 1]
    baseline = penguins.sql("SELECT * FROM ML.BASELINE(MODEL m, TABLE ordered)").df()
    assert (baseline.predicted_body_mass_g == last_training_value).all()
    row = penguins.sql("SELECT * FROM ML.EVALUATE(MODEL m)").df().iloc[0]
    test_y = data.body_mass_g.iloc[len(data) - n_eval:].to_numpy()
    expected = _regression_metrics(test_y, np.full(len(test_y), last_training_value))
    assert row.baseline_strategy == "last_value"
    for name, value in expected.items():
        assert row[f"baseline_{name}"] == pytest.approx(value, rel=1e-9), name


def test_ml_baseline_returns_the_baselines_predictions(flights):
    flights.sql(f"CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late'], "
                f"data_split_method = 'NO_SPLIT') AS {TRAIN}")
    out = flights.sql(f"SELECT * FROM ML.BASELINE(MODEL m, {TEST})").df()
    inputs = flights.sql(f"SELECT * FROM {TEST}").df()
    train_y = flights.sql(f"SELECT is_late FROM ({TRAIN})").df().is_late
    X = np.zeros((len(train_y), 1))
    majority = DummyClassifier(strategy="most_frequent").fit(X, train_y).predict(X[:1])[0]
    prior = DummyClassifier(strategy="prior").fit(X, train_y)
    assert list(out.columns) == ["predicted_is_late", "predicted_is_late_probs", *inputs.columns]
    assert (out.predicted_is_late == majority).all()
    probs = out.predicted_is_late_probs[0]
    assert [p["label"] for p in probs] == list(prior.classes_)
    assert [p["prob"] for p in probs] == pytest.approx(prior.class_prior_)
    assert len(out) == len(inputs)


def test_unknown_primary_metric_lists_the_metrics(penguins):
    penguins.sql("CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex']) AS "
                 "SELECT * FROM penguins")
    with pytest.raises(SqlmlError, match="primary_metric 'auc'.*roc_auc"):
        penguins.sql("SELECT * FROM ML.EVALUATE(MODEL m, TABLE penguins, STRUCT('auc' AS primary_metric))")


def test_ml_baseline_refuses_clustering(penguins):
    penguins.sql("CREATE MODEL km OPTIONS (model_type = 'kmeans', num_clusters = 3) AS "
                 "SELECT bill_length_mm, flipper_length_mm FROM penguins")
    with pytest.raises(SqlmlError, match="ML.BASELINE needs a classifier or regressor"):
        penguins.sql("SELECT * FROM ML.BASELINE(MODEL km, TABLE penguins)")
    row = penguins.sql("SELECT * FROM ML.EVALUATE(MODEL km, TABLE penguins)").df()
    assert "beats_baseline" not in row.columns
