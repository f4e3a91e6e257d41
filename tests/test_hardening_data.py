"""Issue 11, data and resources: bad data, impossible sizes and huge options are sqlml errors that say
what was expected and what was found; Ctrl-C stores nothing; the default logistic_reg is a sensible model."""

from __future__ import annotations

import itertools
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
import typing as t

import numpy as np
import pandas as pd
import pytest
from conftest import held_out
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sqlml
from sqlml import datasets
from sqlml.errors import DataError, OptionError

LOGISTIC = "model_type = 'logistic_reg', input_label_cols = ['y']"


@pytest.fixture
def small(conn):
    """``t``: 40 rows, a number ``x`` and a binary label ``y``; model ``m`` trained on it."""
    conn.sql("CREATE TABLE t AS SELECT range::DOUBLE AS x, (range % 2)::INTEGER AS y FROM range(40)")
    conn.sql(f"CREATE MODEL m OPTIONS ({LOGISTIC}) AS SELECT * FROM t")
    return conn


@pytest.mark.parametrize("query, found", [
    ("SELECT 'abc' AS x", "string"),
    ("SELECT '1.5' AS x", "string"),
    ("SELECT [1.0, 2.0] AS x", "list<l: decimal128(2, 1)>"),
    ("SELECT {'a': 1.0} AS x", "struct<a: decimal128(2, 1)>"),
    ("SELECT TRUE AS x", "bool"),
])
def test_a_feature_of_the_wrong_type_at_prediction_names_expected_and_found(small, query, found):
    with pytest.raises(DataError) as e:
        small.sql(f"SELECT * FROM ML.PREDICT(MODEL m, ({query}))")
    assert str(e.value) == (f"Column 'x' must be a number, as in training; the input has {found}. "
                            "Convert it in the query (CAST(x AS DOUBLE)) or fix the column.")


def test_a_number_where_a_category_was_trained_is_refused(small):
    small.sql(f"CREATE MODEL c OPTIONS ({LOGISTIC}) AS SELECT x::VARCHAR AS s, y FROM t")
    with pytest.raises(DataError, match=r"^Column 's' must be a string or a boolean, as in training; the input has "
                                        r"double. Convert it in the query \(CAST\(s AS VARCHAR\)\)"):
        small.sql("SELECT * FROM ML.PREDICT(MODEL c, (SELECT 1.5::DOUBLE AS s))")
    # An ENUM where strings were trained is a string column; a column of only NULLs fits either kind.
    small.sql("CREATE TYPE level AS ENUM ('1.0', '2.0')")
    out = small.sql("SELECT predicted_y FROM ML.PREDICT(MODEL c, (SELECT '1.0'::level AS s))").fetchall()
    assert out == small.sql("SELECT predicted_y FROM ML.PREDICT(MODEL c, (SELECT '1.0' AS s))").fetchall()
    assert len(small.sql("SELECT * FROM ML.PREDICT(MODEL m, (SELECT NULL AS x))").fetchall()) == 1


def test_nested_types_are_refused_at_training_by_name(small):
    for column, dtype in (("[x]", "list<l: double>"), ("{'a': x}", "struct<a: double>")):
        with pytest.raises(DataError) as e:
            small.sql(f"CREATE MODEL n OPTIONS ({LOGISTIC}) AS SELECT {column} AS l, y FROM t")
        assert str(e.value) == (f"Column 'l' has type {dtype}, which sqlml cannot use as a feature. Convert it in "
                                "the query (e.g. EXTRACT(hour FROM ts) AS hour) or leave it out.")


def test_duplicate_column_names_are_refused_at_training_prediction_and_evaluation(small):
    message = ("The {} has more than one column named 'x'; give each column its own name "
               "(e.g. SELECT a.x, b.x AS x_2 ...).")
    with pytest.raises(DataError) as e:
        small.sql(f"CREATE MODEL d OPTIONS ({LOGISTIC}) AS SELECT x, x, y FROM t")
    assert str(e.value) == message.format("training query")
    with pytest.raises(DataError) as e:
        small.sql("SELECT * FROM ML.PREDICT(MODEL m, (SELECT x, x, y FROM t))")
    assert str(e.value) == message.format("input")
    with pytest.raises(DataError) as e:
        small.sql("SELECT * FROM ML.EVALUATE(MODEL m, (SELECT x, x, y FROM t))")
    assert str(e.value) == message.format("evaluation data")


