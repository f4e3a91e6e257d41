"""ML.EXPLAIN_PREDICT, ML.GLOBAL_EXPLAIN and ML.FEATURE_IMPORTANCE against independent computations."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import shap
import xgboost as xgb
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression

import sqlml
from sqlml import datasets
from sqlml.errors import DataError, ParameterError

ALL = "STRUCT(50 AS top_k_features)"  # more than any model's columns: every attribution comes back
PENGUIN_NUMERICS = "bill_length_mm, bill_depth_mm, flipper_length_mm, year"


def train(conn, name: str, options: str, query: str):
    conn.sql(f"CREATE OR REPLACE MODEL {name} OPTIONS ({options}) AS {query}")
    return conn.executor.load(name)


def explained(conn, sql: str):
    return conn.sql(sql).arrow().read_all().to_pylist()


def attributions(row: dict) -> dict:
    return {a["feature"]: a["attribution"] for a in row["top_feature_attributions"]}


def logit(p):
    return np.log(p) - np.log1p(-p)


PENGUIN_MODELS = [
    ("linear_reg", "body_mass_g"),
    ("logistic_reg", "sex"),
    ("logistic_reg", "species"),
    ("boosted_tree_classifier", "species"),  # XGBoost's categorical splits
    ("boosted_tree_classifier", "sex"),
    ("boosted_tree_regressor", "body_mass_g"),
    ("random_forest_classifier", "species"),
    ("random_forest_regressor", "body_mass_g"),
]


@pytest.mark.parametrize("model_type,label", PENGUIN_MODELS)
def test_attributions_add_up_row_by_row_on_penguins(penguins, model_type, label):
    extra = ", num_parallel_tree=10" if model_type.startswith("random") else ", max_iterations=8"
    extra = "" if model_type.endswith("_reg") else extra
    model = train(penguins, "m", f"model_type='{model_type}', input_label_cols=['{label}'], random_seed=3{extra}",
                  f"SELECT * FROM penguins WHERE {label} IS NOT NULL")
    rows = explained(penguins, f"SELECT * FROM ML.EXPLAIN_PREDICT(MODEL m, TABLE penguins, {ALL})")
    assert len(rows) == 344
    for row in rows:
        found = attributions(row)
        assert set(found) == set(model.preprocessor.input_columns)
        total = row["baseline_prediction_value"] + sum(found.values())
        assert total == pytest.approx(row["prediction_value"], rel=1e-6, abs=1e-5)  # XGBoost adds in float32
        assert row["approximation_error"] == pytest.approx(abs(row["prediction_value"] - total), abs=1e-9)
    _check_prediction_value(model, rows, label)


def _check_prediction_value(model, rows: list[dict], label: str) -> None:
    """prediction_value is the raw output: the prediction, the positive class's log-odds (binary),
    the predicted class's probability (forests, multiclass) or its decision score (others)."""
    predicted = np.array([r["prediction_value"] for r in rows])
    table = pa.Table.from_pylist(rows)
    X = model.features(table)
    if hasattr(model.estimator, "booster"):  # XGBoost's margin, read from the booster itself
        types = ["c" if c["kind"] == "categorical" else "q" for c in model.preprocessor.columns]
        margins = model.estimator.booster.predict(xgb.DMatrix(X, feature_types=types, enable_categorical=True),
                                                  output_margin=True).reshape(len(X), -1)
        assert np.allclose(predicted, margins[np.arange(len(X)), margins.argmax(axis=1) if margins.shape[1] > 1 else 0],
                           atol=1e-5)
    elif model.kind.task == "regression":
        assert np.allclose(predicted, [r[f"predicted_{label}"] for r in rows])
    elif len(model.classes) == 2:
        assert np.allclose(predicted, logit(model.estimator.predict_proba(X)[:, 1]), atol=1e-6)
    elif model.kind.name.startswith("random_forest"):
        assert np.allclose(predicted, [r["probability"] for r in rows])
    else:
        scores = model.estimator.decision_function(X)
        assert np.allclose(predicted, scores[np.arange(len(X)), scores.argmax(axis=1)])


