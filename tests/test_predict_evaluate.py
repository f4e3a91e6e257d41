"""ML.PREDICT and ML.EVALUATE against scikit-learn on the same rows, on real data."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import held_out, same_predictions
from sklearn import metrics as skm
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

FEATURES = ["species", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "sex"]
NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm"]
CATEGORICAL = ["species", "island", "sex"]


def bigquery_preprocessing():
    """BigQuery's automatic preprocessing written by hand with scikit-learn: mean-impute and
    standardize numbers; one-hot strings with NULL as its own category, unseen → all zeros."""
    return ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), NUMERIC),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL),
    ])


def penguin_frame(conn, where="body_mass_g IS NOT NULL"):
    frame = conn.sql(f"SELECT * FROM penguins WHERE {where}").df()
    frame[CATEGORICAL] = frame[CATEGORICAL].astype(object).where(frame[CATEGORICAL].notna(), "__NULL__")
    return frame


def test_penguins_tutorial_reproduces_bigquery(penguins):
    """BigQuery's published ML.EVALUATE for the penguins linear regression: MAE 227.01, r2 0.8723."""
    penguins.sql("""CREATE MODEL penguins_model OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g'])
                    AS SELECT * EXCLUDE (year) FROM penguins WHERE body_mass_g IS NOT NULL""")
    row = penguins.sql("SELECT * FROM ML.EVALUATE(MODEL penguins_model)").df().iloc[0]
    assert row.mean_absolute_error == pytest.approx(227.01, rel=0.01)
    assert row.r2_score == pytest.approx(0.8723, rel=0.01)
    assert row.mean_squared_error == pytest.approx(81838.16, rel=0.01)


def test_linear_predictions_equal_sklearn_pipeline_row_by_row(penguins):
    penguins.sql("""CREATE MODEL m OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g'])
                    AS SELECT * EXCLUDE (year) FROM penguins WHERE body_mass_g IS NOT NULL""")
    ours = penguins.sql("SELECT predicted_body_mass_g FROM ML.PREDICT(MODEL m, (SELECT * FROM penguins WHERE body_mass_g IS NOT NULL))").df()
    frame = penguin_frame(penguins)
    pipeline = make_pipeline(bigquery_preprocessing(), LinearRegression()).fit(frame[FEATURES], frame["body_mass_g"])
    np.testing.assert_allclose(ours.predicted_body_mass_g, pipeline.predict(frame[FEATURES]), rtol=1e-9)


def test_logistic_probabilities_equal_sklearn_pipeline_row_by_row(penguins):
    penguins.sql("""CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['species'], l2_reg = 1.0)
                    AS SELECT * EXCLUDE (year, body_mass_g) FROM penguins""")
    frame = penguin_frame(penguins, "TRUE")
    features = [f for f in FEATURES if f != "species"]
    pre = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), NUMERIC),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["island", "sex"]),
    ])
    pipeline = make_pipeline(pre, LogisticRegression(C=1.0, max_iter=1000)).fit(frame[features], frame["species"])
    ours = penguins.sql("SELECT predicted_species, predicted_species_probs FROM ML.PREDICT(MODEL m, TABLE penguins)").df()
    expected = pipeline.predict_proba(frame[features])
    got = np.array([[p["prob"] for p in probs] for probs in ours.predicted_species_probs])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert list(ours.predicted_species) == list(pipeline.predict(frame[features]))
    assert [p["label"] for p in ours.predicted_species_probs[0]] == ["Adelie", "Chinstrap", "Gentoo"]


FLIGHT_NUMBERS = ["month", "day", "dep_delay", "sched_dep_time", "distance", "hour"]
FLIGHT_CATEGORIES = ["carrier", "origin", "dest"]


