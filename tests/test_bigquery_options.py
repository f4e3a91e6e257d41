"""Every CREATE MODEL option BigQuery ML's reference documents for the model types sqlml has: each one
sqlml maps onto scikit-learn gives the predictions of the scikit-learn estimator built here with the
mapped parameter on the same rows; each value sqlml cannot honour is refused with why. Each test names
the reference page (docs.cloud.google.com/bigquery/docs/reference/standard-sql/…) it checks."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
import xgboost as xgb
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sqlml
from sqlml import datasets
from sqlml.errors import DataError, OptionError


def _data(conn, name: str) -> tuple[np.ndarray, np.ndarray]:
    datasets.load(conn.duckdb, name)
    frame = conn.duckdb.sql(f"SELECT * FROM {name}").df()
    return frame.drop(columns="target").to_numpy(), frame["target"].to_numpy()


def _probabilities(conn, name: str) -> np.ndarray:
    rows = conn.sql(f"SELECT predicted_target_probs FROM ML.PREDICT(MODEL m, TABLE {name})").fetchall()
    return np.array([[p["prob"] for p in probs] for (probs,) in rows])


@pytest.mark.parametrize("activation, optimizer, sklearn_activation", [("TANH", "SGD", "tanh"),
                                                                      ("SIGMOID", "ADAM", "logistic")])
def test_dnn_activation_optimizer_and_batch_size(conn, activation, optimizer, sklearn_activation):
    # reference: bigqueryml-syntax-create-dnn-models (ACTIVATION_FN, OPTIMIZER, BATCH_SIZE, DROPOUT = 0, TF_VERSION,
    # INTEGRATED_GRADIENTS_NUM_STEPS, WARM_START = FALSE, MIN_REL_PROGRESS = 0.01, ENABLE_GLOBAL_EXPLAIN)
    X, y = _data(conn, "iris")
    conn.sql(f"""CREATE MODEL m OPTIONS (model_type = 'dnn_classifier', input_label_cols = ['target'],
                 data_split_method = 'NO_SPLIT', hidden_units = [8], max_iterations = 30, early_stop = FALSE,
                 random_seed = 3, activation_fn = '{activation}', optimizer = '{optimizer}', batch_size = 16,
                 dropout = 0, tf_version = '2.8.0', integrated_gradients_num_steps = 10, warm_start = FALSE,
                 min_rel_progress = 0.01, enable_global_explain = TRUE) AS SELECT * FROM iris""")
    net = MLPClassifier(hidden_layer_sizes=(8,), activation=sklearn_activation, solver=optimizer.lower(), batch_size=16,
                        alpha=0.0001, learning_rate_init=0.01, max_iter=30, early_stopping=False, random_state=3)
    expected = make_pipeline(StandardScaler(), net).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(_probabilities(conn, "iris"), expected, atol=1e-6)


def _xgboost(X: np.ndarray, y: np.ndarray, params: dict, rounds: int) -> np.ndarray:
    """The positive class's probability of XGBoost trained here on the same rows (numeric features)."""
    booster = xgb.train({"objective": "binary:logistic", **params}, xgb.QuantileDMatrix(X, y), rounds)
    positive = booster.predict(xgb.DMatrix(X))
    return np.column_stack([1 - positive, positive])


def test_boosted_tree_reference_example_with_colsample_bynode_and_min_tree_child_weight(conn):
    # reference: bigqueryml-syntax-create-boosted-tree (its example: BOOSTER_TYPE = 'GBTREE', NUM_PARALLEL_TREE = 1,
    # TREE_METHOD = 'HIST', EARLY_STOP = FALSE; and COLSAMPLE_BYNODE, MIN_TREE_CHILD_WEIGHT, SUBSAMPLE = 1.0,
    # COLSAMPLE_BYTREE/BYLEVEL = 1.0, MIN_SPLIT_LOSS = 0, L1_REG = 0, CATEGORY_ENCODING_METHOD = 'LABEL_ENCODING')
    X, y = _data(conn, "breast_cancer")
    conn.sql("""CREATE MODEL m OPTIONS (model_type = 'boosted_tree_classifier', booster_type = 'GBTREE',
                num_parallel_tree = 1, max_iterations = 8, tree_method = 'HIST', early_stop = FALSE, subsample = 1.0,
                input_label_cols = ['target'], data_split_method = 'NO_SPLIT', random_seed = 1,
                colsample_bynode = 0.5, min_tree_child_weight = 5, colsample_bytree = 1.0, colsample_bylevel = 1.0,
                min_split_loss = 0, l1_reg = 0, category_encoding_method = 'LABEL_ENCODING', xgboost_version = '1.1',
                approx_global_feature_contrib = TRUE, dart_normalize_type = 'TREE', dropout = 0,)
                AS SELECT * FROM breast_cancer""")
    expected = _xgboost(X, y, {"tree_method": "hist", "seed": 1, "colsample_bynode": 0.5, "min_child_weight": 5,
                               "max_depth": 6, "eta": 0.3, "lambda": 1.0}, 8)
    np.testing.assert_allclose(_probabilities(conn, "breast_cancer"), expected, atol=1e-6)