def test_enum_and_pandas_category_labels_train_and_evaluate_like_strings(small):
    small.sql("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')")
    small.sql("CREATE TABLE moods AS SELECT x, (CASE WHEN x < 20 THEN 'sad' ELSE 'happy' END)::mood AS y FROM t")
    small.sql(f"CREATE MODEL e OPTIONS ({LOGISTIC}) AS SELECT * FROM moods")
    small.sql(f"CREATE MODEL s OPTIONS ({LOGISTIC}) AS SELECT x, y::VARCHAR AS y FROM moods")
    frame = pd.DataFrame({"x": np.arange(40.0), "y": pd.Categorical(np.where(np.arange(40) < 20, "sad", "happy"))})
    small.duckdb.register("frame", frame)
    small.sql(f"CREATE MODEL p OPTIONS ({LOGISTIC}) AS SELECT * FROM frame")
    reference = small.sql("SELECT predicted_y, predicted_y_probs FROM ML.PREDICT(MODEL s, TABLE moods)").fetchall()
    for name in ("e", "p"):
        assert small.sql(f"SELECT predicted_y, predicted_y_probs FROM ML.PREDICT(MODEL {name}, TABLE moods)").fetchall() \
            == reference
        assert small.sql(f"SELECT accuracy FROM ML.EVALUATE(MODEL {name}, TABLE frame)").fetchall() == \
            small.sql("SELECT accuracy FROM ML.EVALUATE(MODEL s, TABLE moods)").fetchall()


def test_ubigint_values_above_2_to_the_53(small):
    big = 2**53
    # Features round to the nearest double (no failure); UBIGINT classes stay exact and distinct.
    small.sql(f"CREATE MODEL u OPTIONS ({LOGISTIC}) AS SELECT (x::UBIGINT + {big}::UBIGINT * 100) AS big, y FROM t")
    predicted = small.sql(f"SELECT predicted_y FROM ML.PREDICT(MODEL u, (SELECT (x::UBIGINT + {big}::UBIGINT * 100) "
                          "AS big FROM t))").fetchall()
    assert len(predicted) == 40
    small.sql(f"CREATE MODEL labels OPTIONS ({LOGISTIC}) AS SELECT x, ({big + 1}::UBIGINT + y::UBIGINT) AS y FROM t")
    probs = small.sql("SELECT predicted_y_probs FROM ML.PREDICT(MODEL labels, TABLE t)").fetchall()[0][0]
    assert [p["label"] for p in probs] == [big + 1, big + 2]  # 2**53 + 1 as a double would be 2**53
    with pytest.raises(DataError) as e:
        small.sql(f"CREATE MODEL huge OPTIONS ({LOGISTIC}) AS SELECT x, (18446744073709551000::UBIGINT - y::UBIGINT) AS y "
                  "FROM t")
    assert str(e.value) == ("The label 'y' has values above 9,223,372,036,854,775,807, which sqlml stores as BIGINT "
                            "classes; use CAST(y AS VARCHAR) as the label.")


def test_classes_absent_from_the_training_split_are_named(conn):
    conn.sql("CREATE TABLE many AS SELECT (range % 1000)::VARCHAR AS cls, random() AS x FROM range(3000)")
    # Which classes the 20 % row-hash evaluation split takes all three rows of, computed without sqlml.
    table = conn.sql("SELECT * FROM many").to_arrow_table()
    codes = np.array(table["cls"].to_pylist())
    held = np.zeros(3000, dtype=bool)
    held[held_out(table, 0.2)] = True
    absent = sorted({str(c) for c in codes} - {str(c) for c in codes[~held]})
    assert absent  # the premise: some class has no training row
    with pytest.raises(DataError) as e:
        conn.sql("CREATE MODEL mc OPTIONS (model_type = 'logistic_reg', input_label_cols = ['cls'], "
                 "data_split_method = 'RANDOM') AS SELECT * FROM many")
    assert str(e.value) == (
        f"The label 'cls' has {len(absent)} class(es) with no row in the training split, only in the evaluation split "
        f"(e.g. {', '.join(repr(c) for c in absent[:5])}): a model cannot learn a class it never sees. Give every "
        "class training rows: leave out or merge rare classes, or use data_split_method = 'NO_SPLIT' or a CUSTOM split.")