def test_logistic_on_mostly_one_hot_data_equals_sklearns_sparse_pipeline(flights):
    """Nine columns become ~130 features, 93 % zeros: sqlml fits on CSR, as scikit-learn's own
    ColumnTransformer does at this density, and must land on the same model."""
    flights.sql("""CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late'], l2_reg = 1.0,
                   data_split_method = 'NO_SPLIT') AS SELECT * FROM flights WHERE month <= 6""")
    frame = flights.sql("SELECT * FROM flights WHERE month <= 6").df()
    pre = ColumnTransformer([("num", StandardScaler(), FLIGHT_NUMBERS),
                             ("cat", OneHotEncoder(handle_unknown="ignore"), FLIGHT_CATEGORIES)])
    pipeline = make_pipeline(pre, LogisticRegression(C=1.0, max_iter=1000)).fit(frame, frame.is_late)
    assert pipeline[0].sparse_output_  # the floor this matches is the sparse one
    ours = flights.sql("SELECT predicted_is_late_probs FROM ML.PREDICT(MODEL m, (SELECT * FROM flights WHERE month <= 6))").df()
    np.testing.assert_allclose([probs[1]["prob"] for probs in ours.predicted_is_late_probs],
                               pipeline.predict_proba(frame)[:, 1], atol=1e-6)


def test_sparse_matrix_equals_the_dense_one_with_nulls_and_unseen_categories(flights):
    from sqlml.model.preprocess import Preprocessor
    training = flights.duckdb.sql("SELECT * EXCLUDE (is_late) FROM flights WHERE month <= 6").to_arrow_table()
    prep = Preprocessor.fit(training, FLIGHT_NUMBERS + FLIGHT_CATEGORIES, "onehot", True)
    assert prep.sparse_pays()
    later = flights.duckdb.sql("""SELECT * REPLACE (IF(day = 1, NULL, dep_delay) AS dep_delay,
                                                    IF(hour = 6, 'XX', carrier) AS carrier, IF(hour = 7, NULL, dest) AS dest)
                                  FROM flights WHERE month > 6""").to_arrow_table()
    assert later["dep_delay"].null_count and later["dest"].null_count and "XX" in later["carrier"].to_pylist()
    np.testing.assert_array_equal(prep.transform_sparse(later).toarray(), prep.transform(later))


def test_unseen_category_contributes_nothing(penguins):
    penguins.sql("""CREATE MODEL m OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g'])
                    AS SELECT * EXCLUDE (year) FROM penguins WHERE body_mass_g IS NOT NULL""")
    weights = {r[0]: r for r in penguins.sql("SELECT * FROM ML.WEIGHTS(MODEL m, STRUCT(TRUE AS standardize))").fetchall()}
    base = "SELECT 'Adelie' AS species, 'Mars' AS island, 40.0 AS bill_length_mm, 18.0 AS bill_depth_mm, 190.0 AS flipper_length_mm, 'male' AS sex"
    unseen = penguins.sql(f"SELECT predicted_body_mass_g FROM ML.PREDICT(MODEL m, ({base}))").fetchall()[0][0]
    biscoe = penguins.sql(f"SELECT predicted_body_mass_g FROM ML.PREDICT(MODEL m, ({base.replace('Mars', 'Biscoe')}))").fetchall()[0][0]
    biscoe_weight = [c["weight"] for c in weights["island"][2] if c["category"] == "Biscoe"][0]
    assert biscoe - unseen == pytest.approx(biscoe_weight, rel=1e-9)


@pytest.mark.parametrize("model_type, size", [("logistic_reg", "max_iterations = 200"), ("boosted_tree_classifier", "max_iterations = 30"),
                                              ("random_forest_classifier", "num_parallel_tree = 30"), ("dnn_classifier", "max_iterations = 30")])
def test_evaluate_equals_sklearn_metrics_on_predict_output(flights, model_type, size):
    flights.sql(f"""CREATE MODEL m OPTIONS (model_type = '{model_type}', input_label_cols = ['is_late'], random_seed = 7,
                    {size}) AS SELECT * FROM flights WHERE month = 1""")
    data = "(SELECT * FROM flights WHERE month = 2)"
    row = flights.sql(f"SELECT * FROM ML.EVALUATE(MODEL m, {data})").df().iloc[0]
    predicted = flights.sql(f"SELECT is_late, predicted_is_late, predicted_is_late_probs FROM ML.PREDICT(MODEL m, {data})").df()
    y, p = predicted.is_late.astype(int), predicted.predicted_is_late.astype(int)
    score = np.array([probs[1]["prob"] for probs in predicted.predicted_is_late_probs])
    assert [probs[1]["label"] for probs in predicted.predicted_is_late_probs[:1]] == [True]
    assert row.accuracy == pytest.approx(skm.accuracy_score(y, p))
    assert row.precision == pytest.approx(skm.precision_score(y, p, zero_division=0))
    assert row.recall == pytest.approx(skm.recall_score(y, p))
    assert row.f1_score == pytest.approx(skm.f1_score(y, p))
    assert row.roc_auc == pytest.approx(skm.roc_auc_score(y, score))
    assert row.log_loss == pytest.approx(skm.log_loss(y, score))
    assert row.roc_auc > 0.7  # dep_delay is in the features: a working model separates well