@pytest.mark.parametrize("options, params", [
    # reference: bigqueryml-syntax-create-boosted-tree: SUBSAMPLE, the COLSAMPLE_* and MIN_SPLIT_LOSS at values
    # other than their defaults, and its DART example (BOOSTER_TYPE = 'DART', DART_NORMALIZE_TYPE, DROPOUT)
    ("subsample = 0.85, colsample_bytree = 0.6, colsample_bylevel = 0.7, min_split_loss = 0.5",
     {"subsample": 0.85, "colsample_bytree": 0.6, "colsample_bylevel": 0.7, "gamma": 0.5}),
    ("booster_type = 'DART', dart_normalize_type = 'FOREST', dropout = 0.2, l1_reg = 0.5",
     {"booster": "dart", "normalize_type": "forest", "rate_drop": 0.2, "alpha": 0.5}),
    ("num_parallel_tree = 3, subsample = 0.5, tree_method = 'APPROX'",
     {"num_parallel_tree": 3, "subsample": 0.5, "tree_method": "approx"}),
])
def test_boosted_tree_subsample_dart_and_colsample_equal_xgboost(conn, options, params):
    X, y = _data(conn, "breast_cancer")
    conn.sql(f"""CREATE MODEL m OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['target'],
                 data_split_method = 'NO_SPLIT', max_iterations = 6, early_stop = FALSE, random_seed = 4, {options})
                 AS SELECT * FROM breast_cancer""")
    if params.get("tree_method") == "approx":  # the approx method sketches the rows itself: a plain DMatrix
        booster = xgb.train({"objective": "binary:logistic", "seed": 4, **params}, xgb.DMatrix(X, y), 6)
        positive = booster.predict(xgb.DMatrix(X))
        expected = np.column_stack([1 - positive, positive])
    else:
        expected = _xgboost(X, y, {"seed": 4, **params}, 6)
    np.testing.assert_allclose(_probabilities(conn, "breast_cancer"), expected, atol=1e-6)


def test_random_forest_reference_example_with_subsample_and_colsample_bynode(conn):
    # reference: bigqueryml-syntax-create-random-forest (its example: NUM_PARALLEL_TREE = 50 — 20 here —,
    # TREE_METHOD = 'HIST', EARLY_STOP = FALSE, SUBSAMPLE = 0.85; and COLSAMPLE_BYNODE, MIN_TREE_CHILD_WEIGHT,
    # MIN_REL_PROGRESS, L1_REG = L2_REG = 0)
    X, y = _data(conn, "breast_cancer")
    conn.sql("""CREATE MODEL m OPTIONS (model_type = 'random_forest_classifier', num_parallel_tree = 20,
                tree_method = 'HIST', early_stop = FALSE, subsample = 0.85, input_label_cols = ['target'],
                data_split_method = 'NO_SPLIT', random_seed = 1, colsample_bynode = 0.5, min_tree_child_weight = 2,
                min_rel_progress = 0.2, l1_reg = 0, l2_reg = 0) AS SELECT * FROM breast_cancer""")
    forest = RandomForestClassifier(n_estimators=20, max_depth=20, max_samples=0.85, max_features=0.5,
                                    min_samples_leaf=2, random_state=1)
    np.testing.assert_allclose(_probabilities(conn, "breast_cancer"), forest.fit(X, y).predict_proba(X), atol=1e-9)


