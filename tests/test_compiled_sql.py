"""ML.GENERATE_SQL: the compiled SQL, run in DuckDB and in the standard library's SQLite on the same rows,
returns what ML.PREDICT returns, row by row, for every model type (NULLs, categories unseen at training,
TRANSFORM); every dialect's SQL parses back; models that do not compile are refused with a reason."""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3

import numpy as np
import pytest
import sqlglot

import sqlml
from sqlml import datasets
from sqlml.compile import DIALECTS, NotCompilableError, compile_predict, models, trees
from sqlml.errors import DataError, ParameterError

LINEAR_TOLERANCE, OTHER_TOLERANCE = 1e-9, 1e-6

PENGUINS_TRAIN = "SELECT * FROM penguins WHERE year < 2009 AND island <> 'Torgersen'"  # Torgersen: unseen
FLIGHTS_TRAIN = "SELECT * FROM flights_small WHERE carrier NOT IN ('OO', 'HA', 'F9') AND dest NOT IN ('ANC', 'MTJ')"
TRANSFORMED = """TRANSFORM (ML.STANDARD_SCALER(bill_length_mm) OVER () AS bill_length_mm,
                            ML.QUANTILE_BUCKETIZE(flipper_length_mm, 3) OVER () AS flipper_bin,
                            ML.IMPUTER(sex, 'most_frequent') OVER () AS sex, island, body_mass_g, species)"""

#: name → (training query, CREATE MODEL clauses, scored table). Each model type at least once, on penguins
#: (NULLs, an island unseen at training) and flights (NULLs, a boolean feature, unseen carriers and airports).
CASES = {
    "linear_reg": (PENGUINS_TRAIN, "OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g'])",
                   "penguins"),
    "linear_reg_transform": (PENGUINS_TRAIN, f"{TRANSFORMED} OPTIONS (model_type = 'linear_reg', "
                             "input_label_cols = ['body_mass_g'])", "penguins"),
    "logistic_binary": (FLIGHTS_TRAIN, "OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late'])",
                        "flights_small"),
    "logistic_threshold": (FLIGHTS_TRAIN, "OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late'], "
                           "threshold = 0.3)", "flights_small"),
    "logistic_multiclass": (PENGUINS_TRAIN, f"{TRANSFORMED} OPTIONS (model_type = 'logistic_reg', "
                            "input_label_cols = ['species'])", "penguins"),
    "boosted_classifier": (FLIGHTS_TRAIN, "OPTIONS (model_type = 'boosted_tree_classifier', "
                           "input_label_cols = ['is_late'], max_iterations = 30, max_tree_depth = 5)", "flights_small"),
    "boosted_multiclass": (PENGUINS_TRAIN, "OPTIONS (model_type = 'boosted_tree_classifier', "
                           "input_label_cols = ['species'], max_iterations = 10)", "penguins"),
    "boosted_regressor": (PENGUINS_TRAIN, f"{TRANSFORMED} OPTIONS (model_type = 'boosted_tree_regressor', "
                          "input_label_cols = ['body_mass_g'], max_iterations = 15)", "penguins"),
    "boosted_dart": (FLIGHTS_TRAIN, "OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['is_late'], "
                     "booster_type = 'DART', dropout = 0.3, max_iterations = 12, max_tree_depth = 4)", "flights_small"),
    "boosted_exact": (PENGUINS_TRAIN, "OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['species'], "
                      "tree_method = 'EXACT', max_iterations = 10)", "penguins"),
    "forest_classifier": (FLIGHTS_TRAIN, "OPTIONS (model_type = 'random_forest_classifier', input_label_cols = "
                          "['is_late'], num_parallel_tree = 12, max_tree_depth = 6)", "flights_small"),
    "forest_multiclass": (PENGUINS_TRAIN, "OPTIONS (model_type = 'random_forest_classifier', input_label_cols = "
                          "['species'], num_parallel_tree = 10, max_tree_depth = 5)", "penguins"),
    "forest_regressor": (PENGUINS_TRAIN, "OPTIONS (model_type = 'random_forest_regressor', input_label_cols = "
                         "['body_mass_g'], num_parallel_tree = 8, max_tree_depth = 6)", "penguins"),
    "dnn_classifier": (PENGUINS_TRAIN, "OPTIONS (model_type = 'dnn_classifier', input_label_cols = ['species'], "
                       "hidden_units = [8, 4], random_seed = 1)", "penguins"),
    "dnn_binary": (FLIGHTS_TRAIN, "OPTIONS (model_type = 'dnn_classifier', input_label_cols = ['is_late'], "
                   "hidden_units = [6], activation_fn = 'TANH', random_seed = 1)", "flights_small"),
    "dnn_regressor": (PENGUINS_TRAIN, f"{TRANSFORMED} OPTIONS (model_type = 'dnn_regressor', input_label_cols = "
                      "['body_mass_g'], hidden_units = [6], activation_fn = 'SIGMOID', random_seed = 1)", "penguins"),
    "kmeans": (PENGUINS_TRAIN, "OPTIONS (model_type = 'kmeans', num_clusters = 4, random_seed = 1)", "penguins"),
    "pca": (PENGUINS_TRAIN, "OPTIONS (model_type = 'pca', num_principal_components = 3)", "penguins"),
    "pca_unscaled": (PENGUINS_TRAIN, f"{TRANSFORMED} OPTIONS (model_type = 'pca', num_principal_components = 2, "
                     "scale_features = FALSE)", "penguins"),
    "autoencoder": (PENGUINS_TRAIN, "OPTIONS (model_type = 'autoencoder', hidden_units = [6, 2, 6], "
                    "activation_fn = 'TANH', max_iterations = 50, random_seed = 1)", "penguins"),
}
LINEAR_CASES = {"linear_reg", "linear_reg_transform", "logistic_binary", "logistic_threshold", "logistic_multiclass",
                "pca", "pca_unscaled"}


