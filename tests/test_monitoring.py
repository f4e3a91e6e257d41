"""Monitoring: ML.EVALUATE over time windows, ML.ESTIMATE_PERFORMANCE (CBPE) and ML.REVIEW_QUEUE,
each checked against sklearn / NumPy on the same rows (the probabilities read from ML.PREDICT)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import skops.io as sio
from conftest import held_out
from sklearn import metrics as skm
from sklearn.isotonic import IsotonicRegression

import sqlml
from sqlml import datasets
from sqlml.errors import DataError, ParameterError, SqlmlError
from sqlml.functions import review
from sqlml.model import envelope

COLUMNS = "make_date(year, month, day) AS flight_date, CAST(time_hour AS TIMESTAMP) AS time_hour, month, dep_delay, " \
          "sched_dep_time, distance, carrier, origin, arr_delay > 15 AS is_late"
MONTHLY = "STRUCT('flight_date' AS time_column, 'month' AS time_window)"


@pytest.fixture(scope="module")
def mon():
    """Flights of the 1st and 15th (``fl``) and of every other day (``later``); ``late``: a logistic
    regression of is_late trained on the 1st and 15th of January to March."""
    conn = sqlml.connect(progress=lambda message: None)
    datasets.load(conn.duckdb, "flights", "all_flights")
    order = "ORDER BY year, month, day, sched_dep_time, carrier, flight"
    conn.sql(f"CREATE TABLE fl AS SELECT {COLUMNS} FROM all_flights WHERE arr_delay IS NOT NULL AND day IN (1, 15) {order}")
    conn.sql(f"CREATE TABLE later AS SELECT {COLUMNS} FROM all_flights "
             f"WHERE arr_delay IS NOT NULL AND day NOT IN (1, 15) AND month > 3 {order}")
    conn.sql("CREATE VIEW train_rows AS SELECT * EXCLUDE (flight_date, time_hour, month) FROM fl WHERE month <= 3")
    conn.sql("CREATE MODEL late OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late']) AS "
             "SELECT * FROM train_rows")
    yield conn
    conn.close()


def predicted(conn, source: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """ML.PREDICT's positive-class probability and predicted label, and the input columns, of ``source``."""
    out = conn.sql(f"SELECT * FROM ML.PREDICT(MODEL late, {source})").arrow().read_all()
    probs = np.array([[p["prob"] for p in row] for row in out["predicted_is_late_probs"].to_pylist()])
    return probs[:, 1], np.asarray(out["predicted_is_late"].to_pylist()), out.to_pydict()


def test_each_window_has_sklearns_metrics_on_its_rows(mon):
    got = mon.sql(f"SELECT * FROM ML.EVALUATE(MODEL late, (SELECT * FROM fl WHERE month > 3), {MONTHLY})").df()
    positive, label, rows = predicted(mon, "(SELECT * FROM fl WHERE month > 3)")
    y, month = np.asarray(rows["is_late"]), np.asarray(rows["month"])
    trained = mon.sql("SELECT roc_auc FROM ML.EVALUATE(MODEL late)").fetchall()[0][0]
    majority = mon.sql("SELECT avg(is_late::INT) > 0.5 FROM train_rows").fetchall()[0][0]
    assert [d.month for d in got.window_start] == list(range(4, 13))
    for row in got.itertuples():
        mine = month == row.window_start.month
        assert row.row_count == mine.sum()
        assert row.roc_auc == pytest.approx(skm.roc_auc_score(y[mine], positive[mine]), abs=1e-12)
        assert row.accuracy == pytest.approx(skm.accuracy_score(y[mine], label[mine]), abs=1e-12)
        assert row.precision == pytest.approx(skm.precision_score(y[mine], label[mine]), abs=1e-12)
        assert row.recall == pytest.approx(skm.recall_score(y[mine], label[mine]), abs=1e-12)
        assert row.f1_score == pytest.approx(skm.f1_score(y[mine], label[mine]), abs=1e-12)
        assert row.log_loss == pytest.approx(skm.log_loss(y[mine], positive[mine]), abs=1e-12)
        assert row.baseline_accuracy == pytest.approx(np.mean(y[mine] == majority), abs=1e-12)
        assert row.primary_metric == "roc_auc"
        assert row.degraded == (trained - row.roc_auc > 0.05)
    assert got.columns[:2].tolist() == ["window_start", "row_count"] and got.columns[-1] == "degraded"