def test_linear_regression_fit_intercept_and_the_solver_options(conn):
    # reference: bigqueryml-syntax-create-glm (FIT_INTERCEPT; LS_INIT_LEARN_RATE as in its first example;
    # OPTIMIZE_STRATEGY = 'NORMAL_EQUATION', LEARN_RATE_STRATEGY = 'LINE_SEARCH', CALCULATE_P_VALUES = FALSE,
    # CATEGORY_ENCODING_METHOD = 'ONE_HOT_ENCODING', WARM_START = FALSE, DATA_SPLIT_TEST_FRACTION = 0)
    X, y = _data(conn, "diabetes")
    conn.sql("""CREATE MODEL m OPTIONS (model_type = 'linear_reg', input_label_cols = ['target'], fit_intercept = FALSE,
                ls_init_learn_rate = 0.15, optimize_strategy = 'NORMAL_EQUATION', learn_rate_strategy = 'LINE_SEARCH',
                calculate_p_values = FALSE, category_encoding_method = 'ONE_HOT_ENCODING', warm_start = FALSE,
                data_split_test_fraction = 0) AS SELECT * FROM diabetes""")
    got = np.array(conn.sql("SELECT predicted_target FROM ML.PREDICT(MODEL m, TABLE diabetes)").fetchall())[:, 0]
    expected = make_pipeline(StandardScaler(), LinearRegression(fit_intercept=False)).fit(X, y).predict(X)
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_logistic_regression_fit_intercept(conn):
    # reference: bigqueryml-syntax-create-glm (FIT_INTERCEPT for LOGISTIC_REG)
    X, y = _data(conn, "breast_cancer")
    conn.sql("""CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['target'], fit_intercept = FALSE,
                data_split_method = 'NO_SPLIT') AS SELECT * FROM breast_cancer""")
    expected = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, fit_intercept=False, max_iter=1000))
    np.testing.assert_allclose(_probabilities(conn, "breast_cancer"), expected.fit(X, y).predict_proba(X), atol=1e-6)


def _clusters(conn) -> np.ndarray:
    return np.array(conn.sql("SELECT centroid_id FROM ML.PREDICT(MODEL m, TABLE flowers)").fetchall())[:, 0]


@pytest.fixture
def flowers(conn):
    """iris without its label, with a BOOL column marking one flower of each species (rows 0, 50 and 100)."""
    datasets.load(conn.duckdb, "iris")
    conn.duckdb.execute("CREATE TABLE flowers AS SELECT * EXCLUDE (target), (row_number() OVER () - 1) % 50 = 0 "
                        "AS init_col FROM iris")
    return conn, conn.duckdb.sql("SELECT * EXCLUDE (target) FROM iris").fetchnumpy()


@pytest.mark.parametrize("method, init", [("RANDOM", "random"), ("KMEANS++", "k-means++")])
def test_kmeans_init_method(flowers, method, init):
    # reference: bigqueryml-syntax-create-kmeans (KMEANS_INIT_METHOD = 'RANDOM' | 'KMEANS++', DISTANCE_TYPE = 'EUCLIDEAN')
    conn, columns = flowers
    conn.sql(f"""CREATE MODEL m OPTIONS (model_type = 'kmeans', num_clusters = 3, kmeans_init_method = '{method}',
                 distance_type = 'EUCLIDEAN', random_seed = 5) AS SELECT * EXCLUDE (init_col) FROM flowers""")
    X = StandardScaler().fit_transform(np.column_stack(list(columns.values())))
    expected = KMeans(n_clusters=3, init=init, n_init="auto", max_iter=20, random_state=5).fit(X)
    np.testing.assert_array_equal(_clusters(conn) - 1, expected.predict(X))


def test_kmeans_custom_init_starts_at_the_marked_rows(flowers):
    # reference: bigqueryml-syntax-create-kmeans (KMEANS_INIT_METHOD = 'CUSTOM' with KMEANS_INIT_COL, the column
    # left out of the features; STANDARDIZE_FEATURES = FALSE; EARLY_STOP = FALSE)
    conn, columns = flowers
    conn.sql("""CREATE MODEL m OPTIONS (model_type = 'kmeans', num_clusters = 3, kmeans_init_method = 'CUSTOM',
                kmeans_init_col = 'INIT_COL', standardize_features = FALSE, early_stop = FALSE) AS SELECT * FROM flowers""")
    X = np.column_stack(list(columns.values()))
    expected = KMeans(n_clusters=3, init=X[[0, 50, 100]], n_init=1, max_iter=20, tol=0.0).fit(X)
    np.testing.assert_array_equal(_clusters(conn) - 1, expected.predict(X))
    assert [r[0] for r in conn.sql("SELECT input FROM ML.FEATURE_INFO(MODEL m)").fetchall()] == list(columns)