@pytest.fixture(scope="module")
def db():
    """One connection for the module: penguins, 3,000 flights with NULLs and a boolean feature, and a
    SQLite database holding the same rows."""
    conn = sqlml.connect(progress=lambda message: None)
    datasets.load(conn.duckdb, "penguins")
    datasets.load(conn.duckdb, "flights", "all_flights")
    conn.sql("""
        CREATE TABLE flights_small AS
        SELECT month, CASE WHEN row_number() OVER () % 17 = 0 THEN NULL ELSE dep_delay END AS dep_delay,
               sched_dep_time, CASE WHEN row_number() OVER () % 23 = 0 THEN NULL ELSE distance END AS distance,
               carrier, origin, dest, dep_delay > 30 AS late_departure, arr_delay > 15 AS is_late
        FROM (SELECT * FROM all_flights WHERE arr_delay IS NOT NULL AND day = 1 ORDER BY month, sched_dep_time,
              carrier, flight LIMIT 3000)""")
    lite = sqlite3.connect(":memory:")
    for table in ("penguins", "flights_small"):
        relation = conn.duckdb.sql(f"SELECT * FROM {table}")
        lite.execute(f"CREATE TABLE {table} ({', '.join(relation.columns)})")
        lite.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(relation.columns))})", relation.fetchall())
    yield conn, lite
    conn.close()


@pytest.fixture(scope="module")
def trained(db):
    conn, _ = db
    for name, (query, clauses, _) in CASES.items():
        conn.sql(f"CREATE MODEL {name} {clauses} AS {query}")
    return db


def _predicted(conn, name: str, table: str):
    return conn.sql(f"SELECT * FROM ML.PREDICT(MODEL {name}, TABLE {table})").to_arrow_table()


def _generated(conn, name: str, dialect: str, table: str, with_columns: bool) -> str:
    data = f"TABLE {table}, " if with_columns else ""
    ((sql,),) = conn.sql(f"SELECT sql FROM ML.GENERATE_SQL(MODEL {name}, {data}STRUCT('{dialect}' AS dialect, "
                         f"'{table}' AS input_table))").fetchall()
    return sql


def _assert_same_rows(got_names: list[str], got_rows: list[tuple], want, tolerance: float, from_json: bool) -> None:
    """Row by row: the same columns in the same order, the same labels (and centroid ids, and list
    entries), numbers within ``tolerance``, the input columns passed through unchanged."""
    assert got_names == want.column_names
    assert len(got_rows) == want.num_rows
    for position, name in enumerate(want.column_names):
        expected = want[name].to_pylist()
        for row, (got_row, wanted) in enumerate(zip(got_rows, expected)):
            _assert_same_value(got_row[position], wanted, tolerance, from_json, f"{name}, row {row}")


