"""The errors users will hit: each names the problem, none is a bare traceback."""

import subprocess
import sys
import textwrap

import pytest

import sqlml
from sqlml.errors import DataError, ModelNotFoundError, OptionError, SqlmlError

TRAIN = "CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['label']) AS "


@pytest.fixture
def table(conn):
    conn.sql("CREATE TABLE t AS SELECT range::DOUBLE AS x, (range % 3)::VARCHAR AS c, range % 2 = 0 AS label FROM range(100)")
    return conn


def test_missing_label_column(table):
    with pytest.raises(DataError, match=r"label column \(input_label_cols\) 'label' is not a column.*Columns: x, c"):
        table.sql(TRAIN + "SELECT x, c FROM t")


def test_default_label_is_label(table):
    table.sql("CREATE MODEL m OPTIONS (model_type = 'logistic_reg') AS SELECT * FROM t")
    assert table.sql("SELECT label FROM sqlml.models").fetchall() == [("label",)]


def test_single_class_label(table):
    with pytest.raises(DataError, match=r"single class \(True\)"):
        table.sql(TRAIN + "SELECT * FROM t WHERE label")


def test_zero_rows(table):
    with pytest.raises(DataError, match="zero rows"):
        table.sql(TRAIN + "SELECT * FROM t WHERE x < 0")


@pytest.mark.parametrize("value", ["'NaN'::DOUBLE", "'inf'::DOUBLE"])
def test_nan_or_inf_in_a_feature_names_the_column(table, value):
    with pytest.raises(DataError, match="Column 'weird' contains NaN or infinite values"):
        table.sql(TRAIN + f"SELECT *, CASE WHEN x = 5 THEN {value} ELSE x END AS weird FROM t")


def test_nan_in_label(table):
    with pytest.raises(DataError, match="Column 'y' contains NaN"):
        table.sql("CREATE MODEL r OPTIONS (model_type = 'linear_reg', input_label_cols = ['y']) AS "
                  "SELECT x, CASE WHEN x = 3 THEN 'NaN'::DOUBLE ELSE x END AS y FROM t")


def test_prediction_input_missing_features_lists_them(table):
    table.sql(TRAIN + "SELECT * FROM t")
    with pytest.raises(DataError, match="missing feature column\\(s\\) the model was trained on: x, c"):
        table.sql("SELECT * FROM ML.PREDICT(MODEL m, (SELECT 1 AS other))")


def test_model_that_does_not_exist(table):
    table.sql(TRAIN + "SELECT * FROM t")
    with pytest.raises(ModelNotFoundError, match="Model 'nope' does not exist. Models in this database: m."):
        table.sql("SELECT * FROM ML.PREDICT(MODEL nope, TABLE t)")
    with pytest.raises(ModelNotFoundError, match="has no version 7; it has versions 1"):
        table.sql("SELECT * FROM ML.EVALUATE(MODEL m VERSION 7)")


def test_existing_model_needs_or_replace(table):
    table.sql(TRAIN + "SELECT * FROM t")
    with pytest.raises(SqlmlError, match="already exists. Use CREATE OR REPLACE MODEL"):
        table.sql(TRAIN + "SELECT * FROM t")
    table.sql(TRAIN.replace("CREATE MODEL", "CREATE MODEL IF NOT EXISTS") + "SELECT * FROM t")
    assert table.sql("SELECT count(*) FROM sqlml.models").fetchall() == [(1,)]


def test_drop_model(table):
    table.sql(TRAIN + "SELECT * FROM t")
    table.sql("DROP MODEL m")
    with pytest.raises(SqlmlError, match="Model 'm' does not exist"):
        table.sql("DROP MODEL m")
    table.sql("DROP MODEL IF EXISTS m")


@pytest.mark.parametrize("options, message", [
    ("model_type = 'linear_regression'", "Unknown model_type 'linear_regression'. Did you mean 'linear_reg'?"),
    ("model_type = 'linear_reg', l2_regg = 1.0", "Unknown option 'l2_regg'. Did you mean 'l2_reg'?"),
    ("model_type = 'linear_reg', l2_reg = -1", "The 'l2_reg' option must be a number in the range [0, 1,000,000]. Got -1 instead."),
    ("model_type = 'linear_reg', l2_reg = 'big'", "The 'l2_reg' option must be a number in the range [0, 1,000,000]. Got 'big' instead."),
    ("model_type = 'boosted_tree_regressor', early_stop = 1", "The 'early_stop' option must be TRUE or FALSE. Got 1 instead."),
    ("model_type = 'linear_reg', num_clusters = 3", "Option 'num_clusters' does not apply to model_type 'linear_reg'"),
    ("model_type = 'linear_reg', data_split_method = 'SOMETIMES'", "must be one of 'AUTO_SPLIT', 'RANDOM', 'SEQ', 'CUSTOM', 'NO_SPLIT'"),
    ("model_type = 'linear_reg', data_split_method = 'SEQ'", "data_split_method 'SEQ' needs data_split_col"),
    ("input_label_cols = ['x']", "OPTIONS must name a model_type"),
    ("model_type = 'linear_reg', model_type = 'kmeans'", "Option 'model_type' is given twice"),
])
def test_option_errors(table, options, message):
    with pytest.raises(OptionError) as error:
        table.sql(f"CREATE MODEL m OPTIONS ({options}) AS SELECT x, x AS label FROM t")
    assert message in str(error.value)


