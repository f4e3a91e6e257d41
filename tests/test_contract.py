"""The contract every model type keeps, in the spirit of scikit-learn's ``parametrize_with_checks``.

Every model type of ``sqlml/model/kinds.py`` (nothing is listed here: a new ``ModelKind`` is checked as
soon as it exists) is trained once, through SQL, on the palmerpenguins data (344 rows: under
AUTO_SPLIT's 500, so every labelled row trains and ML.EVALUATE without data scores those same rows).
Its task chooses the label and the checks: classifiers alternate between ``sex`` (binary) and
``species`` (three classes) in MODEL_KINDS' order, regressors predict ``body_mass_g``, clustering has
no label; a task the contract has no checks for fails every check of that type, naming the task. Then:

* the feature matrix is BigQuery's preprocessing, rebuilt here by hand with NumPy from the README's rules;
* ML.PREDICT has one row per input row, BigQuery's column names, and the stored estimator's own
  predict / predict_proba / transform on that hand-built matrix;
* ML.EVALUATE is one row whose metrics are sklearn.metrics of those predictions (with and without data);
* ML.EXPLAIN_PREDICT's attributions add up to prediction minus baseline, in the documented raw output;
* a new connection on the same database file, with nothing cached, predicts identically;
* an empty input gives zero rows with the right columns, for ML.PREDICT and ML.EXPLAIN_PREDICT;
* NULL numbers (→ the training mean), NULL strings and unseen categories (→ no category) are accepted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pytest
from sklearn import metrics as skm

import sqlml
from sqlml import datasets
from sqlml.model.kinds import (
    BOOSTED,
    CLASSIFICATION,
    CLUSTERING,
    DNN,
    EXACT_LINEAR,
    FOREST,
    KMEANS,
    MODEL_KINDS,
    REGRESSION,
    TREE_SHAP,
)


@dataclass(frozen=True)
class Spec:
    model_type: str
    label: str | None  # None: clustering
    options: str
    task: str  # classification, regression, clustering (TASKS)
    onehot: bool  # one-hot + standardized numbers (linear, DNN, k-means) or ordinal codes, raw numbers (trees)
    exact: bool  # exact explanations (linear, Tree SHAP) or sampled (DNN, k-means)


#: The tasks the contract has checks for, and each one's label on the penguins (None: no label).
TASKS = {CLASSIFICATION: ("sex", "species"), REGRESSION: ("body_mass_g",), CLUSTERING: (None,)}
#: Small budgets per family, so the whole contract trains in seconds; other families train with their defaults.
BUDGETS = {BOOSTED: "max_iterations = 5", FOREST: "num_parallel_tree = 5, max_tree_depth = 5",
           DNN: "hidden_units = [8], max_iterations = 60", KMEANS: "num_clusters = 3"}


def specs() -> list[Spec]:
    """One Spec per model type of MODEL_KINDS, its label and checks chosen by its task."""
    seen: dict[str, int] = {}
    found = []
    for kind in MODEL_KINDS.values():
        labels = TASKS.get(kind.task, (None,))
        label = labels[seen.get(kind.task, 0) % len(labels)]
        seen[kind.task] = seen.get(kind.task, 0) + 1
        found.append(Spec(kind.name, label, BUDGETS.get(kind.family, ""), kind.task, kind.encoding == "onehot",
                          kind.explainer in (EXACT_LINEAR, TREE_SHAP)))
    return found


SPECS = specs()


def test_the_contract_derives_every_model_type_from_the_kinds():
    assert [s.model_type for s in SPECS] == list(MODEL_KINDS)
    assert {s.task for s in SPECS} <= set(TASKS), (
        f"The contract has no checks for the task(s) {sorted({s.task for s in SPECS} - set(TASKS))}: add them to "
        "tests/test_contract.py (TASKS, and each check's branch for the task).")
    by_type = {s.model_type: s for s in SPECS}  # both kinds of classifier, and every encoding, are covered
    assert {by_type[n].label for n in MODEL_KINDS if MODEL_KINDS[n].task == CLASSIFICATION} == {"sex", "species"}
    assert {s.onehot for s in SPECS} == {True, False} and {s.exact for s in SPECS} == {True, False}


PENGUIN_COLUMNS = ["species", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]
EXPLAINED = "(SELECT * FROM penguins WHERE rowid < 12)"  # sampled explainers cost per row
ALL = "STRUCT(50 AS top_k_features)"  # more than any model's columns


def silent(message: str) -> None:
    pass


@dataclass
class Trained:
    spec: Spec
    path: str
    features: list[str]
    training: dict[str, list]  # the rows the model was fitted on (labelled rows), column by column

    def connect(self) -> sqlml.Connection:
        return sqlml.connect(self.path, progress=silent)


@pytest.fixture(scope="module", params=SPECS, ids=[s.model_type for s in SPECS])
def trained(request, tmp_path_factory) -> Trained:
    spec = request.param
    if spec.task not in TASKS:
        pytest.fail(f"Model type '{spec.model_type}' has the task '{spec.task}', which the contract has no checks for: "
                    "add the task to tests/test_contract.py (TASKS, and each check's branch for it).")
    path = str(tmp_path_factory.mktemp(spec.model_type) / "contract.duckdb")
    query = "SELECT * FROM penguins" if spec.label else "SELECT * EXCLUDE (species) FROM penguins"
    label = f"input_label_cols = ['{spec.label}'], " if spec.label else ""
    options = ", ".join(o for o in (f"model_type = '{spec.model_type}'", label.rstrip(", "), spec.options, "random_seed = 1") if o)
    with sqlml.connect(path, progress=silent) as conn:
        datasets.load(conn.duckdb, "penguins")
        conn.sql(f"CREATE MODEL m OPTIONS ({options}) AS {query}")
        where = f" WHERE {spec.label} IS NOT NULL" if spec.label else ""
        training = conn.duckdb.sql(f"{query}{where}").to_arrow_table().to_pydict()
    features = [c for c in training if c != spec.label]
    return Trained(spec, path, features, training)


@pytest.fixture
def db(trained):
    conn = trained.connect()
    yield conn
    conn.close()


# ---------------------------------------------------------------------------------------------------
# Independent computations: BigQuery's preprocessing and each model type's outputs, by hand.

def is_number(values: list) -> bool:
    return all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values)


def bigquery_matrix(trained: Trained, rows: dict[str, list]) -> np.ndarray:
    """README, "Automatic preprocessing": numbers NULL → training mean, standardized (population
    deviation of the imputed training column) for one-hot models; strings one-hot over the training
    categories in sorted order with NULL last when training had it (unseen → all zeros), or one ordinal
    code per column for trees (unseen → NaN, "missing")."""
    blocks = []
    for column in trained.features:
        seen, values = trained.training[column], rows[column]
        if is_number(seen):
            present = np.array([v for v in seen if v is not None], dtype=np.float64)
            mean = present.mean()
            x = np.array([mean if v is None else v for v in values], dtype=np.float64)
            if trained.spec.onehot:
                std = np.array([mean if v is None else v for v in seen], dtype=np.float64).std() or 1.0
                x = (x - mean) / std
            blocks.append(x[:, None])
        else:
            categories = sorted({v for v in seen if v is not None}) + ([None] if None in seen else [])
            codes = np.array([categories.index(v) if v in categories else -1 for v in values])
            if trained.spec.onehot:
                blocks.append((codes[:, None] == np.arange(len(categories))).astype(np.float64))
            else:
                blocks.append(np.where(codes >= 0, codes, np.nan)[:, None])
    return np.hstack(blocks)


def classes_of(trained: Trained) -> list:
    return sorted(set(trained.training[trained.spec.label]))


def regression_scale(trained: Trained) -> tuple[float, float]:
    """README: the DNN regressor's label is standardized during training; its predictions are mapped back."""
    if trained.spec.model_type != "dnn_regressor":
        return 0.0, 1.0
    y = np.array(trained.training[trained.spec.label], dtype=np.float64)
    return y.mean(), y.std()