def test_kmeans_custom_init_needs_one_marked_row_per_cluster(flowers):
    # reference: bigqueryml-syntax-create-kmeans (KMEANS_INIT_COL: "The number of TRUE rows … must be equal to NUM_CLUSTERS")
    conn, _ = flowers
    with pytest.raises(DataError, match="kmeans_init_col 'init_col' is TRUE on 3 training row.s.; it must be TRUE on "
                                        "exactly num_clusters = 4 rows"):
        conn.sql("""CREATE MODEL m OPTIONS (model_type = 'kmeans', num_clusters = 4, kmeans_init_method = 'CUSTOM',
                    kmeans_init_col = 'init_col') AS SELECT * FROM flowers""")
    with pytest.raises(DataError, match="kmeans_init_col 'sepal_length_cm' must be a BOOL column"):
        conn.sql("""CREATE MODEL m OPTIONS (model_type = 'kmeans', num_clusters = 3, kmeans_init_method = 'CUSTOM',
                    kmeans_init_col = 'sepal_length_cm') AS SELECT * FROM flowers""")
    for options in ("kmeans_init_method = 'CUSTOM'", "kmeans_init_col = 'init_col'"):
        with pytest.raises(OptionError, match="kmeans_init_method = 'CUSTOM' and kmeans_init_col go together"):
            conn.sql(f"CREATE MODEL m OPTIONS (model_type = 'kmeans', {options}) AS SELECT * FROM flowers")


HONOUR = "is a BigQuery ML option sqlml cannot honour for model_type"
REFUSED = [
    # reference: bigqueryml-syntax-create-glm
    ("linear_reg", "optimize_strategy = 'BATCH_GRADIENT_DESCENT'", "not by batch gradient descent"),
    ("logistic_reg", "optimize_strategy = 'NORMAL_EQUATION'", "logistic regression has no normal equation"),
    ("linear_reg", "learn_rate_strategy = 'CONSTANT'", "a constant learning rate has no equivalent"),
    ("linear_reg", "learn_rate = 0.1", "only with learn_rate_strategy = 'CONSTANT'"),
    ("logistic_reg", "calculate_p_values = TRUE", "do not compute p-values"),
    ("linear_reg", "category_encoding_method = 'DUMMY_ENCODING'", "it has no dummy encoding"),
    ("linear_reg", "warm_start = TRUE", "does not continue from the previous one"),
    # reference: bigqueryml-syntax-create-boosted-tree
    ("boosted_tree_classifier", "category_encoding_method = 'TARGET_ENCODING'", "target encoding are not implemented"),
    ("boosted_tree_regressor", "category_encoding_method = 'ONE_HOT_ENCODING'", "split on by XGBoost as a categorical"),
    # reference: bigqueryml-syntax-create-random-forest
    ("random_forest_classifier", "l1_reg = 1", "no L1 penalty on leaf weights"),
    ("random_forest_regressor", "l2_reg = 1", "no leaf weights to penalize"),
    ("random_forest_classifier", "colsample_bylevel = 0.5", "not per tree or per level"),
    ("random_forest_classifier", "min_split_loss = 0.5", "no minimum loss reduction per split"),
    # reference: bigqueryml-syntax-create-dnn-models (its example's OPTIMIZER = 'ADAGRAD' and DROPOUT = 0.1)
    ("dnn_classifier", "optimizer = 'ADAGRAD'", "not ADAGRAD, FTRL or RMSPROP"),
    ("dnn_classifier", "activation_fn = 'ELU'", "relu, logistic .sigmoid., tanh and identity activations only"),
    ("dnn_classifier", "dropout = 0.1", "has no dropout layers"),
    ("dnn_regressor", "l1_reg = 0.5", "an L2 penalty only"),
    ("dnn_regressor", "warm_start = TRUE", "does not continue from the previous one"),
    ("dnn_classifier", "min_rel_progress = 0.001", "not on a relative progress per iteration"),
    # reference: bigqueryml-syntax-create-kmeans
    ("kmeans", "distance_type = 'COSINE'", "minimizes Euclidean distances only"),
    ("kmeans", "warm_start = TRUE", "does not continue from the previous one"),
    ("kmeans", "min_rel_progress = 0.5", "not on a relative progress per iteration"),
    # reference: every CREATE MODEL page above (DATA_SPLIT_TEST_FRACTION, MODEL_REGISTRY, VERTEX_AI_*, KMS_KEY_NAME)
    ("linear_reg", "data_split_test_fraction = 0.1", "it keeps no third, test split"),
    ("logistic_reg", "model_registry = 'VERTEX_AI'", "does not register models with Vertex AI"),
    ("dnn_regressor", "vertex_ai_model_id = 'mymodel'", "does not register models with Vertex AI"),
    ("kmeans", "vertex_ai_model_version_aliases = ['prod']", "does not register models with Vertex AI"),
    ("random_forest_regressor", "kms_key_name = 'projects/p/keys/k'", "does not encrypt them with Cloud KMS"),
]