def test_week_windows_are_duckdbs_date_trunc_and_the_margin_decides_degraded(mon):
    source = "(SELECT * FROM fl WHERE month BETWEEN 4 AND 6)"
    got = mon.sql(f"SELECT window_start, row_count, roc_auc, degraded FROM ML.EVALUATE(MODEL late, {source}, "
                  "STRUCT('time_hour' AS time_column, 'WEEK' AS time_window, 0.0 AS degradation_margin))").fetchall()
    expected = mon.sql(f"SELECT date_trunc('week', time_hour), count(*) FROM {source} GROUP BY 1 ORDER BY 1").fetchall()
    assert [(start, count) for start, count, _, _ in got] == expected
    trained = mon.sql("SELECT roc_auc FROM ML.EVALUATE(MODEL late)").fetchall()[0][0]
    assert [degraded for *_, degraded in got] == [auc < trained for _, _, auc, _ in got]
    assert any(degraded for *_, degraded in got) and not all(degraded for *_, degraded in got)


def test_regressor_over_years_with_sklearns_r2(penguins):
    penguins.sql("CREATE MODEL mass OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g']) AS "
                 "SELECT * EXCLUDE (year) FROM penguins WHERE body_mass_g IS NOT NULL")
    source = "(SELECT *, make_date(year, 6, 30) AS seen FROM penguins)"
    got = penguins.sql(f"SELECT window_start, row_count, r2_score, mean_absolute_error, primary_metric FROM "
                       f"ML.EVALUATE(MODEL mass, {source}, STRUCT('seen' AS time_column, 'year' AS time_window))").fetchall()
    out = penguins.sql(f"SELECT predicted_body_mass_g, body_mass_g, year FROM ML.PREDICT(MODEL mass, {source}) "
                       "WHERE body_mass_g IS NOT NULL").fetchnumpy()
    assert [row[0].year for row in got] == [2007, 2008, 2009]
    for start, count, r2, mae, primary in got:
        mine = out["year"] == start.year
        assert count == mine.sum() and primary == "r2_score"
        assert r2 == pytest.approx(skm.r2_score(out["body_mass_g"][mine], out["predicted_body_mass_g"][mine]), abs=1e-12)
        assert mae == pytest.approx(skm.mean_absolute_error(out["body_mass_g"][mine],
                                                            out["predicted_body_mass_g"][mine]), abs=1e-9)


def hand_cbpe(probability: np.ndarray, score: np.ndarray, label: np.ndarray) -> dict:
    """CBPE computed here: the expected confusion matrix, and the expected ROC AUC as sklearn's ROC AUC
    of every row counted once as a positive (weight p) and once as a negative (weight 1 - p)."""
    tp, fp = probability[label].sum(), (1 - probability[label]).sum()
    fn, tn = probability[~label].sum(), (1 - probability[~label]).sum()
    auc = skm.roc_auc_score(np.r_[np.ones(len(score)), np.zeros(len(score))], np.r_[score, score],
                            sample_weight=np.r_[probability, 1 - probability])
    return {"estimated_accuracy": (tp + tn) / len(score), "estimated_precision": tp / (tp + fp),
            "estimated_recall": tp / (tp + fn), "estimated_f1_score": 2 * tp / (2 * tp + fp + fn),
            "estimated_roc_auc": auc}