def test_threshold_changes_predictions(flights):
    flights.sql("CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late']) AS SELECT * FROM flights")
    rows = flights.sql("""SELECT predicted_is_late, predicted_is_late_probs[2].prob AS p
                          FROM ML.PREDICT(MODEL m, TABLE flights, STRUCT(0.2 AS threshold))""").df()
    assert (rows.predicted_is_late == (rows.p >= 0.2)).all()
    assert rows.predicted_is_late.sum() > (rows.p >= 0.5).sum()


@pytest.mark.parametrize("model_type", ["linear_reg", "boosted_tree_regressor", "random_forest_regressor", "dnn_regressor"])
def test_regression_metrics_equal_sklearn(penguins, model_type):
    penguins.sql(f"""CREATE MODEL m OPTIONS (model_type = '{model_type}', input_label_cols = ['body_mass_g'], random_seed = 3)
                     AS SELECT * EXCLUDE (year) FROM penguins WHERE body_mass_g IS NOT NULL AND year < 2009""")
    data = "(SELECT * EXCLUDE (year) FROM penguins WHERE body_mass_g IS NOT NULL AND year = 2009)"
    row = penguins.sql(f"SELECT * FROM ML.EVALUATE(MODEL m, {data})").df().iloc[0]
    out = penguins.sql(f"SELECT body_mass_g, predicted_body_mass_g FROM ML.PREDICT(MODEL m, {data})").df()
    y, p = out.body_mass_g, out.predicted_body_mass_g
    assert row.mean_absolute_error == pytest.approx(skm.mean_absolute_error(y, p))
    assert row.mean_squared_error == pytest.approx(skm.mean_squared_error(y, p))
    assert row.mean_squared_log_error == pytest.approx(skm.mean_squared_log_error(y, p))
    assert row.median_absolute_error == pytest.approx(skm.median_absolute_error(y, p))
    assert row.r2_score == pytest.approx(skm.r2_score(y, p))
    assert row.explained_variance == pytest.approx(skm.explained_variance_score(y, p))
    assert row.r2_score > 0.7


def test_kmeans_predict_and_evaluate(penguins):
    penguins.sql("""CREATE MODEL km OPTIONS (model_type = 'kmeans', num_clusters = 3, random_seed = 1)
                    AS SELECT bill_length_mm, flipper_length_mm FROM penguins""")
    out = penguins.sql("SELECT centroid_id, nearest_centroids_distance FROM ML.PREDICT(MODEL km, TABLE penguins)").df()
    assert set(out.centroid_id) == {1, 2, 3}
    for cid, distances in zip(out.centroid_id, out.nearest_centroids_distance):
        assert distances[0]["centroid_id"] == cid
        assert [d["distance"] for d in distances] == sorted(d["distance"] for d in distances)
    row = penguins.sql("SELECT * FROM ML.EVALUATE(MODEL km, TABLE penguins)").df().iloc[0]
    nearest = np.array([d[0]["distance"] for d in out.nearest_centroids_distance])
    assert row.mean_squared_distance == pytest.approx(np.mean(nearest ** 2))