def test_early_stopping_is_turned_off_when_the_rows_cannot_be_split_for_it(conn):
    conn.sql("CREATE TABLE many AS SELECT (range % 12)::VARCHAR AS cls, (range % 7)::DOUBLE AS x FROM range(48)")
    conn.sql("CREATE MODEL b OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['cls'], "
             "data_split_method = 'NO_SPLIT', max_iterations = 2) AS SELECT * FROM many")
    notes = conn.sql("SELECT DISTINCT notes FROM ML.TRAINING_INFO(MODEL b)").fetchall()[0][0]
    assert ("early_stop turned off: 48 training row(s) are too few to hold out the 10 % validation rows it needs "
            "(at least two rows per class).") in notes


@pytest.mark.parametrize("model_type, label", [
    ("linear_reg", "1.0"), ("boosted_tree_regressor", "1.0"), ("random_forest_regressor", "1.0"),
    ("dnn_regressor", "1.0"), ("logistic_reg", "1"), ("boosted_tree_classifier", "1"),
    ("random_forest_classifier", "1"), ("dnn_classifier", "1"), ("kmeans", None)])
def test_one_row_training_for_every_model_type(conn, model_type, label):
    statement = (f"CREATE MODEL one OPTIONS (model_type = '{model_type}', random_seed = 1"  # the MLP's start
                 + (", input_label_cols = ['y']) AS SELECT 2.0 AS x, " + label + " AS y" if label else
                    ") AS SELECT 2.0 AS x"))
    if model_type == "kmeans":
        with pytest.raises(DataError) as e:
            conn.sql(statement)
        assert str(e.value) == ("num_clusters = 4 is more than the 1 training row(s) of 'one': k-means needs at least "
                                "one row per cluster. Lower num_clusters or train on more rows.")
    elif label == "1":
        with pytest.raises(DataError) as e:
            conn.sql(statement)
        assert str(e.value) == "The label 'y' has a single class (1); a classifier needs at least two."
    else:  # a regressor learns the one value (the MLP to within its few gradient steps)
        conn.sql(statement)
        assert conn.sql("SELECT predicted_y FROM ML.PREDICT(MODEL one, (SELECT 2.0 AS x))").fetchall()[0][0] == \
            pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("model_type", ["boosted_tree_classifier", "dnn_classifier", "logistic_reg",
                                        "random_forest_classifier"])
def test_two_rows_of_two_classes_train_every_classifier(conn, model_type):
    conn.sql(f"CREATE MODEL two OPTIONS (model_type = '{model_type}', input_label_cols = ['y']) AS "
             "SELECT * FROM (VALUES (1.0, 1), (2.0, 0)) v(x, y)")
    assert len(conn.sql("SELECT * FROM ML.PREDICT(MODEL two, (SELECT 1.5 AS x))").fetchall()) == 1


def test_kmeans_cluster_count_and_empty_evaluation(conn):
    conn.sql("CREATE TABLE pts AS SELECT range::DOUBLE AS x FROM range(5)")
    with pytest.raises(DataError) as e:
        conn.sql("CREATE MODEL km OPTIONS (model_type = 'kmeans', num_clusters = 10) AS SELECT * FROM pts")
    assert str(e.value) == ("num_clusters = 10 is more than the 5 training row(s) of 'km': k-means needs at least "
                            "one row per cluster. Lower num_clusters or train on more rows.")
    conn.sql("CREATE MODEL km OPTIONS (model_type = 'kmeans', num_clusters = 2) AS SELECT * FROM pts")
    with pytest.raises(DataError) as e:
        conn.sql("SELECT * FROM ML.EVALUATE(MODEL km, (SELECT * FROM pts LIMIT 0))")
    assert str(e.value) == "The evaluation data has no rows; k-means metrics of 'km' need at least one."
    explained = conn.sql("SELECT * FROM ML.EXPLAIN_PREDICT(MODEL km, (SELECT * FROM pts LIMIT 0))")
    assert explained.fetchall() == [] and "centroid_id" in explained.columns
    conn.sql("DELETE FROM pts")
    with pytest.raises(DataError) as e:
        conn.sql("SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL km)")
    assert str(e.value) == "The training query of 'km' returns no rows now; nothing to explain."