def calibrator_by_hand(conn) -> IsotonicRegression:
    """Isotonic regression fitted here on the model's evaluation split (AUTO_SPLIT's rows, conftest.held_out)."""
    score, _, rows = predicted(conn, "TABLE train_rows")
    rows_eval = held_out(conn.sql("SELECT * FROM train_rows").to_arrow_table())  # is_late has no NULL
    y = np.asarray(rows["is_late"])[rows_eval]
    return IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(score[rows_eval], y)


def test_cbpe_equals_a_hand_computation_from_calibrated_probabilities(mon):
    iso = calibrator_by_hand(mon)
    source = "(SELECT * EXCLUDE (is_late) FROM fl WHERE month > 3)"
    got = mon.sql(f"SELECT * FROM ML.ESTIMATE_PERFORMANCE(MODEL late, {source}, {MONTHLY})").df()
    score, label, rows = predicted(mon, source)
    month = np.asarray(rows["month"])
    assert [d.month for d in got.window_start] == list(range(4, 13))
    for row in got.itertuples():
        mine = month == row.window_start.month
        assert row.row_count == mine.sum()
        expected = hand_cbpe(iso.predict(score[mine]), score[mine], label[mine])
        for name, value in expected.items():
            assert getattr(row, name) == pytest.approx(value, abs=1e-9), name
    assert "no concept drift" in got.notes[0] and "calibrated by isotonic regression" in got.notes[0]
    overall = mon.sql(f"SELECT * FROM ML.ESTIMATE_PERFORMANCE(MODEL late, {source})").df()
    assert overall.columns[0] == "row_count" and overall.row_count[0] == len(score)
    assert overall.estimated_accuracy[0] == pytest.approx(hand_cbpe(iso.predict(score), score, label)
                                                          ["estimated_accuracy"], abs=1e-9)


def test_the_calibrator_is_stored_in_the_signed_envelope_through_skops(mon):
    blob = mon.duckdb.execute("SELECT model FROM sqlml.models WHERE name = 'late'").fetchone()[0]
    estimator, header, parts = envelope.loads_parts(blob)
    assert type(envelope.loads(blob)[0]).__name__ == "LogisticRegression"  # loads gives the estimator alone
    assert header["parts"] == ["calibrator"] and type(estimator).__name__ == "LogisticRegression"
    iso = calibrator_by_hand(mon)
    np.testing.assert_allclose(parts["calibrator"].X_thresholds_, iso.X_thresholds_, atol=1e-12)
    np.testing.assert_allclose(parts["calibrator"].y_thresholds_, iso.y_thresholds_, atol=1e-12)
    payload = bytes(blob)[len(envelope.MAGIC) + 33:]
    length = int.from_bytes(payload[:4], "big")
    assert sio.get_untrusted_types(data=payload[4 + length:]) == []  # skops' own allow-list covers it


def test_without_held_out_rows_cbpe_uses_the_raw_probabilities_and_says_so(mon):
    mon.sql("CREATE OR REPLACE MODEL raw OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late'], "
            "data_split_method = 'NO_SPLIT') AS SELECT * FROM train_rows")
    header = envelope.loads(mon.duckdb.execute("SELECT model FROM sqlml.models WHERE name = 'raw'").fetchone()[0])[1]
    assert "parts" not in header  # stored as models were before calibrators: nothing beside the estimator
    source = "(SELECT * FROM fl WHERE month = 7)"
    got = mon.sql(f"SELECT * FROM ML.ESTIMATE_PERFORMANCE(MODEL raw, {source})").df()
    out = mon.sql(f"SELECT * FROM ML.PREDICT(MODEL raw, {source})").arrow().read_all()
    score = np.array([row[1]["prob"] for row in out["predicted_is_late_probs"].to_pylist()])
    expected = hand_cbpe(score, score, np.asarray(out["predicted_is_late"].to_pylist()))
    assert got.estimated_accuracy[0] == pytest.approx(expected["estimated_accuracy"], abs=1e-9)
    assert got.estimated_roc_auc[0] == pytest.approx(expected["estimated_roc_auc"], abs=1e-9)
    assert "not calibrated" in got.notes[0]