def test_confusion_matrix_and_roc_curve_equal_sklearn(flights):
    flights.sql("CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late']) AS SELECT * FROM flights")
    out = flights.sql("SELECT is_late, predicted_is_late, predicted_is_late_probs[2].prob AS p FROM ML.PREDICT(MODEL m, TABLE flights)").df()
    matrix = flights.sql("SELECT * FROM ML.CONFUSION_MATRIX(MODEL m, TABLE flights)").df()
    assert list(matrix.columns) == ["expected_label", "false", "true"]  # booleans are named, not numbered like _0, _1
    assert list(matrix.expected_label) == [False, True]
    expected = skm.confusion_matrix(out.is_late, out.predicted_is_late, labels=[False, True])
    np.testing.assert_array_equal(matrix.iloc[:, 1:].to_numpy(), expected)
    roc = flights.sql("SELECT * FROM ML.ROC_CURVE(MODEL m, TABLE flights, GENERATE_ARRAY(0.1, 0.9, 0.2))").df()
    for row in roc.itertuples():
        chosen = out.p >= row.threshold
        assert row.true_positives == (chosen & out.is_late).sum()
        assert row.false_positives == (chosen & ~out.is_late).sum()
        assert row.recall == pytest.approx(skm.recall_score(out.is_late, chosen))


def test_predict_composes_with_sql(flights):
    flights.sql("CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late']) AS SELECT * FROM flights")
    direct = flights.sql("SELECT carrier, avg(predicted_is_late::INT) AS r FROM ML.PREDICT(MODEL m, TABLE flights) GROUP BY 1 ORDER BY 1").fetchall()
    via_cte = flights.sql("""WITH scored AS (SELECT * FROM ML.PREDICT(MODEL m, (SELECT * FROM flights)))
                             SELECT c.carrier, avg(s.predicted_is_late::INT) AS r FROM scored AS s
                             JOIN (SELECT DISTINCT carrier FROM flights) AS c ON c.carrier = s.carrier
                             WHERE TRUE GROUP BY 1 ORDER BY 1""").fetchall()
    assert direct == via_cte
    flights.sql("CREATE TABLE scored AS SELECT * FROM ML.PREDICT(MODEL m, TABLE flights) WHERE origin = 'JFK'")
    assert flights.sql("SELECT count(*) FROM scored").fetchall()[0][0] == flights.sql("SELECT count(*) FROM flights WHERE origin = 'JFK'").fetchall()[0][0]


def test_view_over_predict_scores_lazily_and_in_a_later_session(tmp_path, monkeypatch):
    import sqlml
    from sqlml import datasets
    path = str(tmp_path / "views.duckdb")
    with sqlml.connect(path, progress=lambda m: None) as conn:
        datasets.load(conn.duckdb, "penguins")
        conn.sql("""CREATE MODEL m OPTIONS (model_type = 'boosted_tree_regressor', input_label_cols = ['body_mass_g'])
                    AS SELECT * EXCLUDE (year) FROM penguins WHERE body_mass_g IS NOT NULL""")
        conn.sql("CREATE VIEW scored AS SELECT * FROM ML.PREDICT(MODEL m, TABLE penguins)")
        eager = conn.sql("SELECT predicted_body_mass_g FROM ML.PREDICT(MODEL m, TABLE penguins)").fetchall()
        # XGBoost adds its trees in float32, the view's SQL in doubles (docs/compiled_sql.md, Precision)
        assert same_predictions(conn.sql("SELECT predicted_body_mass_g FROM scored").fetchall(), eager, 1e-6)
    from sqlml.model import loaded as scoring
    monkeypatch.setattr(scoring, "CACHE", scoring.ModelCache())  # a fresh process has no loaded models
    with sqlml.connect(path) as conn:
        assert same_predictions(conn.sql("SELECT predicted_body_mass_g FROM scored").fetchall(), eager, 1e-6)