@pytest.mark.parametrize("model_type", ["logistic_reg", "boosted_tree_classifier", "random_forest_classifier",
                                        "boosted_tree_regressor"])
def test_attributions_add_up_on_flights(flights, model_type):
    label = "dep_delay" if model_type.endswith("regressor") else "is_late"
    # dest (100 airports) is left out: see docs/explanations.md on the cost of many-category splits
    query = f"SELECT * EXCLUDE (dest, {'is_late' if label == 'dep_delay' else 'dep_delay'}) FROM flights LIMIT 3000"
    extra = ", num_parallel_tree=10, max_tree_depth=8" if model_type.startswith("random") else ", max_iterations=8"
    extra = "" if model_type == "logistic_reg" else extra
    train(flights, "f", f"model_type='{model_type}', input_label_cols=['{label}'], random_seed=1{extra}", query)
    rows = explained(flights, f"SELECT * FROM ML.EXPLAIN_PREDICT(MODEL f, (SELECT * FROM flights LIMIT 300), {ALL})")
    errors = [abs(r["baseline_prediction_value"] + sum(attributions(r).values()) - r["prediction_value"])
              / max(1.0, abs(r["prediction_value"])) for r in rows]
    assert max(errors) < (1e-5 if model_type.startswith("boosted") else 1e-6)  # XGBoost adds in float32


def test_linear_attributions_are_coef_times_distance_from_the_training_mean(penguins):
    model = train(penguins, "m", "model_type='linear_reg', input_label_cols=['body_mass_g']",
                  "SELECT * FROM penguins WHERE body_mass_g IS NOT NULL")
    training = penguins.sql("SELECT * FROM penguins WHERE body_mass_g IS NOT NULL").arrow().read_all()
    X = model.preprocessor.transform(training)  # 342 rows: too few for a split, all rows train
    refit = LinearRegression().fit(X, training["body_mass_g"].to_numpy())
    by_feature = refit.coef_ * (X - X.mean(axis=0))
    sources = np.array(model.preprocessor.feature_sources)
    expected = {c: by_feature[:, sources == c].sum(axis=1) for c in model.preprocessor.input_columns}

    rows = explained(penguins, "SELECT * FROM ML.EXPLAIN_PREDICT(MODEL m, "
                               f"(SELECT * FROM penguins WHERE body_mass_g IS NOT NULL), {ALL})")
    for column, values in expected.items():
        assert np.allclose([attributions(r)[column] for r in rows], values, atol=1e-6)
    assert np.allclose([r["baseline_prediction_value"] for r in rows], refit.intercept_ + refit.coef_ @ X.mean(axis=0))

    ranked = explained(penguins, "SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL m)")
    mean_abs = {c: np.abs(v).mean() for c, v in expected.items()}
    assert [r["feature"] for r in ranked] == sorted(mean_abs, key=mean_abs.get, reverse=True)
    assert np.allclose([r["attribution"] for r in ranked], [mean_abs[r["feature"]] for r in ranked])


def test_tree_attributions_equal_shap_tree_explainer(penguins):
    forest = train(penguins, "rf", "model_type='random_forest_classifier', input_label_cols=['species'], "
                                   "num_parallel_tree=10, random_seed=2", "SELECT * FROM penguins")
    boosted = train(penguins, "gb", "model_type='boosted_tree_regressor', input_label_cols=['body_mass_g']",
                    f"SELECT {PENGUIN_NUMERICS}, body_mass_g FROM penguins WHERE body_mass_g IS NOT NULL")
    data = penguins.sql("SELECT * FROM penguins").arrow().read_all()

    X = forest.features(data)
    values = shap.TreeExplainer(forest.estimator).shap_values(X)  # (rows, features, classes)
    predicted = forest.estimator.predict_proba(X).argmax(axis=1)
    rows = explained(penguins, f"SELECT * FROM ML.EXPLAIN_PREDICT(MODEL rf, TABLE penguins, {ALL})")
    for i, row in enumerate(rows):
        found = attributions(row)
        assert np.allclose([found[c] for c in forest.preprocessor.input_columns], values[i, :, predicted[i]])

    X = boosted.features(data)
    values = shap.TreeExplainer(boosted.estimator.booster).shap_values(X)
    rows = explained(penguins, f"SELECT * FROM ML.EXPLAIN_PREDICT(MODEL gb, TABLE penguins, {ALL})")
    found = np.array([[attributions(r)[c] for c in boosted.preprocessor.input_columns] for r in rows])
    assert np.allclose(found, values, atol=1e-5)  # XGBoost's float32 sums