def expected_outputs(trained: Trained, estimator, X: np.ndarray) -> dict:
    """What ML.PREDICT must say, from the stored estimator on the hand-built matrix."""
    if trained.spec.task == "classification":
        probs = estimator.predict_proba(X)
        classes = classes_of(trained)
        codes = (probs[:, 1] >= 0.5).astype(int) if len(classes) == 2 else probs.argmax(axis=1)
        return {"probs": probs, "codes": codes, "labels": [classes[c] for c in codes]}
    if trained.spec.task == "regression":
        mean, std = regression_scale(trained)
        return {"values": estimator.predict(X) * std + mean}
    distances = estimator.transform(X)
    return {"distances": distances, "ids": distances.argmin(axis=1) + 1}


def logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def raw_output(trained: Trained, estimator, X: np.ndarray) -> np.ndarray:
    """docs/explanations.md's prediction_value: the prediction (regressors); the positive class's
    log-odds (binary), except random forests, which explain the probability; for multiclass, the
    predicted class's decision score (logistic, boosted), log-odds (DNN) or probability (forest);
    for k-means the distance to the assigned centroid."""
    spec = trained.spec
    if spec.task == "regression":
        return expected_outputs(trained, estimator, X)["values"]
    if spec.task == "clustering":
        return estimator.transform(X).min(axis=1)
    probs = estimator.predict_proba(X)
    rows = np.arange(len(X))
    if probs.shape[1] == 2:
        return probs[:, 1] if spec.model_type.startswith("random_forest") else logit(probs[:, 1])
    chosen = probs.argmax(axis=1)
    if spec.model_type.startswith("random_forest"):
        return probs[rows, chosen]
    if spec.model_type.startswith("dnn"):
        return logit(probs[rows, chosen])
    return estimator.decision_function(X)[rows, chosen]