def _assert_same_value(got, wanted, tolerance: float, from_json: bool, where: str) -> None:
    if isinstance(wanted, list):
        got = json.loads(got) if from_json else got
        assert len(got) == len(wanted), where
        for g, w in zip(got, wanted):
            assert list(g) == list(w), where
            for key in w:
                _assert_same_value(g[key], w[key], tolerance, from_json, f"{where}, {key}")
    elif isinstance(wanted, float) and not isinstance(got, bool):
        assert math.isclose(got, wanted, rel_tol=tolerance, abs_tol=tolerance), f"{where}: {got} != {wanted}"
    else:
        assert got == wanted, f"{where}: {got!r} != {wanted!r}"


@pytest.mark.parametrize("with_columns", [True, False], ids=["columns known", "columns unknown"])
@pytest.mark.parametrize("name", list(CASES))
def test_duckdb_runs_the_compiled_sql_with_ml_predicts_results(trained, name, with_columns):
    conn, _ = trained
    table = CASES[name][2]
    want = _predicted(conn, name, table)
    relation = conn.duckdb.sql(_generated(conn, name, "duckdb", table, with_columns))
    tolerance = LINEAR_TOLERANCE if name in LINEAR_CASES else OTHER_TOLERANCE
    _assert_same_rows(relation.columns, relation.fetchall(), want, tolerance, from_json=False)


@pytest.mark.parametrize("with_columns", [True, False], ids=["columns known", "columns unknown"])
@pytest.mark.parametrize("name", list(CASES))
def test_sqlite_runs_the_compiled_sql_with_ml_predicts_results(trained, name, with_columns):
    conn, lite = trained
    table = CASES[name][2]
    want = _predicted(conn, name, table)
    cursor = lite.execute(_generated(conn, name, "sqlite", table, with_columns))
    names, rows = [d[0] for d in cursor.description], cursor.fetchall()
    if not with_columns and "TRANSFORM" in CASES[name][1]:
        names, rows = _without_shadowed_input_columns(names, rows, lite, table)
    tolerance = LINEAR_TOLERANCE if name in LINEAR_CASES else OTHER_TOLERANCE
    _assert_same_rows(names, rows, want, tolerance, from_json=True)


def _without_shadowed_input_columns(names: list[str], rows: list[tuple], lite, table: str):
    """Without ``* EXCEPT`` and without the input's columns, the SELECT ends in ``src.*``: an input column
    that a TRANSFORM column of the same name replaces comes a second time, as it is in the input
    (docs/compiled_sql.md). Checked here, then dropped."""
    first = {name: names.index(name) for name in reversed(names)}
    repeated = [i for i, name in enumerate(names) if first[name] != i]
    assert repeated, "a shadowing TRANSFORM repeats the input's column"
    raw = lite.execute(f"SELECT {', '.join(names[i] for i in repeated)} FROM {table}").fetchall()
    assert [tuple(row[i] for i in repeated) for row in rows] == raw
    kept = [i for i in range(len(names)) if i not in repeated]
    return [names[i] for i in kept], [tuple(row[i] for i in kept) for row in rows]


#: One model of each family, and each kind of output (binary, multiclass, values, clusters), with TRANSFORM.
PARSED = ["linear_reg_transform", "logistic_binary", "boosted_multiclass", "forest_regressor", "dnn_binary",
          "dnn_regressor", "kmeans", "pca", "autoencoder"]


@pytest.mark.parametrize("name", PARSED)
def test_every_dialect_parses_back(trained, name):
    conn, _ = trained
    for dialect in DIALECTS:
        for with_columns in (True, False):
            sql = _generated(conn, name, dialect, CASES[name][2], with_columns)
            assert isinstance(sqlglot.parse_one(sql, read=dialect), sqlglot.exp.Select), dialect


def test_without_an_input_the_sql_reads_a_placeholder(trained):
    conn, _ = trained
    rows = conn.sql("SELECT dialect, sql FROM ML.GENERATE_SQL(MODEL logistic_binary)").fetchall()
    assert [dialect for dialect, _ in rows] == ["duckdb"]
    sql = rows[0][1]
    assert "{input}" in sql and "flights_small" not in sql
    got = conn.duckdb.sql(sql.replace("{input}", "flights_small"))
    _assert_same_rows(got.columns, got.fetchall(), _predicted(conn, "logistic_binary", "flights_small"),
                      LINEAR_TOLERANCE, from_json=False)


def test_a_query_as_input_is_compiled_with_its_columns(trained):
    conn, _ = trained
    query = "SELECT carrier, dep_delay, sched_dep_time, month, distance, origin, dest, late_departure FROM flights_small"
    ((sql,),) = conn.sql(f"SELECT sql FROM ML.GENERATE_SQL(MODEL boosted_classifier, ({query}))").fetchall()
    got = conn.duckdb.sql(sql)
    want = conn.sql(f"SELECT * FROM ML.PREDICT(MODEL boosted_classifier, ({query}))").to_arrow_table()
    _assert_same_rows(got.columns, got.fetchall(), want, OTHER_TOLERANCE, from_json=False)