@pytest.mark.parametrize("option, shown, expected", [
    ("hidden_units = [1000000000]", "[1000000000]", "an array of integers in the range [1, 100,000]"),
    ("max_iterations = 1000000000000, early_stop = FALSE", "1000000000000", "an integer in the range [1, 10,000]"),
    ("num_parallel_tree = 1000000000", "1000000000", "an integer in the range [1, 10,000]"),
    ("num_clusters = 101", "101", "an integer in the range [2, 100]"),
    ("random_seed = 4294967296", "4294967296", "an integer in the range [0, 4,294,967,295]"),
])
def test_huge_options_are_refused_at_once(conn, option, shown, expected):
    model_type = {"hidden": "dnn_classifier", "max_it": "boosted_tree_classifier", "num_pa": "random_forest_classifier",
                  "num_cl": "kmeans", "random": "logistic_reg"}[option[:6]]
    name = option.split(" =")[0]
    started = time.perf_counter()
    with pytest.raises(OptionError) as e:
        conn.sql(f"CREATE MODEL h OPTIONS (model_type = '{model_type}', {option}) AS SELECT 1.0 AS x, 1 AS label")
    assert str(e.value) == f"The '{name}' option must be {expected}. Got {shown} instead."
    assert time.perf_counter() - started < 1


CHILD_UNDER_LIMIT = textwrap.dedent("""
    import resource, sqlml
    from sqlml import datasets
    conn = sqlml.connect(progress=lambda m: None)
    datasets.load(conn.duckdb, "breast_cancer")
    used = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (used + 2**30, resource.RLIM_INFINITY))
    try:
        conn.sql("CREATE MODEL big OPTIONS (model_type = 'dnn_classifier', input_label_cols = ['target'], "
                 "hidden_units = [20000, 20000]) AS SELECT * FROM breast_cancer")
    except Exception as e:
        print(type(e).__name__, e, sep="|")
    print("stored", conn.duckdb.sql("SELECT count(*) FROM sqlml.models").fetchall()[0][0] if
          conn.executor.registry.exists() else 0)
""")


def test_a_fit_bigger_than_the_memory_limit_is_refused_before_it_starts():
    child = subprocess.run([sys.executable, "-c", CHILD_UNDER_LIMIT], capture_output=True, text=True, timeout=120, check=False,
                           env={**os.environ, "PYTHONPATH": os.getcwd()})
    kind, message = child.stdout.splitlines()[0].split("|")
    assert kind == "DataError", child.stderr
    # The training rows (AUTO_SPLIT holds out ~20 % of 569) × 30 features; the MLP's weights are
    # (30 + 1) × 20,000 + (20,000 + 1) × 20,000 + (20,000 + 1) × 1, each kept 4 times (weights, gradients, Adam).
    weights = ((30 + 1) * 20_000 + 20_001 * 20_000 + 20_001) * 8 * 4
    conn = sqlml.connect(progress=lambda m: None)
    datasets.load(conn.duckdb, "breast_cancer")
    table = conn.duckdb.sql("SELECT * FROM breast_cancer").to_arrow_table()
    conn.close()
    rows = table.num_rows - len(held_out(table))
    assert message.startswith(f"Training 'big' (dnn_classifier, {rows} rows × 30 features) would need about ")
    assert f"weights {weights / 2**30:,.1f} GiB" in message
    assert "(room left under the address-space limit (ulimit -v)). Train on fewer rows" in message
    assert message.endswith("or smaller options (hidden_units).")
    assert child.stdout.splitlines()[1] == "stored 0"


def test_ctrl_c_during_training_stops_cleanly_and_stores_nothing(tmp_path):
    """SIGINT as soon as the CLI says the fit starts. Robust on a busy machine: the first version is made
    in this process (no second CLI start), the child's stderr is read by a thread so no wait can block
    for ever, and the deadlines are generous because a child that behaves ends at once anyway."""
    db = str(tmp_path / "w.duckdb")
    with sqlml.connect(db, progress=lambda message: None) as conn:
        datasets.load(conn.duckdb, "breast_cancer")
        conn.sql("CREATE MODEL slow OPTIONS (model_type = 'logistic_reg', input_label_cols = ['target']) AS "
                 "SELECT * FROM breast_cancer")
    second = tmp_path / "second.sql"
    second.write_text("CREATE OR REPLACE MODEL slow OPTIONS (model_type = 'boosted_tree_classifier', "
                      "input_label_cols = ['target'], max_iterations = 10000, early_stop = FALSE, learn_rate = 0.01, "
                      "max_tree_depth = 8) AS SELECT * FROM breast_cancer;")
    # Ctrl-C's handler as in a terminal: a test run started in the background (`pytest &`) ignores SIGINT,
    # and its children inherit that.
    start = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); from sqlml.cli import main; main()"
    child = subprocess.Popen([sys.executable, "-c", start, "run", str(second), "--db", db],
                             env={**os.environ, "PYTHONPATH": os.getcwd()}, stderr=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_forward, args=(child.stderr, lines), daemon=True).start()
    seen = []
    try:
        while not (seen and "Training boosted_tree_classifier" in seen[-1]):
            line = lines.get(timeout=600)
            assert line is not None, f"the CLI ended before training: {''.join(seen)}"
            seen.append(line)
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=600) == 130
    finally:
        child.kill()
    after = "".join(iter(lines.get, None))
    assert after.strip() == "Interrupted: nothing was stored." and "Traceback" not in after
    import duckdb
    with duckdb.connect(db, read_only=True) as check:
        assert check.sql("SELECT version, model_type FROM sqlml.models WHERE name = 'slow'").fetchall() == \
            [(1, "logistic_reg")]