def prediction_columns(spec: Spec) -> list[str]:
    if spec.task == "clustering":
        return ["centroid_id", "nearest_centroids_distance"]
    predicted = f"predicted_{spec.label}"
    return [predicted, f"{predicted}_probs"] if spec.task == "classification" else [predicted]


def explanation_columns(spec: Spec) -> list[str]:
    front = (["centroid_id", "nearest_centroids_distance"] if spec.task == "clustering"
             else [f"predicted_{spec.label}", "probability"] if spec.task == "classification"
             else [f"predicted_{spec.label}"])
    return front + ["top_feature_attributions", "baseline_prediction_value", "prediction_value", "approximation_error"]


def table_of(conn, sql: str) -> pa.Table:
    return conn.sql(sql).to_arrow_table()


def assert_predictions_match(trained: Trained, estimator, out: pa.Table) -> None:
    """ML.PREDICT output ``out`` against the stored estimator on the hand-built matrix of its own input columns."""
    spec = trained.spec
    rows = out.to_pydict()
    expected = expected_outputs(trained, estimator, bigquery_matrix(trained, rows))
    if spec.task == "classification":
        predicted = f"predicted_{spec.label}"
        got = np.array([[p["prob"] for p in probs] for probs in rows[f"{predicted}_probs"]])
        np.testing.assert_allclose(got, expected["probs"], rtol=1e-9, atol=1e-12)
        assert all([p["label"] for p in probs] == classes_of(trained) for probs in rows[f"{predicted}_probs"])
        assert rows[predicted] == expected["labels"]
    elif spec.task == "regression":
        np.testing.assert_allclose(rows[f"predicted_{spec.label}"], expected["values"], rtol=1e-9)
    else:
        assert rows["centroid_id"] == expected["ids"].tolist()
        for distances, nearest in zip(expected["distances"], rows["nearest_centroids_distance"]):
            order = np.argsort(distances)
            assert [d["centroid_id"] for d in nearest] == (order + 1).tolist()
            np.testing.assert_allclose([d["distance"] for d in nearest], distances[order], rtol=1e-9)


# ---------------------------------------------------------------------------------------------------
# The checks.

def test_feature_matrix_is_bigquerys_preprocessing(trained, db):
    model = db.executor.load("m")
    data = db.duckdb.sql("SELECT * FROM penguins").to_arrow_table()
    assert model.preprocessor.input_columns == trained.features
    np.testing.assert_allclose(model.features(data), bigquery_matrix(trained, data.to_pydict()), rtol=1e-12, atol=1e-12)


def test_predict_has_bigquerys_columns_and_the_estimators_predictions(trained, db):
    out = table_of(db, "SELECT * FROM ML.PREDICT(MODEL m, TABLE penguins)")
    assert out.num_rows == 344
    assert out.column_names == prediction_columns(trained.spec) + PENGUIN_COLUMNS
    assert_predictions_match(trained, db.executor.load("m").estimator, out)
    penguins = db.duckdb.sql("SELECT * FROM penguins").to_arrow_table()
    assert sorted(out.select(PENGUIN_COLUMNS).to_pylist(), key=repr) == sorted(penguins.to_pylist(), key=repr)