def test_rewritten_hgb_trees_match_shap_on_numeric_splits(penguins):
    """Without categorical splits the rewrite (which serves boosted models stored before sqlml moved to
    XGBoost) must be exactly what shap builds for HistGradientBoosting itself."""
    from sqlml.model.explain import _hgb_tree
    table = penguins.sql(f"SELECT {PENGUIN_NUMERICS}, species FROM penguins").arrow().read_all()
    X = table.select(PENGUIN_NUMERICS.split(", ")).to_pandas().to_numpy()
    estimator = HistGradientBoostingClassifier(max_iter=20, max_depth=6, learning_rate=0.3, random_state=0)
    estimator.fit(X, table["species"].to_numpy(zero_copy_only=False))
    direct = shap.TreeExplainer(estimator, model_output="raw").shap_values(X)
    for k in range(3):
        rewritten = shap.TreeExplainer({"trees": [_hgb_tree(p[k]) for p in estimator._predictors],
                                        "base_offset": float(np.ravel(estimator._baseline_prediction)[k]),
                                        "tree_output": "raw_value"}, model_output="raw")
        assert np.allclose(rewritten.shap_values(X), direct[:, :, k])


def test_categorical_column_never_split_on_gets_nothing(penguins):
    """A constant categorical column cannot be split on; its attribution must be exactly zero."""
    model = train(penguins, "gb", "model_type='boosted_tree_classifier', input_label_cols=['species']",
                  "SELECT *, 'same' AS constant FROM penguins")
    assert model.estimator.booster.feature_types.count("c") == 3  # island, sex, constant
    rows = explained(penguins, f"SELECT * FROM ML.EXPLAIN_PREDICT(MODEL gb, (SELECT *, 'same' AS constant FROM penguins), {ALL})")
    assert all(attributions(r)["constant"] == 0 for r in rows)
    assert any(abs(attributions(r)["island"]) > 1e-3 for r in rows)


def test_top_k_and_ordering(penguins):
    train(penguins, "m", "model_type='logistic_reg', input_label_cols=['sex']", "SELECT * FROM penguins WHERE sex IS NOT NULL")
    full = explained(penguins, f"SELECT * FROM ML.EXPLAIN_PREDICT(MODEL m, TABLE penguins, {ALL})")
    top = explained(penguins, "SELECT * FROM ML.EXPLAIN_PREDICT(MODEL m, TABLE penguins, STRUCT(3 AS top_k_features))")
    default = explained(penguins, "SELECT * FROM ML.EXPLAIN_PREDICT(MODEL m, TABLE penguins)")
    for whole, three, five in zip(full, top, default):
        everything = sorted(attributions(whole).items(), key=lambda kv: -abs(kv[1]))
        assert [(a["feature"], a["attribution"]) for a in three["top_feature_attributions"]] == everything[:3]
        assert len(five["top_feature_attributions"]) == 5
        assert whole["probability"] == max(p for p in (whole["probability"], 1 - whole["probability"]))
    columns = penguins.sql("SELECT * FROM ML.EXPLAIN_PREDICT(MODEL m, TABLE penguins)").columns
    assert columns[:6] == ["predicted_sex", "probability", "top_feature_attributions", "baseline_prediction_value",
                           "prediction_value", "approximation_error"]
    assert columns[6:] == penguins.sql("SELECT * FROM penguins").columns