def test_view_outlives_the_cursor_that_defined_its_scoring_function():
    """sqlml attached to a cursor that is then closed (as dbt and threaded notebooks do): the view over
    ML.PREDICT keeps scoring from the parent connection, follows ALTER MODEL run on yet another cursor,
    and still scores once every cursor is closed and no model is loaded (the function holds its
    version's bytes). Run in a child process: a freed scoring function used to crash the interpreter."""
    script = textwrap.dedent("""
        import gc, duckdb, sqlml
        from sqlml import datasets
        from sqlml.model import loaded as scoring
        parent = duckdb.connect()
        datasets.load(parent, "penguins")
        cursor = parent.cursor()
        attached = sqlml.register(cursor)
        attached.sql("CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex']) "
                     "AS SELECT * EXCLUDE (year) FROM penguins WHERE sex IS NOT NULL")
        attached.sql("CREATE VIEW v AS SELECT * FROM ML.PREDICT(MODEL m, TABLE penguins)")
        eager = attached.sql("SELECT predicted_sex, predicted_sex_probs[2].prob FROM ML.PREDICT(MODEL m, TABLE penguins)").fetchall()
        cursor.close(); del attached, cursor; gc.collect()
        viewed = parent.sql("SELECT predicted_sex, predicted_sex_probs[2].prob FROM v").fetchall()
        print(all(a[0] == b[0] and abs(a[1] - b[1]) < 1e-9 for a, b in zip(viewed, eager)) and len(viewed) == len(eager))
        other = parent.cursor()
        sqlml.register(other).sql("ALTER MODEL m SET OPTIONS (threshold = 0.9)")
        print(parent.sql("SELECT bool_and((predicted_sex = 'male') = (predicted_sex_probs[2].prob >= 0.9)) FROM v").fetchall())
        other.close(); del other; gc.collect()
        scoring.CACHE._models.clear()
        print(parent.sql("SELECT count(predicted_sex) FROM v").fetchall())
        sqlml.register(parent)
        print(parent.sql("SELECT count(predicted_sex) FROM v").fetchall())
    """)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ})
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.splitlines() == ["True", "[(True,)]", "[(344,)]", "[(344,)]"]


def test_view_in_an_attached_database_loads_its_model_from_there(tmp_path):
    """Scoring functions load model bytes through cursors of their own, which start in the default
    database: they must look for the registry where the model was trained."""
    import duckdb

    import sqlml
    from sqlml import datasets
    parent = duckdb.connect()
    parent.execute(f"ATTACH '{tmp_path / 'other.duckdb'}' AS other")
    parent.execute("USE other")
    datasets.load(parent, "penguins")
    attached = sqlml.register(parent)
    attached.sql("CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex'], l2_reg = 0.0123) "
                 "AS SELECT * EXCLUDE (year) FROM penguins WHERE sex IS NOT NULL")  # an option no other test uses: not cached yet
    attached.sql("CREATE VIEW v AS SELECT * FROM ML.PREDICT(MODEL m, TABLE penguins)")
    attached.sql("ALTER MODEL m SET OPTIONS (threshold = 0.9)")
    eager = attached.sql("SELECT predicted_sex, predicted_sex_probs FROM ML.PREDICT(MODEL m, TABLE penguins)").fetchall()
    parent.execute("USE memory")
    assert same_predictions(parent.sql("SELECT predicted_sex, predicted_sex_probs FROM other.v").fetchall(), eager)
    male = [probs[1]["prob"] for _, probs in eager]
    assert all((sex == "male") == (p >= 0.9) for (sex, _), p in zip(eager, male))
    assert any(0.5 <= p < 0.9 for p in male)  # the altered threshold decides some rows
    parent.close()


def test_versions_and_version_selection(penguins):
    for depth in (1, 6):
        penguins.sql(f"""CREATE OR REPLACE MODEL m OPTIONS (model_type = 'boosted_tree_regressor', max_tree_depth = {depth},
                         input_label_cols = ['body_mass_g']) AS SELECT * EXCLUDE (year) FROM penguins WHERE body_mass_g IS NOT NULL""")
    v1 = penguins.sql("SELECT r2_score FROM ML.EVALUATE(MODEL m VERSION 1)").fetchall()[0][0]
    latest = penguins.sql("SELECT r2_score FROM ML.EVALUATE(MODEL m)").fetchall()[0][0]
    stored = dict(penguins.sql("SELECT version, (metrics->>'r2_score')::DOUBLE FROM sqlml.models WHERE name = 'm'").fetchall())
    assert stored == {1: pytest.approx(v1), 2: pytest.approx(latest)}
    assert latest > v1