def expected_metrics(trained: Trained, estimator, rows: dict[str, list]) -> dict:
    """sklearn.metrics of the estimator's own predictions on ``rows`` (labelled rows only)."""
    spec = trained.spec
    X = bigquery_matrix(trained, rows)
    out = expected_outputs(trained, estimator, X)
    if spec.task == "clustering":
        assigned = out["ids"] - 1
        return {"davies_bouldin_index": skm.davies_bouldin_score(X, assigned),
                "mean_squared_distance": np.mean(out["distances"].min(axis=1) ** 2)}
    y = rows[spec.label]
    if spec.task == "regression":
        p = out["values"]
        return {"mean_absolute_error": skm.mean_absolute_error(y, p), "mean_squared_error": skm.mean_squared_error(y, p),
                "mean_squared_log_error": skm.mean_squared_log_error(y, p) if min(p) >= 0 else None,
                "median_absolute_error": skm.median_absolute_error(y, p), "r2_score": skm.r2_score(y, p),
                "explained_variance": skm.explained_variance_score(y, p)}
    classes = classes_of(trained)
    codes = np.array([classes.index(v) for v in y])
    probs, predicted = out["probs"], out["codes"]
    if len(classes) == 2:
        return {"precision": skm.precision_score(codes, predicted), "recall": skm.recall_score(codes, predicted),
                "accuracy": skm.accuracy_score(codes, predicted), "f1_score": skm.f1_score(codes, predicted),
                "log_loss": skm.log_loss(codes, probs), "roc_auc": skm.roc_auc_score(codes, probs[:, 1]),
                "pr_auc": skm.average_precision_score(codes, probs[:, 1])}
    return {"precision": skm.precision_score(codes, predicted, average="macro", zero_division=0),
            "recall": skm.recall_score(codes, predicted, average="macro", zero_division=0),
            "accuracy": skm.accuracy_score(codes, predicted),
            "f1_score": skm.f1_score(codes, predicted, average="macro", zero_division=0),
            "log_loss": skm.log_loss(codes, probs), "roc_auc": skm.roc_auc_score(codes, probs, multi_class="ovr")}


