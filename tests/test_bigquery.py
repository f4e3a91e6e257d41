"""BigQuery ML's own examples, as its reference writes them: backtick names, trailing commas, and the
BigQuery input dialect. Each test names the reference page whose behaviour it checks."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

import sqlml
from sqlml import datasets
from sqlml.errors import SqlmlParseError


@pytest.fixture
def penguins_bq():
    """The penguins as BigQuery's tutorial has them (`bigquery-public-data.ml_datasets.penguins` → `ml_datasets.penguins`)."""
    with sqlml.connect(progress=lambda m: None) as conn:
        datasets.load(conn.duckdb, "penguins")
        conn.duckdb.execute("CREATE SCHEMA ml_datasets; CREATE TABLE ml_datasets.penguins AS SELECT * FROM penguins")
        yield conn


def _linear_reference(conn) -> np.ndarray:
    rows = conn.duckdb.sql("SELECT bill_length_mm, flipper_length_mm, body_mass_g FROM penguins "
                           "WHERE body_mass_g IS NOT NULL AND bill_length_mm IS NOT NULL").fetchnumpy()
    X = np.column_stack([rows["bill_length_mm"], rows["flipper_length_mm"]])
    return LinearRegression().fit(X, rows["body_mass_g"]).predict(X)


# reference: bigqueryml-syntax-create (CREATE MODEL `mydataset.mymodel` OPTIONS(...) AS query), and the
# tutorial "Create a linear regression model" (model `bqml_tutorial.penguins_model`, trailing commas in OPTIONS)
CREATE = """CREATE OR REPLACE MODEL `bqml_tutorial.penguins_model`
OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g'],)
AS SELECT bill_length_mm, flipper_length_mm, body_mass_g FROM `ml_datasets.penguins`
WHERE body_mass_g IS NOT NULL AND bill_length_mm IS NOT NULL"""
PREDICT = """SELECT predicted_body_mass_g FROM ML.PREDICT(MODEL `bqml_tutorial.penguins_model`,
  (SELECT * FROM `ml_datasets.penguins` WHERE body_mass_g IS NOT NULL AND bill_length_mm IS NOT NULL))"""


def test_backtick_names_and_trailing_commas_in_the_default_dialect(penguins_bq):
    penguins_bq.sql("CREATE SCHEMA bqml_tutorial")
    penguins_bq.sql(CREATE)
    assert penguins_bq.sql("SELECT name FROM sqlml.models").fetchall() == [("bqml_tutorial.penguins_model",)]
    predicted = np.array([r[0] for r in penguins_bq.sql(PREDICT).fetchall()])
    np.testing.assert_allclose(predicted, _linear_reference(penguins_bq), rtol=1e-9)
    # the same model, unquoted
    assert len(penguins_bq.sql("SELECT * FROM ML.EVALUATE(MODEL bqml_tutorial.penguins_model)").fetchall()) == 1


def test_a_backtick_path_names_at_most_three_parts(penguins_bq):
    with pytest.raises(SqlmlParseError, match="at most three parts"):
        penguins_bq.sql("DROP MODEL `a.b.c.d`")


@pytest.fixture
def bigquery(penguins_bq):
    return sqlml.Connection(penguins_bq.duckdb, progress=lambda m: None, dialect="bigquery")


def test_the_bigquery_dialect_reads_bigquery_only_sql(bigquery):
    # reference: bigqueryml-syntax-create + BigQuery's SAFE_CAST, FLOAT64, and UNNEST of an array of structs
    bigquery.sql("CREATE SCHEMA bqml_tutorial")
    bigquery.sql("""CREATE OR REPLACE MODEL `bqml_tutorial.penguins_model`
        OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g'],)
        AS SELECT SAFE_CAST(bill_length_mm AS FLOAT64) AS bill_length_mm, flipper_length_mm, body_mass_g
        FROM `ml_datasets.penguins` WHERE body_mass_g IS NOT NULL AND bill_length_mm IS NOT NULL""")
    predicted = np.array([r[0] for r in bigquery.sql(PREDICT).fetchall()])
    np.testing.assert_allclose(predicted, _linear_reference(bigquery), rtol=1e-9)
    rows = bigquery.sql("""SELECT p.label, p.prob FROM ML.PREDICT(MODEL `bqml_tutorial.penguins_model`,
        (SELECT * FROM `ml_datasets.penguins` LIMIT 3)) AS scored,
        UNNEST([STRUCT('a' AS label, 0.5 AS prob), STRUCT('b' AS label, 0.25 AS prob)]) AS p
        ORDER BY p.prob""").fetchall()
    assert rows == [("b", 0.25)] * 3 + [("a", 0.5)] * 3
    days = bigquery.sql("SELECT DATE_ADD(DATE '2024-01-31', INTERVAL 1 DAY) AS d").fetchall()
    assert str(days[0][0]).startswith("2024-02-01")