def test_auto_split_thresholds(conn):
    conn.sql("CREATE TABLE small AS SELECT range::DOUBLE AS x, range * 2.0 AS label FROM range(499)")
    conn.sql("CREATE TABLE mid AS SELECT range::DOUBLE AS x, range * 2.0 AS label FROM range(1000)")
    conn.sql("CREATE TABLE big AS SELECT range::DOUBLE AS x, range * 2.0 AS label FROM range(60000)")
    for table in ("small", "mid", "big"):
        conn.sql(f"CREATE MODEL {table}_m OPTIONS (model_type = 'linear_reg') AS SELECT * FROM {table}")
    rows = dict(conn.sql("SELECT name, [training_rows, eval_rows] FROM sqlml.models").fetchall())
    assert rows["small_m"] == [499, 499]  # no split: evaluated on the training rows
    for name, n, share in (("mid", 1000, 0.2), ("big", 60000, 10_000 / 60_000)):
        held = held_out(conn.duckdb.sql(f"SELECT * FROM {name}").to_arrow_table())
        assert rows[f"{name}_m"] == [n - len(held), len(held)]
        assert abs(len(held) - n * share) < 4 * np.sqrt(n * share * (1 - share))  # within sampling error


def test_random_split_is_the_same_every_time_unless_random_seed_changes_it(flights, random_split):
    """Versions of a model must be evaluated on the same rows to be compared: the split is seeded
    (``sqlml.train.sample.DATA_SEED``, 0) when random_seed is not given. ML.EVALUATE without data is
    sklearn.metrics of exactly the rows that rule holds out."""
    train = "SELECT * FROM flights WHERE month <= 3"
    for name, seed in [("a", ""), ("b", ""), ("c", ", random_seed = 7")]:
        flights.sql(f"CREATE MODEL {name} OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late']{seed}) AS {train}")
    metrics = {name: flights.sql(f"SELECT * FROM ML.EVALUATE(MODEL {name})").fetchall()[0] for name in "abc"}
    assert metrics["a"] == metrics["b"]  # lbfgs is deterministic: same split, same model, same metrics
    assert metrics["a"] != metrics["c"]
    table = flights.duckdb.sql(train).to_arrow_table()
    for name, seed in (("a", None), ("c", 7)):
        training, evaluation = random_split(table, seed=seed)  # AUTO_SPLIT, ~5,000 rows: 20 % held out
        assert abs(len(evaluation) - 0.2 * table.num_rows) < 4 * np.sqrt(table.num_rows * 0.2 * 0.8)
        stored = flights.sql(f"SELECT training_rows, eval_rows FROM sqlml.models WHERE name = '{name}'").fetchall()
        assert stored == [(len(training), len(evaluation))]
        flights.duckdb.register("held_out", table.take(evaluation))
        out = flights.sql(f"SELECT is_late, predicted_is_late, predicted_is_late_probs[2].prob AS p "
                          f"FROM ML.PREDICT(MODEL {name}, TABLE held_out)").df()
        flights.duckdb.unregister("held_out")
        row = flights.sql(f"SELECT accuracy, log_loss, roc_auc FROM ML.EVALUATE(MODEL {name})").fetchall()[0]
        assert row == (pytest.approx(skm.accuracy_score(out.is_late, out.predicted_is_late), rel=1e-12),
                       pytest.approx(skm.log_loss(out.is_late, out.p), rel=1e-9),
                       pytest.approx(skm.roc_auc_score(out.is_late, out.p), rel=1e-9))


def test_seq_and_custom_split(conn):
    conn.sql("CREATE TABLE t AS SELECT range::DOUBLE AS x, range * 2.0 AS label, range AS ts, range % 4 = 0 AS is_eval FROM range(1000)")
    conn.sql("""CREATE MODEL seq OPTIONS (model_type = 'linear_reg', data_split_method = 'SEQ', data_split_col = 'ts',
                data_split_eval_fraction = 0.1) AS SELECT * EXCLUDE (is_eval) FROM t""")
    conn.sql("""CREATE MODEL custom OPTIONS (model_type = 'linear_reg', data_split_method = 'CUSTOM', data_split_col = 'is_eval')
                AS SELECT * EXCLUDE (ts) FROM t""")
    rows = dict(conn.sql("SELECT name, [training_rows, eval_rows] FROM sqlml.models").fetchall())
    assert rows == {"seq": [900, 100], "custom": [750, 250]}
    features = [r[0] for r in conn.sql("SELECT input FROM ML.FEATURE_INFO(MODEL custom)").fetchall()]
    assert features == ["x"]  # the CUSTOM split column is not a feature