def test_global_explain_is_mean_absolute_attribution_per_class(penguins):
    model = train(penguins, "m", "model_type='logistic_reg', input_label_cols=['species']", "SELECT * FROM penguins")
    X = model.features(penguins.sql("SELECT * FROM penguins").arrow().read_all())
    mean = X.mean(axis=0)
    sources = np.array(model.preprocessor.feature_sources)
    rows = explained(penguins, "SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL m, STRUCT(TRUE AS class_level_explain))")
    assert len(rows) == 3 * len(model.preprocessor.input_columns)
    for k, label in enumerate(model.classes):
        parts = model.estimator.coef_[k] * (X - mean)
        for row in (r for r in rows if r["class_label"] == label):
            assert row["attribution"] == pytest.approx(np.abs(parts[:, sources == row["feature"]].sum(axis=1)).mean())


def test_global_explain_samples_at_most_2000_rows(flights):
    train(flights, "f", "model_type='boosted_tree_classifier', input_label_cols=['is_late'], max_iterations=5",
          "SELECT * EXCLUDE (dest) FROM flights")
    model = flights.executor.load("f")
    from sqlml.model import explain
    training_rows = flights.sql("SELECT * EXCLUDE (dest) FROM flights").to_arrow_table()
    training_rows = training_rows.filter(pc.is_valid(training_rows["is_late"]))
    sample = training_rows.take(np.sort(np.random.default_rng(0).choice(training_rows.num_rows, 2000, replace=False)))
    expected = np.abs(explain.explain(model, model.features(sample), np.ones(2000, dtype=int)).per_column(model)).mean(0)
    rows = explained(flights, "SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL f)")
    lookup = dict(zip(model.preprocessor.input_columns, expected))
    assert [r["feature"] for r in rows] == sorted(lookup, key=lookup.get, reverse=True)
    assert np.allclose([r["attribution"] for r in rows], [lookup[r["feature"]] for r in rows])


def test_feature_importance_of_forest_and_boosted_trees(penguins):
    forest = train(penguins, "rf", "model_type='random_forest_regressor', input_label_cols=['body_mass_g'], "
                                   "num_parallel_tree=10, random_seed=4", "SELECT * FROM penguins WHERE body_mass_g IS NOT NULL")
    rows = {r["feature"]: r for r in explained(penguins, "SELECT * FROM ML.FEATURE_IMPORTANCE(MODEL rf)")}
    for j, column in enumerate(forest.preprocessor.input_columns):
        splits = [(tree.tree_.feature == j) for tree in forest.estimator.estimators_]
        samples = np.concatenate([t.tree_.n_node_samples[s] for t, s in zip(forest.estimator.estimators_, splits)])
        assert rows[column]["importance_weight"] == sum(s.sum() for s in splits)
        assert rows[column]["importance_gain"] == pytest.approx(forest.estimator.feature_importances_[j])
        assert rows[column]["importance_cover"] == pytest.approx(samples.mean() if len(samples) else 0.0)

    boosted = train(penguins, "gb", "model_type='boosted_tree_classifier', input_label_cols=['species']",
                    "SELECT * FROM penguins")
    ranked = explained(penguins, "SELECT * FROM ML.FEATURE_IMPORTANCE(MODEL gb)")
    assert {r["feature"] for r in ranked} == set(boosted.preprocessor.input_columns)
    splits = boosted.estimator.booster.trees_to_dataframe().query("Feature != 'Leaf'")  # XGBoost's own table
    for row in ranked:
        mine = splits[splits["Feature"] == f"f{boosted.preprocessor.input_columns.index(row['feature'])}"]
        assert row["importance_weight"] == len(mine)
        assert row["importance_gain"] == pytest.approx(mine["Gain"].mean() if len(mine) else 0.0, rel=1e-5)
        assert row["importance_cover"] == pytest.approx(mine["Cover"].mean() if len(mine) else 0.0, rel=1e-5)
    assert [r["importance_gain"] for r in ranked] == sorted((r["importance_gain"] for r in ranked), reverse=True)