@pytest.mark.parametrize("model_type, option, why", REFUSED)
def test_a_bigquery_option_sqlml_cannot_honour_is_refused_with_why(conn, model_type, option, why):
    conn.duckdb.execute("CREATE TABLE t AS SELECT 1.0 AS x, 2.0 AS label")
    with pytest.raises(OptionError, match=f"{HONOUR} '{model_type}': .*{why}"):
        conn.sql(f"CREATE MODEL m OPTIONS (model_type = '{model_type}', {option}) AS SELECT * FROM t")


@pytest.mark.parametrize("options, message", [
    # reference: bigqueryml-syntax-create-boosted-tree (CATEGORY_ENCODING_METHOD)
    ("model_type = 'boosted_tree_regressor', category_encoding_method = 'TARGET_ENCODING'",
     "category_encoding_method = 'TARGET_ENCODING' is a BigQuery ML option sqlml cannot honour for model_type "
     "'boosted_tree_regressor': sqlml gives boosted trees one ordinal code per category column, split on by XGBoost "
     "as a categorical feature; one-hot and target encoding are not implemented. Leave it out or set it to "
     "'LABEL_ENCODING'."),
    # reference: bigqueryml-syntax-create-dnn-models (ACTIVATION_FN = HPARAM_CANDIDATES([...])): the candidate at fault
    ("model_type = 'dnn_regressor', num_trials = 2, activation_fn = HPARAM_CANDIDATES(['RELU', 'SELU'])",
     "activation_fn = 'SELU' is a BigQuery ML option sqlml cannot honour for model_type 'dnn_regressor': "
     "scikit-learn's MLP has the relu, logistic (sigmoid), tanh and identity activations only. "
     "Leave it out or set it to one of 'RELU', 'SIGMOID', 'TANH'."),
])
def test_the_refusal_names_the_value_and_says_which_values_work(conn, options, message):
    conn.duckdb.execute("CREATE TABLE t AS SELECT 1.0 AS x, 2.0 AS label")
    with pytest.raises(OptionError) as refused:
        conn.sql(f"CREATE MODEL m OPTIONS ({options}) AS SELECT * FROM t")
    assert str(refused.value) == message


def test_names_bigquery_does_not_have_stay_unknown_and_others_keep_their_scope(conn):
    # reference: bigqueryml-syntax-create-kmeans (K-means documents no ACTIVATION_FN)
    conn.duckdb.execute("CREATE TABLE t AS SELECT 1.0 AS x, 2.0 AS label")
    with pytest.raises(OptionError, match="Unknown option 'booster'. Did you mean 'booster_type'?"):
        conn.sql("CREATE MODEL m OPTIONS (model_type = 'boosted_tree_regressor', booster = 'GBTREE') AS SELECT * FROM t")
    with pytest.raises(OptionError, match="Option 'activation_fn' does not apply to model_type 'kmeans'; it applies to "
                                          "dnn_classifier, dnn_regressor"):
        conn.sql("CREATE MODEL m OPTIONS (model_type = 'kmeans', activation_fn = 'RELU') AS SELECT * FROM t")


def test_the_example_runs_in_the_bigquery_dialect(penguins):
    # reference: bigqueryml-syntax-create-{boosted-tree,dnn-models,kmeans} and bigqueryml-syntax-alter-model, their
    # examples as examples/bigquery_options.sql runs them
    bigquery = sqlml.Connection(penguins.duckdb, progress=lambda m: None, dialect="bigquery")
    with open("examples/bigquery_options.sql") as f:
        last = bigquery.sql(f.read()).fetchall()
    assert last == [("bqml_tutorial.species_trees", "2030-01-01T00:00:00+00:00", '{"team":"ml","stage":"example"}')]
    counts = penguins.sql("SELECT centroid_id, count(*) FROM ML.PREDICT(MODEL bqml_tutorial.penguin_clusters, "
                          "(SELECT * FROM penguins WHERE body_mass_g IS NOT NULL)) GROUP BY 1 ORDER BY 1").fetchall()
    assert sum(n for _, n in counts) == 342 and len(counts) == 3
    dart = penguins.executor.load("bqml_tutorial.species_dart").estimator
    config = dart.config()["learner"]["gradient_booster"]
    assert config["name"] == "dart" and config["dart_train_param"]["normalize_type"] == "forest"
    assert float(config["gbtree"]["tree_train_param"]["subsample"]) == pytest.approx(0.85)
    assert dart.booster.num_boosted_rounds() == 30