def test_feature_info_and_training_info(penguins):
    penguins.sql("""CREATE MODEL m OPTIONS (model_type = 'boosted_tree_regressor', input_label_cols = ['body_mass_g'], max_iterations = 7,
                    early_stop = FALSE) AS SELECT * EXCLUDE (year) FROM penguins WHERE body_mass_g IS NOT NULL""")
    info = penguins.sql("SELECT * FROM ML.FEATURE_INFO(MODEL m)").df().set_index("input")
    frame = penguins.sql("SELECT * FROM penguins WHERE body_mass_g IS NOT NULL").df()
    assert info.loc["bill_length_mm", "mean"] == pytest.approx(frame.bill_length_mm.mean())
    assert info.loc["bill_length_mm", "stddev"] == pytest.approx(frame.bill_length_mm.std())
    assert info.loc["bill_length_mm", "min"] == frame.bill_length_mm.min()
    assert info.loc["bill_length_mm", "median"] == frame.bill_length_mm.median()
    assert info.loc["sex", "null_count"] == frame.sex.isna().sum()
    assert info.loc["island", "category_count"] == frame.island.nunique()
    training = penguins.sql("SELECT * FROM ML.TRAINING_INFO(MODEL m)").df()
    assert list(training.iteration) == list(range(7))
    assert training.loss.is_monotonic_decreasing


def test_boosted_training_loss_per_iteration_equals_sklearn_log_loss(penguins):
    """XGBoost records the training loss of every iteration; here it is recomputed from the booster's first
    i trees on all the training rows."""
    import xgboost as xgb
    penguins.sql("""CREATE MODEL c OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['species'],
                    max_iterations = 6, early_stop = FALSE, data_split_method = 'NO_SPLIT') AS SELECT * FROM penguins""")
    model = penguins.executor.load("c")
    rows = penguins.duckdb.sql("SELECT * FROM penguins").to_arrow_table()
    y = np.searchsorted(model.classes, rows["species"].to_pylist())
    types = ["c" if c["kind"] == "categorical" else "q" for c in model.preprocessor.columns]
    data = xgb.DMatrix(model.features(rows), feature_types=types, enable_categorical=True)
    expected = [skm.log_loss(y, model.estimator.booster.predict(data, iteration_range=(0, i)), labels=[0, 1, 2])
                for i in range(1, 7)]
    losses = penguins.sql("SELECT loss FROM ML.TRAINING_INFO(MODEL c) ORDER BY iteration").fetchall()
    assert [loss for (loss,) in losses] == pytest.approx(expected, rel=1e-5)  # XGBoost sums in float32


def test_altered_threshold_reaches_views_and_does_not_leak_between_callers(flights):
    flights.sql("CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late']) AS SELECT * FROM flights")
    flights.sql("CREATE VIEW v AS SELECT predicted_is_late, predicted_is_late_probs[2].prob AS p FROM ML.PREDICT(MODEL m, TABLE flights)")
    flights.sql("ALTER MODEL m SET OPTIONS (threshold = 0.2)")
    eager = flights.sql("SELECT predicted_is_late, predicted_is_late_probs[2].prob AS p FROM ML.PREDICT(MODEL m, TABLE flights)").df()
    assert (eager.predicted_is_late == (eager.p >= 0.2)).all()
    overridden = flights.sql("SELECT predicted_is_late, predicted_is_late_probs[2].prob AS p "
                             "FROM ML.PREDICT(MODEL m, TABLE flights, STRUCT(0.7 AS threshold))").df()
    assert (overridden.predicted_is_late == (overridden.p >= 0.7)).all()
    lazy = flights.sql("SELECT * FROM v").df()  # views follow the version's current threshold
    assert (lazy.predicted_is_late == (lazy.p >= 0.2)).all()
    again = flights.sql("SELECT predicted_is_late, predicted_is_late_probs[2].prob AS p FROM ML.PREDICT(MODEL m, TABLE flights)").df()
    assert (again.predicted_is_late == (again.p >= 0.2)).all()