def test_the_threshold_decides_binary_labels_as_ml_predict_does(trained):
    conn, _ = trained
    plain = conn.duckdb.sql(_generated(conn, "logistic_binary", "duckdb", "flights_small", True)).fetchall()
    lowered = conn.duckdb.sql(_generated(conn, "logistic_threshold", "duckdb", "flights_small", True)).fetchall()
    probability = [row[1][1]["prob"] for row in lowered]
    assert [row[0] for row in lowered] == [p >= 0.3 for p in probability]
    assert sum(row[0] for row in lowered) > sum(row[0] for row in plain)  # the threshold changed some labels


def test_a_forest_threshold_compares_as_float32_does():
    """scikit-learn's trees compare float32(x) <= t; the compiled SQL compares the double x with t'."""
    rng = np.random.default_rng(0)
    thresholds = np.concatenate([rng.normal(size=2000) * 10.0 ** rng.integers(-3, 6, 2000),
                                 [0.5, 1.5, 2.5, -0.5, 1e-40, 3.4028234e38]])
    for threshold in thresholds:
        bound = trees.float32_threshold(float(threshold))
        with np.errstate(over="ignore"):  # doubles past float32's range become infinite, as in scikit-learn
            near = np.float32(threshold)
            candidates = [bound, np.nextafter(bound, np.inf), np.nextafter(bound, -np.inf), float(near),
                          float(np.nextafter(near, np.float32(np.inf))), float(np.nextafter(near, np.float32(-np.inf)))]
            for value in candidates:
                assert (np.float32(value) <= threshold) == (value <= bound), (threshold, value, bound)


def test_an_unknown_dialect_is_refused(trained):
    conn, _ = trained
    with pytest.raises(ParameterError, match="'dialect' parameter of ML.GENERATE_SQL must be one of 'duckdb', "
                                             "'spark', 'postgres', 'snowflake', 'bigquery', 'sqlite'. Got 'oracle'"):
        conn.sql("SELECT * FROM ML.GENERATE_SQL(MODEL kmeans, STRUCT('oracle' AS dialect))")
    model = conn.executor.load("kmeans")
    with pytest.raises(NotCompilableError, match="not for 'mysql'"):
        compile_predict(model, sqlglot.exp.to_table("penguins"), "mysql")


def test_an_input_without_the_models_columns_is_refused(trained):
    conn, _ = trained
    with pytest.raises(DataError, match="missing feature column.*island"):
        conn.sql("SELECT * FROM ML.GENERATE_SQL(MODEL kmeans, (SELECT species FROM penguins))")


def test_too_many_tree_nodes_are_refused_and_ml_predict_still_serves(trained, monkeypatch):
    conn, _ = trained
    model = conn.executor.load("forest_classifier")
    nodes = sum(e.tree_.node_count for e in model.estimator.estimators_)
    monkeypatch.setattr(trees, "MAX_TREE_NODES", nodes - 1)
    with pytest.raises(NotCompilableError, match=f"The model's trees have {nodes:,} nodes; sqlml compiles at most "
                                                 f"{nodes - 1:,} to SQL .*or score with ML.PREDICT"):
        conn.sql("SELECT * FROM ML.GENERATE_SQL(MODEL forest_classifier)")
    assert conn.sql("SELECT count(*) FROM ML.PREDICT(MODEL forest_classifier, TABLE flights_small)").fetchall() == [(3000,)]


def test_a_network_over_the_size_limit_is_refused(trained, monkeypatch):
    conn, _ = trained
    estimator = conn.executor.load("dnn_classifier").estimator
    size = sum(w.size + b.size for w, b in zip(estimator.coefs_, estimator.intercepts_))
    monkeypatch.setattr(models, "MAX_NETWORK_WEIGHTS", size - 1)
    with pytest.raises(NotCompilableError, match=f"The network has {size:,} weights and biases; sqlml compiles at "
                                                 f"most {size - 1:,} to SQL"):
        conn.sql("SELECT * FROM ML.GENERATE_SQL(MODEL dnn_classifier)")