def _integrated_gradients_by_finite_differences(model, X: np.ndarray, baseline: np.ndarray, steps: int,
                                               output) -> np.ndarray:
    """Integrated gradients from scikit-learn's own forward pass: central differences of ``output`` at the
    trapezoid rule's points of the path from ``baseline`` to each row."""
    weights = np.full(steps + 1, 1.0 / steps)
    weights[[0, -1]] /= 2
    step = 1e-6
    total = np.zeros_like(X)
    for alpha, weight in zip(np.linspace(0, 1, steps + 1), weights):
        point = baseline + alpha * (X - baseline)
        for j in range(X.shape[1]):
            shift = np.zeros(X.shape[1])
            shift[j] = step
            total[:, j] += weight * (output(point + shift) - output(point - shift)) / (2 * step)
    return (X - baseline) * total


@pytest.mark.parametrize("model_type, label, steps", [("dnn_classifier", "sex", 4), ("dnn_classifier", "species", 10),
                                                      ("dnn_regressor", "body_mass_g", None)])
def test_dnn_explanations_are_integrated_gradients(penguins, model_type, label, steps):
    query = f"SELECT * FROM penguins WHERE {label} IS NOT NULL"
    model = train(penguins, "d", f"model_type='{model_type}', input_label_cols=['{label}'], hidden_units=[8, 4], "
                                 "random_seed=1, data_split_method='NO_SPLIT'", query)
    parameter = f"STRUCT(50 AS top_k_features{f', {steps} AS integrated_gradients_num_steps' if steps else ''})"
    rows = explained(penguins, f"SELECT * FROM ML.EXPLAIN_PREDICT(MODEL d, ({query} LIMIT 40), {parameter})")
    net, X = model.estimator, model.features(pa.Table.from_pylist(rows))
    baseline = model.features(penguins.sql(query).arrow().read_all()).mean(axis=0)  # the mean training row
    if model_type == "dnn_regressor":
        mean, std = model.target_scale
        expected = _integrated_gradients_by_finite_differences(model, X, baseline, 15, net.predict) * std
    else:
        targets = np.ones(len(X), dtype=int) if len(model.classes) == 2 else net.predict_proba(X).argmax(axis=1)
        expected = np.zeros_like(X)
        for k in np.unique(targets):
            mine = targets == k
            expected[mine] = _integrated_gradients_by_finite_differences(
                model, X[mine], baseline, steps, lambda Z: logit(np.clip(net.predict_proba(Z)[:, k], 1e-12, 1 - 1e-12)))
    sources = np.array(model.preprocessor.feature_sources)
    for row, attributions_row in zip(rows, expected):
        found = attributions(row)
        for column in model.preprocessor.input_columns:
            assert found[column] == pytest.approx(attributions_row[sources == column].sum(), abs=1e-5)
        gap = abs(row["prediction_value"] - row["baseline_prediction_value"] - sum(found.values()))
        assert row["approximation_error"] == pytest.approx(gap, abs=1e-9)


def test_integrated_gradients_add_up_as_the_steps_grow(penguins):
    """Completeness: the attributions sum to f(x) − f(baseline) up to the integral's error."""
    train(penguins, "d", "model_type='dnn_classifier', input_label_cols=['sex'], hidden_units=[16], random_seed=2",
          "SELECT * FROM penguins WHERE sex IS NOT NULL")
    errors = {}
    for steps in (1, 30):
        rows = explained(penguins, "SELECT * FROM ML.EXPLAIN_PREDICT(MODEL d, (SELECT * FROM penguins WHERE sex IS NOT "
                                   f"NULL), STRUCT({steps} AS integrated_gradients_num_steps))")
        errors[steps] = np.mean([r["approximation_error"] for r in rows])
    assert errors[30] < errors[1] / 10 and errors[30] < 0.01
    with pytest.raises(DataError, match="integrated_gradients_num_steps applies to DNN models .* 'm' is a linear_reg"):
        train(penguins, "m", "model_type='linear_reg', input_label_cols=['body_mass_g']",
              "SELECT * FROM penguins WHERE body_mass_g IS NOT NULL")
        penguins.sql("SELECT * FROM ML.EXPLAIN_PREDICT(MODEL m, TABLE penguins, STRUCT(5 AS integrated_gradients_num_steps))")
    with pytest.raises(ParameterError, match="integrated_gradients_num_steps"):
        penguins.sql("SELECT * FROM ML.EXPLAIN_PREDICT(MODEL d, TABLE penguins, STRUCT(0 AS integrated_gradients_num_steps))")