def test_estimated_accuracy_follows_the_realised_one_month_by_month(mon):
    """Every other day of April to December, by month: the labels are held back from the estimate."""
    realised = mon.sql(f"SELECT window_start, accuracy FROM ML.EVALUATE(MODEL late, TABLE later, {MONTHLY}) "
                       "ORDER BY 1").fetchall()
    estimated = mon.sql(f"SELECT window_start, estimated_accuracy FROM ML.ESTIMATE_PERFORMANCE(MODEL late, "
                        f"(SELECT * EXCLUDE (is_late) FROM later), {MONTHLY}) ORDER BY 1").fetchall()
    assert [r[0] for r in realised] == [e[0] for e in estimated]
    actual, guess = np.array([r[1] for r in realised]), np.array([e[1] for e in estimated])
    gaps = guess - actual
    print("\nCBPE per month (realised / estimated accuracy, gap):",
          ", ".join(f"{r[0]:%b} {a:.3f}/{e:.3f} {g:+.3f}" for r, a, e, g in zip(realised, actual, guess, gaps)),
          f"correlation {np.corrcoef(actual, guess)[0, 1]:.2f}")
    assert np.abs(gaps).max() < 0.05  # within a few points every month
    assert np.corrcoef(actual, guess)[0, 1] > 0.6  # moves with the realised accuracy
    assert guess.std() > 0.005  # not a constant


def test_review_queue_is_the_least_confident_rows_of_ml_predict(mon):
    source = "TABLE later"  # more rows than one record batch: the selection spans batches
    got = mon.sql(f"SELECT * FROM ML.REVIEW_QUEUE(MODEL late, {source}, STRUCT(25 AS top_k))").arrow().read_all()
    positive, label, rows = predicted(mon, source)
    confidence = np.maximum(positive, 1 - positive)
    order = np.argsort(confidence, kind="stable")[:25]
    assert got.column_names == ["predicted_is_late", "confidence", *mon.sql("SELECT * FROM later").columns]
    np.testing.assert_array_equal(got["confidence"].to_numpy(), confidence[order])
    assert got["predicted_is_late"].to_pylist() == label[order].tolist()
    for name in ("flight_date", "carrier", "dep_delay", "is_late"):
        assert got[name].to_pylist() == [rows[name][i] for i in order]


def test_review_queue_holds_at_most_top_k_rows_and_a_batch(mon, monkeypatch):
    seen = []
    original = review._least_sure
    monkeypatch.setattr(review, "_least_sure", lambda rows, k: seen.append(rows.num_rows) or original(rows, k))
    total = mon.sql("SELECT count(*) FROM later").fetchall()[0][0]
    mon.sql("SELECT * FROM ML.REVIEW_QUEUE(MODEL late, TABLE later, STRUCT(10 AS top_k))").fetchall()
    assert len(seen) > 2 and max(seen) <= 10 + 122_880 < total


def test_review_queue_by_max_confidence_and_into_a_table(mon):
    source = "(SELECT * FROM fl WHERE month = 5)"
    got = mon.sql(f"SELECT confidence FROM ML.REVIEW_QUEUE(MODEL late, {source}, STRUCT(0.6 AS max_confidence))").fetchall()
    positive, _, _ = predicted(mon, source)
    confidence = np.maximum(positive, 1 - positive)
    assert [c for c, in got] == sorted(confidence[confidence <= 0.6].tolist())
    mon.sql("CREATE TABLE to_label AS SELECT * FROM fl LIMIT 0")
    mon.sql(f"INSERT INTO to_label SELECT * EXCLUDE (predicted_is_late, confidence) "
            f"FROM ML.REVIEW_QUEUE(MODEL late, {source}, STRUCT(7 AS top_k))")
    assert mon.sql("SELECT count(*) FROM to_label").fetchall() == [(7,)]


