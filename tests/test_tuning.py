"""Hyperparameter tuning and model_type = 'auto' on scikit-learn's breast cancer data (569 tumours).

Objectives are recomputed here with sklearn.metrics on ML.PREDICT output for the validation rows; the
untuned model is an ordinary CREATE MODEL fitted on the same rows; a trial's predictions are compared
with its stored estimator read back from ``sqlml.trials``.
"""

import itertools
import re

import numpy as np
import pytest
from conftest import held_out
from sklearn import metrics as skm
from threadpoolctl import threadpool_limits

import sqlml
from sqlml import datasets
from sqlml.errors import OptionError, SqlmlError
from sqlml.model import envelope as storage
from sqlml.model.preprocess import Preprocessor
from sqlml.train import tune as tuning

SEED = 7
TUNED = f"""CREATE OR REPLACE MODEL tuned OPTIONS (model_type = 'logistic_reg', input_label_cols = ['target'],
    random_seed = {SEED}, num_trials = 10, hparam_tuning_objectives = ['log_loss'],
    l2_reg = HPARAM_RANGE(0, 10)) AS SELECT * FROM breast_cancer"""


@pytest.fixture(autouse=True)
def one_thread():
    """The machine is shared: OpenMP spinning on busy cores makes small fits much slower."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def bc():
    """A connection with ``breast_cancer`` and the model ``tuned``; ``messages`` holds its progress."""
    messages: list[str] = []
    conn = sqlml.connect(progress=messages.append)
    datasets.load(conn.duckdb, "breast_cancer")
    conn.sql(TUNED)
    conn.messages = messages
    yield conn
    conn.close()


def rows_of(conn, table="breast_cancer", seed=SEED):
    """(fit, validation, evaluation) row positions of a tuned model trained on ``table`` with ``seed``, by the
    documented rules: AUTO_SPLIT holds out the evaluation rows (20 % of 569), then docs/tuning.md sets 20 % of
    the training rows aside as validation rows, hashed among them with the seed plus VALIDATION_SEED."""
    rows = conn.duckdb.sql(f"SELECT * FROM {table}").to_arrow_table()
    evaluation = held_out(rows, seed=seed)
    training = np.setdiff1d(np.arange(rows.num_rows), evaluation)
    validation = training[held_out(rows.take(training), 0.2, seed + 1_000_003)]
    return np.setdiff1d(training, validation), validation, evaluation


def subset(conn, positions, table="breast_cancer"):
    return f"(SELECT * FROM {table} WHERE rowid IN ({', '.join(str(int(p)) for p in positions)}))"


def probabilities(conn, model, data, trial_id=None):
    """Positive-class probabilities and labels from ML.PREDICT (optionally of one trial)."""
    struct = f", STRUCT({trial_id} AS trial_id)" if trial_id is not None else ""
    frame = conn.sql(f"""SELECT target, list_filter(predicted_target_probs, p -> p.label = 1)[1].prob AS p
                         FROM ML.PREDICT(MODEL {model}, {data}{struct})""").df()
    return frame["target"].to_numpy(), frame["p"].to_numpy()


def trial_info(conn, model="tuned"):
    return conn.sql(f"SELECT * FROM ML.TRIAL_INFO(MODEL {model}) ORDER BY trial_id").to_arrow_table().to_pylist()


def test_splits_nest_validation_inside_training(bc):
    fit, validation, evaluation = rows_of(bc)
    assert (len(fit), len(validation), len(evaluation)) == (361, 103, 105)  # docs/tuning.md's figures
    assert not set(validation) & set(evaluation) and not set(fit) & set(evaluation) and not set(fit) & set(validation)
    stored = bc.duckdb.sql("SELECT training_rows, eval_rows FROM sqlml.models WHERE name = 'tuned'").fetchall()
    assert stored == [(len(fit), len(evaluation))]  # the version is the optimal trial, fitted on the fit rows
    # The stored evaluation is of exactly those held-out rows, measured here with sklearn.metrics.
    y, p = probabilities(bc, "tuned", subset(bc, evaluation))
    row = bc.sql("SELECT log_loss, roc_auc FROM ML.EVALUATE(MODEL tuned)").fetchall()[0]
    assert row == (pytest.approx(skm.log_loss(y, p), rel=1e-9), pytest.approx(skm.roc_auc_score(y, p), rel=1e-9))


def test_every_trial_listed_inside_the_declared_range_and_scored_on_validation_rows(bc):
    trials = trial_info(bc)
    assert [t["trial_id"] for t in trials] == list(range(1, 11))
    assert all(t["status"] == "SUCCEEDED" and t["error_message"] is None for t in trials)
    assert all(0 <= t["hyperparameters"]["l2_reg"] <= 10 for t in trials)
    assert len({t["hyperparameters"]["l2_reg"] for t in trials}) == 10
    fit, validation, _ = rows_of(bc)
    for t in trials:  # the stored objective is the log loss on exactly the validation rows
        y, p = probabilities(bc, "tuned", subset(bc, validation), t["trial_id"])
        assert t["hparam_tuning_evaluation_metrics"]["log_loss"] == pytest.approx(skm.log_loss(y, p), rel=1e-9)
        assert t["eval_loss"] == pytest.approx(skm.log_loss(y, p), rel=1e-9)
        y_fit, p_fit = probabilities(bc, "tuned", subset(bc, fit), t["trial_id"])
        assert t["training_loss"] == pytest.approx(skm.log_loss(y_fit, p_fit), rel=1e-9)


def test_optimal_trial_has_the_best_objective_and_is_the_default_model(bc):
    trials = trial_info(bc)
    losses = {t["trial_id"]: t["hparam_tuning_evaluation_metrics"]["log_loss"] for t in trials}
    optimal = [t["trial_id"] for t in trials if t["is_optimal"]]
    assert optimal == [min(losses, key=losses.get)]
    _, validation, _ = rows_of(bc)
    data = subset(bc, validation)
    assert np.array_equal(probabilities(bc, "tuned", data)[1], probabilities(bc, "tuned", data, optimal[0])[1])


def test_tuning_matches_or_beats_the_untuned_model_on_the_same_validation_rows(bc):
    fit, validation, _ = rows_of(bc)
    bc.sql(f"""CREATE OR REPLACE MODEL untuned OPTIONS (model_type = 'logistic_reg', input_label_cols = ['target'],
               data_split_method = 'NO_SPLIT') AS {subset(bc, fit)[1:-1]}""")
    data = subset(bc, validation)
    untuned = skm.log_loss(*probabilities(bc, "untuned", data))
    tuned = skm.log_loss(*probabilities(bc, "tuned", data))
    assert tuned <= untuned + 1e-12
    # Trial 1 is the untuned default (l2_reg = 1, scikit-learn's C = 1) fitted on the same rows: the same model.
    assert trial_info(bc)[0]["hyperparameters"]["l2_reg"] == 1
    assert skm.log_loss(*probabilities(bc, "tuned", data, 1)) == pytest.approx(untuned, rel=1e-9)


def test_trial_id_selects_that_trials_stored_estimator(bc):
    _, validation, _ = rows_of(bc)
    blob, = bc.duckdb.sql("SELECT model FROM sqlml.trials WHERE name = 'tuned' AND trial_id = 3").fetchall()[0]
    estimator, header = storage.loads(blob)
    data = bc.duckdb.sql(subset(bc, validation)[1:-1]).to_arrow_table()
    expected = estimator.predict_proba(Preprocessor.from_dict(header["preprocess"]).transform(data))[:, 1]
    _, got = probabilities(bc, "tuned", subset(bc, validation), 3)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    assert not np.allclose(got, probabilities(bc, "tuned", subset(bc, validation), 1)[1])
    evaluated = bc.sql("SELECT log_loss FROM ML.EVALUATE(MODEL tuned, "
                       f"{subset(bc, validation)}, STRUCT(3 AS trial_id))").fetchall()[0][0]
    assert evaluated == pytest.approx(trial_info(bc)[2]["hparam_tuning_evaluation_metrics"]["log_loss"], rel=1e-9)


def test_progress_reports_each_trial_with_the_running_best(bc):
    lines = [m for m in bc.messages if m.startswith("Trial ")]
    parsed = [re.fullmatch(r"Trial (\d+)/10: log_loss=(\S+) \(best (\S+)\)", m) for m in lines]
    assert all(parsed) and [int(p[1]) for p in parsed] == list(range(1, 11))
    values = [float(p[2]) for p in parsed]
    assert [float(p[3]) for p in parsed] == pytest.approx(list(np.minimum.accumulate(values)), rel=1e-3)


def test_grid_search_covers_the_grid(bc):
    bc.sql("""CREATE OR REPLACE MODEL grid OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['target'],
              random_seed = 1, max_iterations = 5, num_trials = 10, hparam_tuning_algorithm = 'GRID_SEARCH',
              max_tree_depth = HPARAM_CANDIDATES([2, 3]), learn_rate = HPARAM_CANDIDATES([0.1, 0.3]))
              AS SELECT * FROM breast_cancer""")
    trials = trial_info(bc, "grid")
    seen = sorted((t["hyperparameters"]["max_tree_depth"], t["hyperparameters"]["learn_rate"]) for t in trials)
    assert seen == sorted(itertools.product([2, 3], [0.1, 0.3]))
    roc = {t["trial_id"]: t["hparam_tuning_evaluation_metrics"]["roc_auc"] for t in trials}
    assert [t["trial_id"] for t in trials if t["is_optimal"]] == [max(roc, key=roc.get)]


def test_evaluation_split_does_not_influence_tuning(bc):
    """Scrambling the evaluation rows (labels flipped, features shuffled) changes no trial, only ML.EVALUATE.
    The evaluation rows are a CUSTOM split (a hash split would move scrambled rows to other sides)."""
    _, _, evaluation = rows_of(bc, seed=3)
    held = f"rowid IN ({', '.join(map(str, evaluation))})"
    bc.duckdb.sql(f"CREATE OR REPLACE TABLE marked AS SELECT *, {held} AS is_eval FROM breast_cancer ORDER BY rowid")
    bc.duckdb.sql("""CREATE OR REPLACE TABLE scrambled AS
        SELECT * REPLACE (CASE WHEN is_eval THEN 1 - target ELSE target END AS target,
                          CASE WHEN is_eval THEN mean_radius * 3 ELSE mean_radius END AS mean_radius)
        FROM marked ORDER BY rowid""")
    for name, table in (("clean", "marked"), ("dirty", "scrambled")):
        bc.sql(f"""CREATE OR REPLACE MODEL {name} OPTIONS (model_type = 'logistic_reg', input_label_cols = ['target'],
                   random_seed = 3, num_trials = 4, hparam_tuning_algorithm = 'RANDOM_SEARCH',
                   data_split_method = 'CUSTOM', data_split_col = 'is_eval',
                   l2_reg = HPARAM_RANGE(0.01, 10)) AS SELECT * FROM {table}""")
    assert trial_info(bc, "clean") == trial_info(bc, "dirty")
    clean, dirty = (bc.sql(f"SELECT accuracy FROM ML.EVALUATE(MODEL {m})").fetchall()[0][0] for m in ("clean", "dirty"))
    assert dirty < 0.5 < clean


def test_a_failing_trial_is_recorded_and_the_others_go_on(bc):
    bc.sql("""CREATE OR REPLACE MODEL clusters OPTIONS (model_type = 'kmeans', random_seed = 1, num_trials = 3,
              hparam_tuning_algorithm = 'GRID_SEARCH', num_clusters = HPARAM_CANDIDATES([2, 3, 58]))
              AS SELECT * EXCLUDE (target) FROM breast_cancer LIMIT 60""")
    trials = {t["hyperparameters"]["num_clusters"]: t for t in trial_info(bc, "clusters")}
    fit, _, _ = rows_of(bc, "(SELECT * EXCLUDE (target) FROM breast_cancer LIMIT 60)", seed=1)  # 60 rows: no evaluation split
    assert trials[58]["status"] == "FAILED"
    assert f"num_clusters = 58 is more than the {len(fit)} training row(s)" in trials[58]["error_message"]
    assert trials[2]["status"] == trials[3]["status"] == "SUCCEEDED"
    dbi = {k: trials[k]["hparam_tuning_evaluation_metrics"]["davies_bouldin_index"] for k in (2, 3)}
    assert [k for k, t in trials.items() if t["is_optimal"]] == [min(dbi, key=dbi.get)]
    with pytest.raises(SqlmlError, match=f"Trial {trials[58]['trial_id']} of model 'clusters' failed"):
        bc.sql(f"SELECT * FROM ML.PREDICT(MODEL clusters, TABLE breast_cancer, "
               f"STRUCT({trials[58]['trial_id']} AS trial_id))")


def test_auto_keeps_the_leaderboards_best_and_ranks_the_baseline(bc):
    bc.sql(f"""CREATE OR REPLACE MODEL automl OPTIONS (model_type = 'auto', input_label_cols = ['target'],
               random_seed = {SEED}, hparam_tuning_objectives = ['log_loss']) AS SELECT * FROM breast_cancer""")
    board = bc.sql("SELECT * FROM ML.LEADERBOARD(MODEL automl)").to_arrow_table().to_pylist()
    values = [r["objective_value"] for r in board]
    assert values == sorted(values) and [r["rank"] for r in board] == list(range(1, len(board) + 1))
    assert {r["model_type"] for r in board} == {"baseline", *tuning.AUTO_TYPES["classification"]}
    fit, validation, _ = rows_of(bc)
    labels = bc.duckdb.sql("SELECT target FROM breast_cancer").df()["target"].to_numpy()
    prior = np.mean(labels[fit])  # the trivial baseline: the training class prior for every row
    baseline, = [r for r in board if r["model_type"] == "baseline"]
    assert baseline["objective_value"] == pytest.approx(skm.log_loss(labels[validation], np.full(len(validation), prior)))
    best = next(r for r in board if r["model_type"] != "baseline")
    kept, = bc.duckdb.sql("SELECT model_type FROM sqlml.models WHERE name = 'automl'").fetchall()[0]
    assert best["is_optimal"] and kept == best["model_type"]
    _, p = probabilities(bc, "automl", subset(bc, validation))
    assert skm.log_loss(labels[validation], p) == pytest.approx(best["objective_value"], rel=1e-9)
    assert all(r["training_seconds"] >= 0 for r in board)


def test_auto_stops_at_the_time_budget(bc):
    bc.sql("""CREATE OR REPLACE MODEL quick OPTIONS (model_type = 'auto', input_label_cols = ['target'],
              time_budget_seconds = 0.001) AS SELECT * FROM breast_cancer""")
    board = bc.sql("SELECT model_type FROM ML.LEADERBOARD(MODEL quick)").fetchall()
    assert sorted(board) == [("baseline",), ("logistic_reg",)]


def test_auto_regression_from_a_fractional_label(bc):
    bc.sql("""CREATE OR REPLACE MODEL radius OPTIONS (model_type = 'auto', input_label_cols = ['mean_radius'],
              max_trials = 2, random_seed = 1) AS SELECT * EXCLUDE (target) FROM breast_cancer""")
    board = bc.sql("SELECT model_type, objective, objective_value FROM ML.LEADERBOARD(MODEL radius)").fetchall()
    assert {r[0] for r in board} == {"baseline", "linear_reg", "boosted_tree_regressor"}
    assert {r[1] for r in board} == {"r2_score"}
    assert [r[2] for r in board] == sorted((r[2] for r in board), reverse=True)


BASE = "model_type = 'logistic_reg', input_label_cols = ['target']"


@pytest.mark.parametrize("options, message", [
    (f"{BASE}, num_trials = 3, random_seed = HPARAM_RANGE(1, 5)", "Option 'random_seed' cannot be tuned"),
    (f"{BASE}, num_trials = 3, l2_reg = 0.5", r"num_trials needs something to search: the options of logistic_reg's "
                                              r"default search space \(l2_reg\) are all fixed"),
    (f"{BASE}, l2_reg = HPARAM_RANGE(0, 1)", r"Search spaces \(l2_reg\) need num_trials"),
    (f"{BASE}, num_trials = 3, l2_reg = HPARAM_RANGE(-1, 1)", r"The 'l2_reg' option must be a number in the range \[0, 1,000,000\]. Got -1"),
    (f"{BASE}, num_trials = 3, l2_reg = HPARAM_RANGE(2, 1)", "needs low < high"),
    (f"{BASE}, num_trials = 3, l2_reg = HPARAM_CANDIDATES([])", "needs one non-empty array"),
    (f"{BASE}, num_trials = 3, hparam_tuning_algorithm = 'GRID_SEARCH', l2_reg = HPARAM_RANGE(0, 1)",
     "GRID_SEARCH needs a finite grid: give 'l2_reg'"),
    (f"{BASE}, num_trials = 3, l2_reg = HPARAM_RANGE(0, 1), hparam_tuning_objectives = ['r2_score']",
     "'r2_score' is not an objective for classification"),
    (f"{BASE}, num_trials = 3, l2_reg = HPARAM_RANGE(0, 1), hparam_tuning_algorithm = 'BAYES'",
     "The 'hparam_tuning_algorithm' option must be one of"),
    ("model_type = 'dnn_classifier', input_label_cols = ['target'], num_trials = 2, hidden_units = HPARAM_RANGE(1, 9)",
     "HPARAM_RANGE on 'hidden_units' needs two numbers"),
    ("model_type = 'auto'", "model_type = 'auto' needs input_label_cols"),
    ("model_type = 'auto', input_label_cols = ['target'], l2_reg = 1", "Option 'l2_reg' does not apply to model_type 'auto'"),
    ("model_type = 'auto', input_label_cols = ['target'], num_trials = 3", "takes max_trials"),
])
def test_option_errors(conn, options, message):
    datasets.load(conn.duckdb, "breast_cancer")
    with pytest.raises(OptionError, match=message):
        conn.sql(f"CREATE MODEL bad OPTIONS ({options}) AS SELECT * FROM breast_cancer")
    assert not conn.executor.registry.versions("bad")


def test_trial_errors(bc):
    bc.sql(f"CREATE OR REPLACE MODEL plain OPTIONS ({BASE}) AS SELECT * FROM breast_cancer")
    with pytest.raises(SqlmlError, match="Model 'tuned' version 1 has no trial 99; its trials are 1 to 10"):
        bc.sql("SELECT * FROM ML.EVALUATE(MODEL tuned, STRUCT(99 AS trial_id))")
    with pytest.raises(SqlmlError, match="'plain' version 1 was not tuned, so it has no trial 1"):
        bc.sql("SELECT * FROM ML.PREDICT(MODEL plain, TABLE breast_cancer, STRUCT(1 AS trial_id))")
    with pytest.raises(SqlmlError, match="ML.TRIAL_INFO needs a tuned model"):
        bc.sql("SELECT * FROM ML.TRIAL_INFO(MODEL plain)")
    with pytest.raises(SqlmlError, match="The 'trial_id' parameter of ML.EVALUATE must be an integer in the range \\[1, inf\\]. Got 'two'."):
        bc.sql("SELECT * FROM ML.EVALUATE(MODEL tuned, STRUCT('two' AS trial_id))")


def test_drop_model_drops_its_trials(bc):
    bc.sql(TUNED.replace("tuned", "doomed").replace("num_trials = 10", "num_trials = 2"))
    assert bc.duckdb.sql("SELECT count(*) FROM sqlml.trials WHERE name = 'doomed'").fetchall()[0][0] == 3  # + baseline
    bc.sql("DROP MODEL doomed")
    assert bc.duckdb.sql("SELECT count(*) FROM sqlml.trials WHERE name = 'doomed'").fetchall()[0][0] == 0


def sql_statements(text):
    """Statements of a SQL script without comments, whitespace-normalized."""
    text = re.sub(r"--[^\n]*", "", text)
    return [" ".join(s.split()) for s in text.split(";") if s.strip()]


def test_example_runs_and_the_docs_show_its_statements():
    messages: list[str] = []
    with sqlml.connect(progress=messages.append) as conn:
        datasets.load(conn.duckdb, "breast_cancer")
        with open("examples/tuning_breast_cancer.sql") as f:
            example = f.read()
        conn.sql(example)
        board = conn.sql("SELECT model_type, objective_value FROM ML.LEADERBOARD(MODEL cancer_auto)").fetchall()
        kept = conn.duckdb.sql("SELECT model_type FROM sqlml.models WHERE name = 'cancer_auto'").fetchall()[0][0]
        assert kept == next(m for m, _ in board if m != "baseline")
        assert [v for _, v in board] == sorted(v for _, v in board)  # log_loss: lower first
        assert sum(m.startswith("Trial ") for m in messages) == 12 + 4 + 4
    with open("docs/tuning.md") as f:
        blocks = re.findall(r"```sql\n(.*?)```", f.read(), re.S)
    documented = [s for block in blocks for s in sql_statements(block)]
    assert documented and set(documented) <= set(sql_statements(example))


def test_pr_auc_objective_needs_a_binary_label(conn):
    datasets.load(conn.duckdb, "iris")
    with pytest.raises(OptionError, match="'pr_auc' needs a binary label; 'target' has 3 classes"):
        conn.sql("""CREATE MODEL x OPTIONS (model_type = 'logistic_reg', input_label_cols = ['target'], num_trials = 2,
                    l2_reg = HPARAM_RANGE(0, 1), hparam_tuning_objectives = ['PR_AUC']) AS SELECT * FROM iris""")


def test_kmeans_num_trials_searches_num_clusters_by_davies_bouldin_index(bc):
    # reference: bigqueryml-syntax-create-kmeans (NUM_TRIALS with HPARAM_TUNING_OBJECTIVES = 'DAVIES_BOULDIN_INDEX'
    # and no search space: BigQuery's default space, num_clusters over its range)
    source = "(SELECT * EXCLUDE (target) FROM breast_cancer LIMIT 400)"  # under 500 rows: no evaluation split
    bc.sql(f"""CREATE OR REPLACE MODEL segments OPTIONS (model_type = 'kmeans', num_trials = 4, random_seed = 1,
               hparam_tuning_objectives = ['DAVIES_BOULDIN_INDEX']) AS SELECT * FROM {source}""")
    trials = trial_info(bc, "segments")
    clusters = [t["hyperparameters"]["num_clusters"] for t in trials]
    assert clusters[0] == 4 and all(2 <= k <= 100 for k in clusters) and len(set(clusters)) > 1
    _, validation, _ = rows_of(bc, source, seed=1)
    bc.duckdb.register("validation_rows", bc.duckdb.sql(f"SELECT * FROM {source}").to_arrow_table().take(validation))
    model = bc.executor.load("segments")
    X = model.features(bc.duckdb.sql("SELECT * FROM validation_rows").to_arrow_table())
    scores = {}
    for t in trials:
        assigned = [r[0] for r in bc.sql(f"SELECT centroid_id FROM ML.PREDICT(MODEL segments, TABLE validation_rows, "
                                         f"STRUCT({t['trial_id']} AS trial_id))").fetchall()]
        defined = 1 < len(set(assigned)) < len(assigned)
        expected = skm.davies_bouldin_score(X, assigned) if defined else None
        assert t["hparam_tuning_evaluation_metrics"]["davies_bouldin_index"] == (
            pytest.approx(expected, rel=1e-9) if defined else None)
        if t["status"] == "SUCCEEDED":
            scores[t["trial_id"]] = expected
    assert [t["trial_id"] for t in trials if t["is_optimal"]] == [min(scores, key=scores.get)]