def test_permutation_importance_ranks_a_noise_column_last(penguins):
    train(penguins, "m", "model_type='logistic_reg', input_label_cols=['species']",
          "SELECT bill_length_mm, flipper_length_mm, hash(rowid) % 7 AS noise, species FROM penguins")
    rows = explained(penguins, "SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL m, STRUCT('permutation' AS method))")
    assert [r["feature"] for r in rows][-1] == "noise"
    assert rows[0]["attribution"] > 0.1 > abs(rows[-1]["attribution"])


def test_errors_name_the_problem(penguins):
    train(penguins, "m", "model_type='linear_reg', input_label_cols=['body_mass_g']",
          "SELECT * FROM penguins WHERE body_mass_g IS NOT NULL")
    with pytest.raises(DataError, match="needs a tree model .* 'm' is a linear_reg"):
        penguins.sql("SELECT * FROM ML.FEATURE_IMPORTANCE(MODEL m)")
    with pytest.raises(DataError, match=r"missing feature column.*island, bill_depth_mm"):
        penguins.sql("SELECT * FROM ML.EXPLAIN_PREDICT(MODEL m, (SELECT * EXCLUDE (bill_depth_mm, island) FROM penguins))")
    with pytest.raises(ParameterError, match="The 'top_k_features' parameter of ML.EXPLAIN_PREDICT must be an integer in the range \\[1, inf\\]. Got 0."):
        penguins.sql("SELECT * FROM ML.EXPLAIN_PREDICT(MODEL m, TABLE penguins, STRUCT(0 AS top_k_features))")
    with pytest.raises(DataError, match="class_level_explain needs a classifier"):
        penguins.sql("SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL m, STRUCT(TRUE AS class_level_explain))")


def test_example_file_runs_on_penguins():
    conn = sqlml.connect(progress=lambda message: None)
    datasets.load(conn.duckdb, "penguins")
    with open("examples/explain.sql") as f:
        script = f.read()
    importance = conn.sql(script).fetchall()  # the script's last statement: ML.FEATURE_IMPORTANCE
    model = conn.executor.load("penguin_sex")
    estimator = model.estimator
    assert model.preprocessor.input_columns == ["species", "island", "bill_length_mm", "bill_depth_mm",
                                                "flipper_length_mm", "body_mass_g"]
    splits = estimator.booster.trees_to_dataframe().query("Feature != 'Leaf'")  # XGBoost's own table
    expected = []
    for j, name in enumerate(model.preprocessor.input_columns):
        mine = splits[splits["Feature"] == f"f{j}"]
        expected.append((name, len(mine), mine["Gain"].mean() if len(mine) else 0.0,
                         mine["Cover"].mean() if len(mine) else 0.0))
    expected.sort(key=lambda row: -row[2])
    assert [row[:2] for row in importance] == [row[:2] for row in expected]
    assert [row[2:] for row in importance] == [pytest.approx(row[2:], rel=1e-5) for row in expected]

    explain_sql = [s for s in script.split(";") if "ML.EXPLAIN_PREDICT" in s][0]
    rows = explained(conn, explain_sql)
    data = conn.duckdb.sql("SELECT * FROM penguins LIMIT 5").to_arrow_table()
    types = ["c" if c["kind"] == "categorical" else "q" for c in model.preprocessor.columns]
    features = xgb.DMatrix(model.features(data), feature_types=types, enable_categorical=True)
    p_male = estimator.booster.predict(features)
    assert [r["predicted_sex"] for r in rows] == ["male" if p >= 0.5 else "female" for p in p_male]
    assert [r["probability"] for r in rows] == pytest.approx(np.maximum(p_male, 1 - p_male), abs=1e-7)
    assert [r["prediction_value"] for r in rows] == pytest.approx(estimator.booster.predict(features, output_margin=True),
                                                                  abs=1e-6)
    assert all(len(r["top_feature_attributions"]) == 3 for r in rows)
    conn.close()