def test_review_queue_of_nothing_has_the_columns(mon):
    got = mon.sql("SELECT * FROM ML.REVIEW_QUEUE(MODEL late, (SELECT * FROM fl WHERE FALSE))").arrow().read_all()
    assert got.num_rows == 0 and got.column_names[:2] == ["predicted_is_late", "confidence"]
    assert got.schema.field("confidence").type == pa.float64()


@pytest.mark.parametrize("struct, error, message", [
    ("STRUCT('nope' AS time_column)", DataError, "time_column 'nope' is not a column of the input"),
    ("STRUCT('carrier' AS time_column, 'month' AS time_window)", DataError, "is string, not a DATE or TIMESTAMP"),
    ("STRUCT('flight_date' AS time_column, 'fortnight' AS time_window)", ParameterError,
     "'time_window' parameter of ML.EVALUATE must be one of 'day', 'week', 'month', 'quarter', 'year'"),
    ("STRUCT('month' AS time_window)", ParameterError, "time_window needs a time_column"),
    ("STRUCT('flight_date' AS time_column, 'carrier' AS slice_by)", ParameterError, "slice_by or time_column, not both"),
    ("STRUCT('flight_date' AS time_column, -0.1 AS degradation_margin)", ParameterError,
     "'degradation_margin' parameter of ML.EVALUATE must be a number in the range [0, inf]"),
])
def test_evaluate_over_time_errors(mon, struct, error, message):
    with pytest.raises(error, match=message.replace("[", r"\[").replace("(", r"\(")):
        mon.sql(f"SELECT * FROM ML.EVALUATE(MODEL late, TABLE fl, {struct})").fetchall()


def test_estimate_and_review_errors(mon, penguins):
    with pytest.raises(DataError, match="time_column 'nope' is not a column of the input of ML.ESTIMATE_PERFORMANCE"):
        mon.sql("SELECT * FROM ML.ESTIMATE_PERFORMANCE(MODEL late, TABLE fl, STRUCT('nope' AS time_column))").fetchall()
    with pytest.raises(ParameterError, match="'top_k' parameter of ML.REVIEW_QUEUE must be an integer"):
        mon.sql("SELECT * FROM ML.REVIEW_QUEUE(MODEL late, TABLE fl, STRUCT(0 AS top_k))").fetchall()
    with pytest.raises(ParameterError, match="'max_confidence' parameter of ML.REVIEW_QUEUE must be a number"):
        mon.sql("SELECT * FROM ML.REVIEW_QUEUE(MODEL late, TABLE fl, STRUCT(1.5 AS max_confidence))").fetchall()
    penguins.sql("CREATE MODEL mass OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g']) AS "
                 "SELECT * FROM penguins WHERE body_mass_g IS NOT NULL")
    penguins.sql("CREATE MODEL species OPTIONS (model_type = 'logistic_reg', input_label_cols = ['species']) AS "
                 "SELECT * FROM penguins")
    penguins.sql("CREATE MODEL groups OPTIONS (model_type = 'kmeans', num_clusters = 3) AS "
                 "SELECT bill_length_mm, flipper_length_mm FROM penguins")
    with pytest.raises(DataError, match="ML.ESTIMATE_PERFORMANCE needs a classification model; 'mass' is a linear_reg"):
        penguins.sql("SELECT * FROM ML.ESTIMATE_PERFORMANCE(MODEL mass, TABLE penguins)").fetchall()
    with pytest.raises(DataError, match="needs a binary classifier; 'species' has 3 classes"):
        penguins.sql("SELECT * FROM ML.ESTIMATE_PERFORMANCE(MODEL species, TABLE penguins)").fetchall()
    with pytest.raises(DataError, match="ML.REVIEW_QUEUE needs a classification model .*'mass' is a linear_reg"):
        penguins.sql("SELECT * FROM ML.REVIEW_QUEUE(MODEL mass, TABLE penguins)").fetchall()
    with pytest.raises(SqlmlError, match="Evaluation over time needs a classifier or regressor; 'groups' is a kmeans"):
        penguins.sql("SELECT * FROM ML.EVALUATE(MODEL groups, (SELECT *, DATE '2020-01-01' AS d FROM penguins), "
                     "STRUCT('d' AS time_column))").fetchall()


