"""The edges of the ML.* functions and options: bounds as documented, NULL parameters, extreme and unusual
column types, infinite times, extreme expirations and unknown metrics. Each gives a correct result or an
sqlml error naming the problem, on the palmerpenguins data, and leaves every stored model as it was."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

import sqlml
from sqlml import datasets
from sqlml.errors import DataError, OptionError, ParameterError, SqlmlError
from sqlml.sql import catalog


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """penguins as ``p`` (with an ``id`` and a ``day``); model m, version 1 fitted on the odd rows (alias
    challenger), version 2 on every row (deployed): the same columns, different predictions; and a small
    boosted tree t (for ML.FEATURE_IMPORTANCE); a PCA pc and a matrix factorization mf (islands rating
    species by their mean body mass, in kg), and an ARIMA_PLUS ts (the first 60 penguins' body mass as a
    daily series) for the functions of those model types."""
    path = str(tmp_path_factory.mktemp("edges") / "edges.duckdb")
    conn = sqlml.connect(path, progress=lambda message: None)
    datasets.load(conn.duckdb, "penguins")
    conn.sql("CREATE TABLE p AS SELECT row_number() OVER () AS id, DATE '2007-01-01' + (3 * row_number() OVER ())::INTEGER "
             "AS day, "
             "* FROM penguins")
    options = "model_type = 'logistic_reg', input_label_cols = ['sex'], deploy = 'always'"
    conn.sql(f"CREATE MODEL m OPTIONS ({options}) AS SELECT * EXCLUDE (id, day) FROM p WHERE id % 2 = 1")
    conn.sql(f"CREATE OR REPLACE MODEL m OPTIONS ({options}) AS SELECT * EXCLUDE (id, day) FROM p")
    conn.sql("ALTER MODEL m VERSION 1 SET ALIAS challenger")
    conn.sql("CREATE MODEL t OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['sex'], "
             "max_iterations = 3) AS SELECT * EXCLUDE (id, day) FROM p")
    conn.sql("CREATE MODEL pc OPTIONS (model_type = 'pca', num_principal_components = 2) AS "
             "SELECT bill_length_mm, bill_depth_mm, flipper_length_mm FROM p")
    conn.sql("CREATE MODEL mf OPTIONS (model_type = 'matrix_factorization', user_col = 'island', item_col = 'species', "
             "rating_col = 'kg', num_factors = 2) AS SELECT island, species, avg(body_mass_g) / 1000 AS kg FROM p "
             "GROUP BY ALL")
    conn.sql("CREATE MODEL ts OPTIONS (model_type = 'arima_plus', time_series_timestamp_col = 'd', "
             "time_series_data_col = 'kg', horizon = 10) AS "
             "SELECT DATE '2007-01-01' + id::INTEGER AS d, body_mass_g / 1000 AS kg FROM p WHERE id <= 60")
    yield conn
    conn.close()


def stored(conn) -> list:
    """Every stored version as the registry lists it (serving state, aliases and status included)."""
    return conn.models().fetchall()


@pytest.fixture
def unchanged(db):
    """Asserts, after the test, that the registry and what ML.PREDICT serves are as they were."""
    before = stored(db), predictions(db)
    yield
    assert (stored(db), predictions(db)) == before


def predictions(conn, model: str = "MODEL m", extra: str = "") -> list:
    return conn.sql(f"SELECT id, predicted_sex, predicted_sex_probs[2].prob FROM ML.PREDICT({model}, TABLE p{extra}) "
                    "ORDER BY id").fetchall()


# --- challenger_fraction: both bounds inclusive, as documented -------------------------------------------

@pytest.mark.parametrize("fraction, served", [(1.0, 1), (0.0, 2)])
def test_challenger_fraction_bounds_serve_every_row_by_one_arm(db, unchanged, fraction, served):
    """1.0 sends every row to the challenger (version 1), 0.0 none: each row as that version scores it alone."""
    ab = f", STRUCT({fraction} AS challenger_fraction, 'id' AS split_key)"
    rows = db.sql(f"SELECT id, model_version, predicted_sex, predicted_sex_probs[2].prob FROM ML.PREDICT(MODEL m, "
                  f"TABLE p{ab}) ORDER BY id").fetchall()
    expected = predictions(db, f"MODEL m VERSION {served}")
    assert predictions(db, "MODEL m VERSION 1") != predictions(db, "MODEL m VERSION 2")  # so the check can fail
    assert {r[1] for r in rows} == {served} and [(r[0], r[2], r[3]) for r in rows] == expected
    db.sql(f"CREATE OR REPLACE VIEW ab AS SELECT * FROM ML.PREDICT(MODEL m, TABLE p{ab})")
    viewed = db.sql("SELECT id, model_version, predicted_sex, predicted_sex_probs[2].prob FROM ab ORDER BY id").fetchall()
    db.sql("DROP VIEW ab")
    assert viewed == rows


# --- NULL parameters: the default, or refused with a message ---------------------------------------------

#: Each ML.* function that takes parameters, called on the fixture's data: ``{}`` is where the STRUCT goes.
CALLS = {
    "PREDICT": "ML.PREDICT(MODEL m, TABLE p{})",
    "EXPLAIN_PREDICT": "ML.EXPLAIN_PREDICT(MODEL m, (SELECT * FROM p WHERE id <= 20){})",
    "EVALUATE": "ML.EVALUATE(MODEL m, TABLE p{})",
    "CONFUSION_MATRIX": "ML.CONFUSION_MATRIX(MODEL m, TABLE p{})",
    "ROC_CURVE": "ML.ROC_CURVE(MODEL m, TABLE p{})",
    "THRESHOLD_METRICS": "ML.THRESHOLD_METRICS(MODEL m, TABLE p{})",
    "TRAINING_INFO": "ML.TRAINING_INFO(MODEL m{})",
    "FEATURE_INFO": "ML.FEATURE_INFO(MODEL m{})",
    "WEIGHTS": "ML.WEIGHTS(MODEL m{})",
    "FAIRNESS": "ML.FAIRNESS(MODEL m, TABLE p{})",
    "GLOBAL_EXPLAIN": "ML.GLOBAL_EXPLAIN(MODEL m{})",
    "FEATURE_IMPORTANCE": "ML.FEATURE_IMPORTANCE(MODEL t{})",
    "MODEL_CARD": "ML.MODEL_CARD(MODEL m{})",
    "DESCRIBE_DATA": "ML.DESCRIBE_DATA(TABLE p{})",
    "VALIDATE_DATA_DRIFT": "ML.VALIDATE_DATA_DRIFT((SELECT * FROM p WHERE id <= 150), (SELECT * FROM p WHERE id > 150){})",
    "VALIDATE_DATA_SKEW": "ML.VALIDATE_DATA_SKEW(MODEL m, TABLE p{})",
    "ESTIMATE_PERFORMANCE": "ML.ESTIMATE_PERFORMANCE(MODEL m, TABLE p{})",
    "REVIEW_QUEUE": "ML.REVIEW_QUEUE(MODEL m, TABLE p{})",
    "COMPARE": "ML.COMPARE(MODEL m VERSION 1, MODEL m VERSION 2, TABLE p{})",
    "RECOMMEND": "ML.RECOMMEND(MODEL mf{})",
    "GENERATE_EMBEDDING": "ML.GENERATE_EMBEDDING(MODEL mf, (SELECT DISTINCT island FROM p){})",
    "PRINCIPAL_COMPONENTS": "ML.PRINCIPAL_COMPONENTS(MODEL pc{})",
    "PRINCIPAL_COMPONENT_INFO": "ML.PRINCIPAL_COMPONENT_INFO(MODEL pc{})",
    "RECONSTRUCTION_LOSS": "ML.RECONSTRUCTION_LOSS(MODEL pc, TABLE p{})",
    "DETECT_ANOMALIES": "ML.DETECT_ANOMALIES(MODEL pc, TABLE p{})",
    "FORECAST": "ML.FORECAST(MODEL ts{})",
    "EXPLAIN_FORECAST": "ML.EXPLAIN_FORECAST(MODEL ts{})",
    "ARIMA_EVALUATE": "ML.ARIMA_EVALUATE(MODEL ts{})",
    "GENERATE_SQL": "ML.GENERATE_SQL(MODEL m, TABLE p{})",
}
#: Functions above that time series models answer with parameters of their own, called on ts.
SERIES_CALLS = {"EVALUATE": "ML.EVALUATE(MODEL ts{})", "DETECT_ANOMALIES": "ML.DETECT_ANOMALIES(MODEL ts{})"}


#: Functions that refuse to run without one of their parameters (as BigQuery does), and that parameter.
REQUIRED = {"FAIRNESS": "sensitive_col", "DETECT_ANOMALIES": "contamination"}


def outcome(conn, sql: str) -> tuple:
    """('rows', the rows) or ('error', its class and message): what a statement gives."""
    try:
        return "rows", conn.sql(sql).fetchall()
    except SqlmlError as e:
        return "error", type(e).__name__, str(e)


def test_every_function_with_parameters_is_called_here():
    assert set(CALLS) == {f for f, params in catalog.PARAMETERS.items() if params}


@pytest.mark.parametrize("function, call", [*sorted(CALLS.items()), *sorted(SERIES_CALLS.items())],
                         ids=[*sorted(CALLS), *(f"{f}_time_series" for f in sorted(SERIES_CALLS))])
def test_null_parameters_mean_their_defaults(db, unchanged, function, call):
    """Every parameter of ``function`` given as NULL gives what leaving them all out gives: rows, or the
    same sqlml error (ML.FAIRNESS refuses to run without its sensitive_col either way, ML.DETECT_ANOMALIES of a
    PCA model without its contamination)."""
    nulls = ", ".join(f"NULL AS {name}" for name in catalog.PARAMETERS[function])
    given = outcome(db, "SELECT * FROM " + call.format(f", STRUCT({nulls})"))
    default = outcome(db, "SELECT * FROM " + call.format(""))
    assert given == default
    required = REQUIRED.get(function) if call == CALLS[function] else None
    assert given[0] == "rows" if required is None else required in given[2]


def test_null_challenger_fraction_is_plain_predict_and_null_split_key_is_refused(db, unchanged):
    plain = db.sql("SELECT * FROM ML.PREDICT(MODEL m, TABLE p) ORDER BY id").fetchall()
    null_fraction = ", STRUCT(NULL AS challenger_fraction, 'id' AS split_key)"
    assert db.sql(f"SELECT * FROM ML.PREDICT(MODEL m, TABLE p{null_fraction}) ORDER BY id").fetchall() == plain
    db.sql(f"CREATE OR REPLACE VIEW plain AS SELECT * FROM ML.PREDICT(MODEL m, TABLE p{null_fraction})")
    assert db.sql("SELECT * FROM plain ORDER BY id").fetchall() == plain
    db.sql("DROP VIEW plain")
    with pytest.raises(DataError, match="A/B serving needs split_key, a column of the input whose hash decides each "
                                        "row's arm; got None"):
        db.sql("SELECT * FROM ML.PREDICT(MODEL m, TABLE p, STRUCT(0.5 AS challenger_fraction, NULL AS split_key))")
    with pytest.raises(SqlmlError, match="A/B serving needs split_key"):
        db.sql("CREATE VIEW ab AS SELECT * FROM ML.PREDICT(MODEL m, TABLE p, STRUCT(0.5 AS challenger_fraction, "
               "NULL AS split_key))")


def test_null_top_k_is_the_default_and_a_bad_value_is_refused(db, unchanged):
    queue = db.sql("SELECT id FROM ML.REVIEW_QUEUE(MODEL m, TABLE p, STRUCT(NULL AS top_k))").fetchall()
    assert queue == db.sql("SELECT id FROM ML.REVIEW_QUEUE(MODEL m, TABLE p)").fetchall() and len(queue) == 100
    with pytest.raises(ParameterError, match=r"The 'top_k' parameter of ML.REVIEW_QUEUE must be an integer in the "
                                             r"range \[1, inf\]. Got 0"):
        db.sql("SELECT * FROM ML.REVIEW_QUEUE(MODEL m, TABLE p, STRUCT(0 AS top_k))")
    with pytest.raises(ParameterError, match="must be an array of numbers in the range"):
        db.sql("SELECT * FROM ML.ROC_CURVE(MODEL m, TABLE p, STRUCT([0.5, NULL] AS thresholds))")


# --- drift on extreme and unusual types ------------------------------------------------------------------

def drift(conn, base: str, study: str, struct: str = "") -> list[dict]:
    return conn.sql(f"SELECT * FROM ML.VALIDATE_DATA_DRIFT(({base}), ({study}){struct})").to_arrow_table().to_pylist()


def test_drift_over_the_whole_double_range(db, unchanged):
    """Values from -1e308 to 1e308: the range is wider than the largest double, yet cut into 10 equal
    buckets (each 2e307 wide). Both sides have the same ends, so the histograms share their edges and
    the distance is the Jensen-Shannon divergence of the bucket counts (SciPy's, base 2, squared)."""
    base = [-1e308, -7e307, -1e307, 0.0, 3e307, 1e308]
    study = [-1e308, 9.5e307, 9.9e307, 1e308]
    rows = drift(db, " UNION ALL ".join(f"SELECT {v!r}::DOUBLE AS x" for v in base),
                 " UNION ALL ".join(f"SELECT {v!r}::DOUBLE AS x" for v in study))
    edges = np.linspace(-1.0, 1.0, 11)  # in units of 1e308, where the width is finite
    p = np.histogram(np.array(base) / 1e308, bins=edges)[0]
    q = np.histogram(np.array(study) / 1e308, bins=edges)[0]
    assert rows == [{"input": "x", "metric": "JENSEN_SHANNON_DIVERGENCE", "threshold": 0.3,
                     "value": pytest.approx(jensenshannon(p, q, base=2) ** 2, rel=1e-12), "is_anomaly": True}]
    same = drift(db, " UNION ALL ".join(f"SELECT {v!r}::DOUBLE AS x" for v in base),
                 " UNION ALL ".join(f"SELECT {v!r}::DOUBLE AS x" for v in reversed(base)))
    assert same[0]["value"] == 0.0 and same[0]["is_anomaly"] is False


@pytest.mark.parametrize("sql_type, description", [
    ("INTERVAL", "month_day_nano_interval"), ("BLOB", "binary"), ("INTEGER[]", "list<"), ("STRUCT(a INTEGER)", "struct<"),
])
def test_drift_refuses_a_type_without_statistics_by_name(db, unchanged, sql_type, description):
    value = {"INTERVAL": "INTERVAL 3 DAY", "BLOB": "'\\x01'::BLOB", "INTEGER[]": "[1, 2]",
             "STRUCT(a INTEGER)": "{'a': 1}"}[sql_type]
    with pytest.raises(DataError, match=rf"Column 'x' is neither a number nor a string, boolean, date or time: its "
                                        rf"type is {description}.* which ML.VALIDATE_DATA_DRIFT cannot compare"):
        drift(db, f"SELECT {value}::{sql_type} AS x, 1 AS y", f"SELECT {value}::{sql_type} AS x, 2 AS y")
    with pytest.raises(DataError, match=rf"Column 'bill_length_mm' is .* its type is {description}.*"
                                        r"ML.VALIDATE_DATA_SKEW"):
        db.sql(f"SELECT * FROM ML.VALIDATE_DATA_SKEW(MODEL m, (SELECT * REPLACE ({value}::{sql_type} AS bill_length_mm) "
               "FROM p))")


def test_drift_compares_hugeint_uuid_and_time_as_their_numbers_and_values(db, unchanged):
    """HUGEINT is a number (as its DOUBLE would be), UUID and TIME are values (L-infinity of their shares)."""
    hugeint = drift(db, "SELECT (range * 1e30)::HUGEINT AS x FROM range(10)", "SELECT (range * 2e30)::HUGEINT AS x FROM range(10)")
    as_double = drift(db, "SELECT range * 1e30 AS x FROM range(10)", "SELECT range * 2e30 AS x FROM range(10)")
    assert hugeint == as_double and 0 < hugeint[0]["value"] < 1
    uuids = ["'00000000-0000-0000-0000-00000000000%d'::UUID" % i for i in range(5)]
    moved = drift(db, " UNION ALL ".join(f"SELECT {u} AS x" for u in uuids[:3]),  # 1/3 each
                  " UNION ALL ".join(f"SELECT {u} AS x" for u in (uuids[0], uuids[3], uuids[4], uuids[4])))
    assert moved[0]["metric"] == "L_INFTY" and moved[0]["value"] == pytest.approx(1 / 2)  # |0 - 2/4| for uuids[4]
    times = drift(db, "SELECT TIME '10:00' AS x UNION ALL SELECT TIME '11:00'", "SELECT TIME '10:00' AS x")
    assert times[0]["value"] == pytest.approx(1 / 2)  # 10:00 is 1/2 of the base and all of the study


# --- infinite times in monitoring over time --------------------------------------------------------------

@pytest.mark.parametrize("infinite", ["'infinity'::TIMESTAMP", "'-infinity'::TIMESTAMP", "'infinity'::DATE"])
def test_an_infinite_time_starts_no_window(db, unchanged, infinite):
    rows = f"(SELECT * REPLACE (CASE WHEN id = 7 THEN {infinite} ELSE day END AS day) FROM p)"
    for function in ("EVALUATE", "ESTIMATE_PERFORMANCE"):
        with pytest.raises(DataError, match=r"time_column 'day' holds a time outside the years 1 to 9999 \(such as "
                                            r"'infinity'\), which starts no month: leave such rows out of the input, "
                                            r"e.g. WHERE isfinite\(day\)"):
            db.sql(f"SELECT * FROM ML.{function}(MODEL m, {rows}, STRUCT('day' AS time_column))")
    finite = f"(SELECT * FROM {rows} WHERE isfinite(day))"
    windows = db.sql(f"SELECT window_start FROM ML.EVALUATE(MODEL m, {finite}, STRUCT('day' AS time_column, "
                     "'year' AS time_window)) ORDER BY window_start").fetchall()
    years = db.sql(f"SELECT DISTINCT year(day) FROM {finite} WHERE sex IS NOT NULL ORDER BY 1").fetchall()
    assert [w[0].year for w in windows] == [y[0] for y in years] and len(years) == 3


def test_the_last_day_of_year_9999_still_starts_a_window(db, unchanged):
    out = db.sql("SELECT window_start, row_count FROM ML.EVALUATE(MODEL m, (SELECT * REPLACE (TIMESTAMP "
                 "'9999-12-31 23:59:59.999999' AS day) FROM p), STRUCT('day' AS time_column, 'week' AS time_window))"
                 ).fetchall()
    labelled = db.sql("SELECT count(sex) FROM p").fetchall()[0][0]
    assert [(str(r[0]), r[1]) for r in out] == [("9999-12-27 00:00:00", labelled)]  # a Monday


# --- options refused at CREATE / ALTER, before anything is stored -----------------------------------------

@pytest.mark.parametrize("moment", ["TIMESTAMP '9999-12-31 23:59:59 America/Los_Angeles'",
                                    "TIMESTAMP '0001-01-01 00:00:00 Asia/Tokyo'", "'10000-01-01'",
                                    "'infinity'::TIMESTAMP", "'-infinity'"])
def test_an_extreme_expiration_is_refused_with_the_range(db, unchanged, moment):
    message = r"The 'expiration_timestamp' option must be a moment from 0001-01-01 to 9999-12-31 UTC"
    with pytest.raises(OptionError, match=message):
        db.sql(f"ALTER MODEL m SET OPTIONS (expiration_timestamp = {moment})")
    with pytest.raises(OptionError, match=message):
        db.sql("CREATE MODEL n OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex'], "
               f"expiration_timestamp = {moment}) AS SELECT * FROM p")


def test_the_latest_expiration_bigquery_stores_is_kept(db):
    db.sql("CREATE MODEL late OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex'], expiration_timestamp = "
           "TIMESTAMP '9999-12-31 23:59:59.999999') AS SELECT island, sex FROM p")
    options = db.sql("SELECT options->>'expiration_timestamp' FROM sqlml.models WHERE name = 'late'").fetchall()
    assert options == [("9999-12-31T23:59:59.999999+00:00",)]
    assert db.sql("SELECT count(*) FROM ML.PREDICT(MODEL late, TABLE p)").fetchall() == [(344,)]
    db.sql("DROP MODEL late")


@pytest.mark.parametrize("model_type, metric, message", [
    ("logistic_reg", "rocauc", "primary_metric 'rocauc' is not a metric of a classification model (logistic_reg). Did you "
                               "mean 'roc_auc'? Valid primary metrics: roc_auc, pr_auc, log_loss, f1_score, precision, "
                               "recall, accuracy."),
    ("linear_reg", "roc_auc", "primary_metric 'roc_auc' is not a metric of a regression model (linear_reg). Valid primary "
                              "metrics: r2_score, mean_absolute_error, mean_squared_error, mean_squared_log_error, "
                              "median_absolute_error, explained_variance."),
])
def test_an_unknown_primary_metric_is_refused_at_create(db, unchanged, model_type, metric, message):
    label = "sex" if model_type == "logistic_reg" else "body_mass_g"
    with pytest.raises(OptionError) as refused:
        db.sql(f"CREATE MODEL n OPTIONS (model_type = '{model_type}', input_label_cols = ['{label}'], "
               f"primary_metric = '{metric}') AS SELECT * FROM p")
    assert str(refused.value) == message


def test_a_primary_metric_of_the_wrong_task_fails_every_auto_trial_by_name(db, unchanged):
    with pytest.raises(DataError, match=r"Every trial failed; trial 1: primary_metric 'r2_score' is not a metric of a "
                                        r"classification model \(logistic_reg\)"):
        db.sql("CREATE MODEL n OPTIONS (model_type = 'auto', input_label_cols = ['sex'], primary_metric = 'r2_score', "
               "max_trials = 1) AS SELECT * EXCLUDE (id, day) FROM p")


def test_a_primary_metric_is_read_in_any_case(db):
    """Stored as the metric's name, so monitoring over time (which judges on the option) reads it."""
    db.sql("CREATE MODEL cased OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex'], primary_metric = "
           "'ACCURACY') AS SELECT island, sex FROM p")
    judged = db.sql("SELECT DISTINCT primary_metric FROM ML.EVALUATE(MODEL cased, TABLE p, STRUCT('day' AS "
                    "time_column, 'year' AS time_window))").fetchall()
    db.sql("DROP MODEL cased")
    assert judged == [("accuracy",)]