def assert_metrics(row: dict, expected: dict) -> None:
    for name, value in expected.items():
        if value is None:
            assert row[name] is None, name
        else:
            assert row[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_evaluate_is_one_row_of_sklearn_metrics(trained, db):
    estimator = db.executor.load("m").estimator
    given = table_of(db, "SELECT * FROM ML.EVALUATE(MODEL m, TABLE penguins)").to_pylist()
    assert len(given) == 1
    where = f"WHERE {trained.spec.label} IS NOT NULL" if trained.spec.label else ""  # ML.EVALUATE leaves those out
    labelled = db.duckdb.sql(f"SELECT * FROM penguins {where}").to_arrow_table().to_pydict()
    assert_metrics(given[0], expected_metrics(trained, estimator, labelled))
    # Under 500 rows there is no split: the stored evaluation is on the training rows themselves.
    stored = table_of(db, "SELECT * FROM ML.EVALUATE(MODEL m)").to_pylist()
    assert len(stored) == 1
    assert_metrics(stored[0], expected_metrics(trained, estimator, trained.training))
    registry = db.duckdb.sql("SELECT training_rows, eval_rows FROM sqlml.models WHERE name = 'm'").fetchall()
    assert registry == [(len(trained.training[trained.features[0]]),) * 2]


def test_explain_predict_attributions_add_up_to_the_raw_output(trained, db):
    spec = trained.spec
    estimator = db.executor.load("m").estimator
    out = table_of(db, f"SELECT * FROM ML.EXPLAIN_PREDICT(MODEL m, {EXPLAINED}, {ALL})")
    assert out.num_rows == 12
    assert out.column_names == explanation_columns(spec) + PENGUIN_COLUMNS
    rows = out.to_pydict()
    X = bigquery_matrix(trained, rows)
    np.testing.assert_allclose(rows["prediction_value"], raw_output(trained, estimator, X), rtol=1e-9, atol=1e-9)
    for i in range(out.num_rows):
        found = {a["feature"]: a["attribution"] for a in rows["top_feature_attributions"][i]}
        assert sorted(found) == sorted(trained.features)
        ranked = [abs(a["attribution"]) for a in rows["top_feature_attributions"][i]]
        assert ranked == sorted(ranked, reverse=True)
        gap = rows["prediction_value"][i] - rows["baseline_prediction_value"][i] - sum(found.values())
        assert rows["approximation_error"][i] == pytest.approx(abs(gap), abs=1e-9)
        # Exact explainers are exact (XGBoost's in float32); a permutation pass telescopes, so k-means' sampled
        # sum is exact too; a DNN's integrated gradients miss by the integral's error (tests/test_explain.py).
        if spec.model_type != "dnn_classifier" and spec.model_type != "dnn_regressor":
            assert abs(gap) < 1e-6 * (10 * max(1.0, abs(rows["prediction_value"][i])) if "boosted" in spec.model_type else 1)
    expected = expected_outputs(trained, estimator, X)
    if spec.task == "classification":
        assert rows[f"predicted_{spec.label}"] == expected["labels"]
        np.testing.assert_allclose(rows["probability"], expected["probs"][np.arange(len(X)), expected["codes"]], rtol=1e-9)
    elif spec.task == "regression":
        np.testing.assert_allclose(rows[f"predicted_{spec.label}"], expected["values"], rtol=1e-9)
    else:
        assert rows["centroid_id"] == expected["ids"].tolist()


def test_a_new_connection_on_the_same_file_predicts_identically(trained, monkeypatch):
    sql = "SELECT * FROM ML.PREDICT(MODEL m, TABLE penguins)"
    with trained.connect() as conn:
        first = sorted(conn.sql(sql).fetchall(), key=repr)
    from sqlml.model import loaded
    monkeypatch.setattr(loaded, "CACHE", loaded.ModelCache())  # as a new process: the bytes are read back
    with trained.connect() as conn:
        again = sorted(conn.sql(sql).fetchall(), key=repr)
        fresh = conn.executor.load("m")
        assert_predictions_match(trained, fresh.estimator, table_of(conn, sql))
    assert again == first and len(first) == 344


@pytest.mark.parametrize("function", ["PREDICT", "EXPLAIN_PREDICT"])
def test_empty_input_gives_zero_rows_with_the_right_columns(trained, db, function):
    out = table_of(db, f"SELECT * FROM ML.{function}(MODEL m, (SELECT * FROM penguins WHERE false))")
    columns = prediction_columns(trained.spec) if function == "PREDICT" else explanation_columns(trained.spec)
    assert out.num_rows == 0
    assert out.column_names == columns + PENGUIN_COLUMNS


def crafted_rows(trained: Trained) -> str:
    """One real penguin six times: as is, with a NULL number, with that number at its training mean,
    with a NULL island (never NULL in training), an unseen island and a NULL sex; ``k`` tells them apart."""
    mean = float(np.mean([v for v in trained.training["bill_length_mm"] if v is not None]))
    changes = ["", "NULL AS bill_length_mm", f"{mean!r}::DOUBLE AS bill_length_mm", "NULL::VARCHAR AS island",
               "'Atlantis' AS island", "NULL::VARCHAR AS sex"]
    parts = [f"SELECT {k} AS k, * {f'REPLACE ({change})' if change else ''} FROM penguins WHERE rowid = 5"
             for k, change in enumerate(changes)]
    return "(" + " UNION ALL ".join(parts) + ")"


def test_nulls_and_unseen_categories_are_accepted(trained, db):
    assert not math.isnan(float(np.mean([v for v in trained.training["bill_length_mm"] if v is not None])))
    assert None not in trained.training["island"] and "Atlantis" not in trained.training["island"]
    out = table_of(db, f"SELECT * FROM ML.PREDICT(MODEL m, {crafted_rows(trained)}) ORDER BY k")
    assert out.num_rows == 6 and out["k"].to_pylist() == list(range(6))
    estimator = db.executor.load("m").estimator
    assert_predictions_match(trained, estimator, out)  # NULL → mean / NULL category / no category, by hand
    # A NULL number is the training mean; a NULL island (never NULL in training) is an unseen category.
    scores = scores_of(trained, out)
    np.testing.assert_allclose(scores[1], scores[2], rtol=1e-12)
    np.testing.assert_allclose(scores[3], scores[4], rtol=1e-12)
    X = bigquery_matrix(trained, out.to_pydict())
    island = slice(*island_block(trained))
    if trained.spec.onehot:
        assert not X[4, island].any()  # the unseen island contributes nothing: an all-zero block
    else:
        assert np.isnan(X[4, island]).all()  # trees: the "missing" branch
    explained = table_of(db, f"SELECT * FROM ML.EXPLAIN_PREDICT(MODEL m, {crafted_rows(trained)}, {ALL}) ORDER BY k")
    assert explained.num_rows == 6


def scores_of(trained: Trained, out: pa.Table) -> np.ndarray:
    """Per row, the numbers ML.PREDICT reports: class probabilities, the prediction or centroid distances."""
    rows = out.to_pydict()
    if trained.spec.task == "classification":
        return np.array([[p["prob"] for p in probs] for probs in rows[f"predicted_{trained.spec.label}_probs"]])
    if trained.spec.task == "regression":
        return np.array(rows[f"predicted_{trained.spec.label}"])[:, None]
    return np.array([sorted((d["centroid_id"], d["distance"]) for d in nearest) for nearest in rows["nearest_centroids_distance"]])


def island_block(trained: Trained) -> tuple[int, int]:
    """Where the island column's encoding sits in the hand-built matrix."""
    start = 0
    for column in trained.features:
        seen = trained.training[column]
        width = 1 if is_number(seen) or not trained.spec.onehot else len(set(seen))
        if column == "island":
            return start, start + width
        start += width
    raise AssertionError("no island column")