def test_a_model_type_that_does_not_compile_is_refused_by_name(trained):
    conn, _ = trained
    model = conn.executor.load("kmeans")
    other = dataclasses.replace(model, kind=dataclasses.replace(model.kind, name="arima_plus", family="arima"))
    with pytest.raises(NotCompilableError, match="model_type 'arima_plus' does not compile to SQL: sqlml compiles "
                                                 r"linear_reg, .*, kmeans, pca, autoencoder\. Score 'kmeans' with ML.PREDICT"):
        compile_predict(other, sqlglot.exp.to_table("penguins"), "duckdb")


@pytest.mark.parametrize("name, table, label", [("boosted_classifier", "flights_small", "is_late"),
                                                ("boosted_multiclass", "penguins", "species")])
def test_gradient_boosting_trees_compile_through_the_same_neutral_form(trained, name, table, label):
    """scikit-learn's GradientBoostingClassifier (the tree model orbital also compiles), fitted here on the
    numeric columns as sqlml's preprocessing gives them, scores in DuckDB as its own predict_proba does."""
    from sklearn.ensemble import GradientBoostingClassifier

    from sqlml.model.preprocess import Preprocessor

    conn, _ = trained
    model = conn.executor.load(name)
    numbers = Preprocessor("ordinal", False, [c for c in model.preprocessor.columns if c["kind"] == "numeric"])
    rows = conn.duckdb.sql(f"SELECT * FROM {table} WHERE {label} IS NOT NULL").to_arrow_table()
    X = numbers.transform(rows)
    y = rows[label].to_numpy(zero_copy_only=False)
    estimator = GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=0).fit(X, y)
    schema = [c for c in model.info.input_schema if c["name"] in numbers.input_columns]
    shell = dataclasses.replace(model, estimator=estimator, preprocessor=numbers,
                                info=dataclasses.replace(model.info, input_schema=schema))
    sql = compile_predict(shell, sqlglot.exp.to_table(table), "duckdb", rows.column_names).sql("duckdb")
    got = conn.duckdb.sql(f"SELECT * FROM ({sql}) WHERE {label} IS NOT NULL").to_arrow_table()
    assert got.num_rows == rows.num_rows
    expected = estimator.predict_proba(numbers.transform(got))  # the very rows the SQL scored, as they came back
    for decided, probs, wanted in zip(got.column(0).to_pylist(), got.column(1).to_pylist(), expected):
        np.testing.assert_allclose([p["prob"] for p in probs], wanted, atol=OTHER_TOLERANCE, rtol=0)
        chosen = int(wanted[1] >= 0.5) if len(wanted) == 2 else int(np.argmax(wanted))
        assert decided == estimator.classes_[chosen]


@pytest.mark.parametrize("name, table, objective", [("boosted_classifier", "flights_small", "binary:logistic"),
                                                    ("boosted_multiclass", "penguins", "multi:softprob"),
                                                    ("forest_regressor", "penguins", "reg:squarederror")])
def test_xgboost_boosters_compile_through_the_same_neutral_form(trained, name, table, objective):
    """An XGBoost booster (what sqlml's boosted trees hold as ``Trees.booster``), fitted here on the model's own
    feature matrix with the category codes split on natively, scores in DuckDB as XGBoost does (within float32's
    rounding: XGBoost adds the trees in float32)."""
    import types

    import xgboost as xgb

    conn, _ = trained
    model = conn.executor.load(name)
    data = conn.duckdb.sql(f"SELECT * FROM {table} WHERE {model.label} IS NOT NULL").to_arrow_table()
    kinds = ["c" if categorical else "q" for categorical in model.preprocessor.categorical_mask]
    labels = data[model.label].to_numpy(zero_copy_only=False)
    target = np.searchsorted(model.classes, labels) if model.classes else labels.astype(float)
    matrix = xgb.DMatrix(model.features(data), label=target, feature_types=kinds, enable_categorical=True)
    params = {"objective": objective, "max_depth": 4, "eta": 0.3}
    booster = xgb.train({**params, **({"num_class": 3} if objective.startswith("multi") else {})}, matrix, 25)
    shell = dataclasses.replace(model, estimator=types.SimpleNamespace(booster=booster))
    columns = conn.duckdb.sql(f"SELECT * FROM {table}").columns
    got = conn.duckdb.sql(compile_predict(shell, sqlglot.exp.to_table(table), "duckdb", columns).sql("duckdb")).to_arrow_table()
    features = xgb.DMatrix(model.features(got), feature_types=kinds, enable_categorical=True)  # the rows as they came
    wanted = booster.predict(features)
    if model.classes is None:
        np.testing.assert_allclose(got.column(0).to_numpy(), wanted, rtol=1e-6, atol=1e-6)
        return
    wanted = np.column_stack([1 - wanted, wanted]) if wanted.ndim == 1 else wanted
    probs = np.array([[p["prob"] for p in row] for row in got.column(1).to_pylist()])
    np.testing.assert_allclose(probs, wanted, atol=1e-6, rtol=0)
    chosen = (wanted[:, 1] >= model.threshold).astype(int) if len(model.classes) == 2 else wanted.argmax(axis=1)
    assert got.column(0).to_pylist() == [model.classes[k] for k in chosen]