def _forward(stream: t.TextIO, into: queue.Queue) -> None:
    """Each line of ``stream``, then None at its end."""
    for line in stream:
        into.put(line)
    into.put(None)


def test_default_logistic_reg_is_as_good_as_sklearns_default_pipeline(conn):
    datasets.load(conn.duckdb, "breast_cancer")
    data = load_breast_cancer(as_frame=True).frame
    test_rows = np.random.default_rng(7).choice(len(data), 171, replace=False)  # a 30 % held-out split
    is_test = np.zeros(len(data), dtype=bool)
    is_test[test_rows] = True
    conn.duckdb.register("held", pd.DataFrame({"held_out": is_test}))
    conn.sql("CREATE TABLE numbered AS SELECT *, row_number() OVER () - 1 AS i FROM breast_cancer")
    conn.sql("CREATE TABLE flags AS SELECT held_out, row_number() OVER () - 1 AS i FROM held")
    conn.sql("CREATE TABLE train AS SELECT n.* EXCLUDE (i) FROM numbered n JOIN flags USING (i) WHERE NOT held_out ORDER BY i")
    conn.sql("CREATE TABLE test AS SELECT n.* EXCLUDE (i) FROM numbered n JOIN flags USING (i) WHERE held_out ORDER BY i")
    conn.sql("CREATE MODEL lr OPTIONS (model_type = 'logistic_reg', input_label_cols = ['target'], "
             "data_split_method = 'NO_SPLIT') AS SELECT * FROM train")
    ours = conn.sql("SELECT roc_auc, log_loss, baseline_log_loss, beats_baseline FROM ML.EVALUATE(MODEL lr, TABLE test)"
                    ).df().iloc[0]
    train, test = conn.sql("SELECT * FROM train").df(), conn.sql("SELECT * FROM test").df()
    features = [c for c in train.columns if c != "target"]
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(train[features], train.target)
    theirs = roc_auc_score(test.target, pipeline.predict_proba(test[features])[:, 1])
    assert bool(ours.beats_baseline) and ours.log_loss < ours.baseline_log_loss
    assert ours.roc_auc >= theirs - 0.005, (ours.roc_auc, theirs)


def test_early_stop_stops_logistic_regression_on_too_little_progress(conn):
    datasets.load(conn.duckdb, "breast_cancer")
    base = "model_type = 'logistic_reg', input_label_cols = ['target'], l2_reg = 0, data_split_method = 'NO_SPLIT'"
    conn.sql(f"CREATE MODEL stopped OPTIONS ({base}, early_stop = TRUE, min_rel_progress = 0.01) AS "
             "SELECT * FROM breast_cancer")
    conn.sql(f"CREATE MODEL full OPTIONS ({base}, early_stop = FALSE) AS SELECT * FROM breast_cancer")
    losses = [r[0] for r in conn.sql("SELECT loss FROM ML.TRAINING_INFO(MODEL stopped) ORDER BY iteration").fetchall()]
    # Each block but the last improved the objective by at least 1 % per iteration; the last did not.
    gains = [(a - b) / a for a, b in itertools.pairwise(losses)]
    assert len(losses) >= 2 and all(g >= 0.01 * 10 for g in gains[:-1]) and gains[-1] < 0.01 * 10
    stopped = conn.executor.load("stopped").estimator
    full = conn.executor.load("full").estimator
    assert int(stopped.n_iter_[0]) <= 10 and int(full.n_iter_[0]) > 10 * len(losses)