def test_the_bigquery_dialect_refuses_what_it_cannot_read(bigquery):
    with pytest.raises(SqlmlParseError):
        bigquery.sql("SELECT * FROM t WHERE (")
    with pytest.raises(SqlmlParseError, match="Unknown SQL dialect 'oracle'"):
        sqlml.parse("SELECT 1", dialect="oracle")


@pytest.fixture
def timed(conn):
    conn.sql("""CREATE TABLE t AS SELECT range::DOUBLE AS x, (range % 3 = 0) AS label,
                TIMESTAMP '2024-01-01' + INTERVAL (range) HOUR AS split_col, 'k' || (range % 7)::VARCHAR AS s
                FROM range(600)""")
    return conn


def test_a_seq_split_column_is_matched_without_case_and_is_not_a_feature(timed):
    # reference: bigqueryml-syntax-create (DATA_SPLIT_COL: "the column is excluded from the features" for SEQ)
    timed.sql("""CREATE MODEL m OPTIONS (model_type = 'logistic_reg', data_split_method = 'SEQ',
                 data_split_col = 'SPLIT_COL', data_split_eval_fraction = 0.25) AS SELECT * FROM t""")
    assert timed.sql("SELECT input FROM ML.FEATURE_INFO(MODEL m) ORDER BY input").fetchall() == [("s",), ("x",)]
    # the newest quarter (by split_col) is held out: 150 rows
    assert timed.sql("SELECT training_rows, eval_rows FROM sqlml.models WHERE name = 'm'").fetchall() == [(450, 150)]
    timed.sql("""CREATE MODEL n OPTIONS (model_type = 'logistic_reg', data_split_method = 'SEQ',
                 data_split_col = 's') AS SELECT x, label, s FROM t""")  # a STRING split column
    assert timed.sql("SELECT input FROM ML.FEATURE_INFO(MODEL n)").fetchall() == [("x",)]


def test_num_trials_without_search_spaces_searches_the_default_space(timed):
    # reference: bigqueryml-syntax-hp-tuning-overview ("default hyperparameter search space" per model type)
    timed.sql("CREATE MODEL m OPTIONS (model_type = 'logistic_reg', num_trials = 3) AS SELECT x, label FROM t")
    trials = timed.sql("SELECT trial_id, hyperparameters FROM ML.TRIAL_INFO(MODEL m) ORDER BY trial_id").fetchall()
    assert [t for t, _ in trials] == [1, 2, 3]
    values = [h["l2_reg"] for _, h in trials]
    assert len(set(values)) > 1 and all(1e-4 <= v <= 10.0 for v in values)


def test_sqlml_run_reads_a_bigquery_script_with_dialect_bigquery(tmp_path):
    from click.testing import CliRunner

    from sqlml.cli import main
    script = tmp_path / "bq.sql"
    script.write_text("CREATE SCHEMA bqml;\n"
                      "CREATE OR REPLACE MODEL `bqml.m` OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],)\n"
                      "AS SELECT SAFE_CAST(x AS FLOAT64) AS x, 2 * x + 1 AS y FROM UNNEST(GENERATE_ARRAY(1, 50)) AS x;\n"
                      "SELECT ROUND(predicted_y, 6) AS p FROM ML.PREDICT(MODEL `bqml.m`, (SELECT 10.0 AS x));\n")
    result = CliRunner().invoke(main, ["run", str(script), "--dialect", "bigquery", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-2:] == ["p", "21.0"]