def test_boosted_models_are_xgboosts_with_dart_weights_and_codes_split_as_numbers(trained):
    """The boosted cases above are trained by CREATE MODEL on XGBoost (sqlml.model.boosted) and cover what its
    trees hold beyond plain splits: DART's dropout weights, and (tree_method EXACT) category codes split as
    numbers; each case's compiled SQL equals ML.PREDICT in the tests above."""
    from sqlml.model import trees as exported
    from sqlml.model.boosted import Trees

    conn, _ = trained
    ensembles = {}
    for name in ("boosted_classifier", "boosted_multiclass", "boosted_regressor", "boosted_dart", "boosted_exact"):
        model = conn.executor.load(name)
        assert type(model.estimator) is Trees, name
        ensembles[name] = exported.of(model.estimator)
    assert not np.allclose(ensembles["boosted_dart"].weight, 1.0)
    exact_model = conn.executor.load("boosted_exact")
    categorical = np.flatnonzero(exact_model.preprocessor.categorical_mask)
    numeric_splits_on_codes = [i for tree in ensembles["boosted_exact"].trees for i, f in enumerate(tree.feature)
                               if f in categorical and tree.categories[i] is None]
    assert numeric_splits_on_codes
    native = [c for tree in ensembles["boosted_multiclass"].trees for c in tree.categories if c is not None]
    assert native  # the default method splits categories natively


@pytest.mark.parametrize("name, table", [("boosted_classifier", "flights_small"), ("boosted_multiclass", "penguins")])
def test_histogram_boosting_of_models_stored_before_xgboost_still_compiles(trained, name, table):
    """A boosted model stored by sqlml before XGBoost holds a HistGradientBoosting classifier fitted on the same
    feature matrix (category codes as categorical features): fitted here, it scores in DuckDB as its own
    predict_proba does."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    conn, _ = trained
    model = conn.executor.load(name)
    rows = conn.duckdb.sql(f"SELECT * FROM {table} WHERE {model.label} IS NOT NULL").to_arrow_table()
    estimator = HistGradientBoostingClassifier(max_iter=15, max_depth=4, random_state=0,
                                               categorical_features=model.preprocessor.categorical_mask)
    estimator.fit(model.features(rows), rows[model.label].to_numpy(zero_copy_only=False))
    shell = dataclasses.replace(model, estimator=estimator)
    sql = compile_predict(shell, sqlglot.exp.to_table(table), "duckdb", rows.column_names).sql("duckdb")
    got = conn.duckdb.sql(f"SELECT * FROM ({sql}) WHERE {model.label} IS NOT NULL").to_arrow_table()
    expected = estimator.predict_proba(model.features(got))  # the very rows the SQL scored, as they came back
    probs = np.array([[p["prob"] for p in row] for row in got.column(1).to_pylist()])
    np.testing.assert_allclose(probs, expected, atol=OTHER_TOLERANCE, rtol=0)
    chosen = (expected[:, 1] >= 0.5).astype(int) if expected.shape[1] == 2 else expected.argmax(axis=1)
    assert got.column(0).to_pylist() == [estimator.classes_[k] for k in chosen]


def test_a_matrix_factorization_is_refused_by_name(trained):
    """Its predictions are ML.RECOMMEND's over pairs of ids, not a SELECT over feature rows."""
    conn, _ = trained
    conn.sql("CREATE MODEL mf OPTIONS (model_type = 'matrix_factorization', user_col = 'island', item_col = 'species', "
             "rating_col = 'kg', num_factors = 2) AS SELECT island, species, avg(body_mass_g) / 1000 AS kg "
             "FROM penguins GROUP BY ALL")
    with pytest.raises(sqlml.errors.SqlmlError, match="ML.GENERATE_SQL does not apply to 'mf', a matrix_factorization "
                                                      "model. It answers .*ML.RECOMMEND"):
        conn.sql("SELECT * FROM ML.GENERATE_SQL(MODEL mf)")