def test_hostile_model_names_are_data_not_sql(table):
    name = '"m""; DROP TABLE t; --"'
    table.sql(f"CREATE MODEL {name} OPTIONS (model_type = 'logistic_reg') AS SELECT * FROM t")
    assert table.sql("SELECT name FROM sqlml.models").fetchall() == [(name,)]  # stored as its SQL spelling
    assert table.sql(f"SELECT count(*) FROM ML.PREDICT(MODEL {name}, TABLE t)").fetchall() == [(100,)]
    table.sql(f"CREATE VIEW v AS SELECT * FROM ML.PREDICT(MODEL {name}, TABLE t)")
    assert table.sql("SELECT count(*) FROM v").fetchall() == [(100,)]
    assert table.sql("SELECT count(*) FROM t").fetchall() == [(100,)]


def test_quoted_column_names_survive_lazy_scoring(conn):
    conn.sql("""CREATE TABLE t AS SELECT range::DOUBLE AS "a b", range % 2 = 0 AS "my label", 'x' AS "c""q" FROM range(50)""")
    conn.sql("""CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['my label']) AS SELECT * FROM t""")
    conn.sql("CREATE VIEW v AS SELECT * FROM ML.PREDICT(MODEL m, TABLE t)")
    lazy = conn.sql('SELECT "predicted_my label" FROM v').fetchall()
    assert lazy == conn.sql('SELECT "predicted_my label" FROM ML.PREDICT(MODEL m, TABLE t)').fetchall()


def test_ml_function_that_does_not_exist_yet_lists_the_available_ones(table, monkeypatch):
    from sqlml.sql import catalog
    monkeypatch.setattr(catalog, "AVAILABLE", catalog.AVAILABLE - {"VALIDATE_DATA_SKEW"})  # parsed, not served
    with pytest.raises(SqlmlError, match=r"ML.VALIDATE_DATA_SKEW is not available yet. Available: .*ML.PREDICT"):
        table.sql("SELECT * FROM ML.VALIDATE_DATA_SKEW(MODEL m, TABLE t)")


def test_evaluate_in_a_view_is_refused(table):
    table.sql(TRAIN + "SELECT * FROM t")
    with pytest.raises(SqlmlError, match="ML.EVALUATE cannot be used inside CREATE VIEW"):
        table.sql("CREATE VIEW v AS SELECT * FROM ML.EVALUATE(MODEL m)")


def test_failed_statement_leaves_previous_version_intact(table):
    table.sql(TRAIN + "SELECT * FROM t")
    with pytest.raises(DataError):
        table.sql(TRAIN.replace("CREATE", "CREATE OR REPLACE") + "SELECT * FROM t WHERE x < 0")
    assert table.sql("SELECT version FROM sqlml.models").fetchall() == [(1,)]


def test_database_busy_in_a_second_process(tmp_path):
    path = tmp_path / "busy.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time, duckdb
        c = duckdb.connect({str(path)!r}); c.execute("CREATE TABLE x AS SELECT 1")
        print("ready", flush=True); time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(sqlml.DatabaseBusyError, match="Database busy: another process has"):
            sqlml.connect(str(path))
    finally:
        holder.kill()
        holder.wait()


def test_a_registry_in_another_attached_database_is_not_ours(conn, tmp_path):
    other = str(tmp_path / "other.duckdb")
    with sqlml.connect(other, progress=lambda m: None) as elsewhere:
        elsewhere.sql("CREATE MODEL x OPTIONS (model_type = 'linear_reg') AS SELECT 1.0 AS a, 2.0 AS label")
    conn.duckdb.execute(f"ATTACH '{other}' AS other (READ_ONLY)")
    with pytest.raises(ModelNotFoundError, match="This database has no models yet"):
        conn.sql("SELECT * FROM ML.EVALUATE(MODEL x)")
    conn.sql("CREATE MODEL mine OPTIONS (model_type = 'linear_reg') AS SELECT 1.0 AS a, 2.0 AS label")
    assert conn.sql("SELECT name FROM sqlml.models").fetchall() == [("mine",)]


def test_training_query_cannot_call_ml_functions(table):
    table.sql(TRAIN + "SELECT * FROM t")
    with pytest.raises(SqlmlError, match="The training query of CREATE MODEL cannot call ML.\\* functions"):
        table.sql("CREATE MODEL m2 OPTIONS (model_type = 'logistic_reg') AS SELECT * FROM ML.PREDICT(MODEL m, TABLE t)")