def test_model_card_monitoring_shows_evaluation_over_time(mon):
    source = "(SELECT * FROM fl WHERE month BETWEEN 4 AND 6)"
    struct = "STRUCT('time_hour' AS time_column, 'week' AS time_window, 0.0 AS degradation_margin)"
    markdown = mon.sql(f"SELECT model_card FROM ML.MODEL_CARD(MODEL late, {source}, {struct})").fetchall()[0][0]
    section = markdown.split("### Evaluation over time (ML.EVALUATE with time_column)")[1].split("## Warnings")[0]
    table = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| 2013")]
    expected = mon.sql(f"SELECT window_start, row_count, roc_auc, degraded FROM ML.EVALUATE(MODEL late, {source}, "
                       f"{struct})").fetchall()
    assert [cells[0].strip() for cells in table] == [str(start) for start, *_ in expected]
    for cells, (_, count, auc, degraded) in zip(table, expected):
        assert int(cells[1].replace(",", "")) == count
        assert float(cells[2].strip(" *")) == pytest.approx(auc, abs=5e-5)
        assert cells[5].strip() == ("yes" if degraded else "no")
    degraded = sum(d for *_, d in expected)
    assert 0 < degraded < len(expected)
    assert f"{degraded} of {len(expected)} time windows score worse than at training on roc_auc" in markdown
    html = mon.sql(f"SELECT model_card FROM ML.MODEL_CARD(MODEL late, {source}, "  # months by default
                   f"STRUCT('flight_date' AS time_column, 'html' AS format))").fetchall()[0][0]
    assert '<section id="monitoring">' in html and html.count('<td class="text">2013-') == 3
    with pytest.raises(SqlmlError, match="evaluation over time needs the rows to evaluate"):
        mon.sql(f"SELECT model_card FROM ML.MODEL_CARD(MODEL late, {struct})").fetchall()


def test_the_example_runs_the_loop_end_to_end():
    """examples/monitoring_flights.sql, run through the Python API as `sqlml run --dataset flights` does."""
    conn = sqlml.connect(progress=lambda message: None)
    datasets.load(conn.duckdb, "flights")
    with open("examples/monitoring_flights.sql") as f:
        log = conn.sql(f.read()).fetchall()
    assert [(seq, action, version) for seq, action, version, _ in log] == [(1, "create", None), (2, "trained_deployed", 1),
                                                                            (3, "trained_deployed", 2)]
    queued = conn.sql("SELECT flight_id, confidence FROM to_label ORDER BY confidence, flight_id").fetchall()
    july = conn.sql("SELECT * FROM ML.PREDICT(MODEL late VERSION 1, (SELECT * FROM flights_2013 "
                    "WHERE month(flight_date) = 7))").arrow().read_all()
    positive = np.array([row[1]["prob"] for row in july["predicted_is_late_probs"].to_pylist()])
    confidence = np.maximum(positive, 1 - positive)
    least = np.argsort(confidence, kind="stable")[:200]
    assert sorted(i for i, _ in queued) == sorted(np.asarray(july["flight_id"])[least].tolist())
    assert conn.sql("SELECT count(*) FROM labelled WHERE is_late IS NOT NULL").fetchall() == [(200,)]
    flagged = conn.sql("SELECT input FROM ML.VALIDATE_DATA_SKEW(MODEL late VERSION 1, (SELECT * FROM flights_2013 "
                       "WHERE month(flight_date) = 7), STRUCT(0.05 AS numerical_default_threshold)) WHERE is_anomaly")
    assert flagged.fetchall() == [("dep_delay",)]  # as docs/monitoring.md shows
    conn.close()
