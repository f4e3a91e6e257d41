"""ML.* outputs as streams (docs/scale.md): the statement around ML.PREDICT pulls its record batches as it
runs. The table here spans three of DuckDB's record batches (122,880 rows each), and every figure is
checked row by row against the model's estimator on NumPy."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import sqlglot
from conftest import held_out

from sqlml.engines.duckdb import DuckDBEngine
from sqlml.errors import DataError
from sqlml.model import serve
from sqlml.sql import scans

ROWS = 300_000
QUERY = "SELECT * FROM ML.PREDICT(MODEL m, TABLE big)"


@pytest.fixture
def scoring(conn, monkeypatch):
    """``conn`` with ``big`` (id, x0..x3, s1) and a logistic regression ``m``; ``conn.streams`` lists the
    names registered as streams."""
    conn.sql(f"CREATE TABLE big AS SELECT range AS id, random() AS x0, random() * 2 AS x1, random() AS x2, "
             f"random() AS x3, 'c' || (range % 7)::VARCHAR AS s1 FROM range({ROWS})")
    conn.sql("CREATE TABLE train AS SELECT * EXCLUDE (id), x0 + x1 / 2 + (s1 = 'c1')::INT > 0.9 AS label "
             "FROM big LIMIT 4000")
    conn.sql("CREATE MODEL m OPTIONS (model_type = 'logistic_reg') AS SELECT * FROM train")
    conn.streams = []
    original = DuckDBEngine._register_stream

    def register_stream(self, name, schema, batches):
        conn.streams.append(name)
        return original(self, name, schema, batches)
    monkeypatch.setattr(DuckDBEngine, "_register_stream", register_stream)
    return conn


def expected(conn, table: str = "big", version: int | None = None) -> np.ndarray:
    """P(label = true) of every row of ``table`` in id order, from predict_proba on the model's matrix."""
    loaded = conn.executor.load("m", version)
    rows = conn.duckdb.sql(f"SELECT * FROM {table} ORDER BY id").to_arrow_table()
    return loaded.estimator.predict_proba(loaded.features(rows))[:, list(loaded.classes).index(True)]


def probabilities(conn, sql: str) -> np.ndarray:
    rows = conn.duckdb.sql(f"SELECT predicted_label_probs[2].prob FROM ({sql}) ORDER BY id").fetchall()
    return np.array([r[0] for r in rows])


def test_create_table_as_predict_streams_every_row(scoring):
    scoring.sql(f"CREATE TABLE scored AS {QUERY}")
    assert len(scoring.streams) == 1
    np.testing.assert_allclose(probabilities(scoring, "SELECT * FROM scored"), expected(scoring), rtol=1e-12)
    assert scoring.duckdb.sql("SELECT count(*) FROM scored").fetchall() == [(ROWS,)]
    columns = [c[0] for c in scoring.duckdb.sql("DESCRIBE scored").fetchall()]
    assert columns == ["predicted_label", "predicted_label_probs", "id", "x0", "x1", "x2", "x3", "s1"]


def test_insert_and_copy_stream_too(scoring, tmp_path):
    scoring.sql(f"CREATE TABLE scored AS {QUERY} LIMIT 0")
    scoring.sql(f"INSERT INTO scored {QUERY}")
    target = tmp_path / "scored.parquet"
    scoring.sql(f"COPY ({QUERY}) TO '{target}' (FORMAT parquet)")
    assert len(scoring.streams) == 3
    truth = expected(scoring)
    np.testing.assert_allclose(probabilities(scoring, "SELECT * FROM scored"), truth, rtol=1e-12)
    written = pq.read_table(target).sort_by("id")
    assert written.num_rows == ROWS
    np.testing.assert_allclose([p[1]["prob"] for p in written["predicted_label_probs"].to_pylist()], truth, rtol=1e-12)


def test_a_join_and_an_aggregate_over_the_stream(scoring):
    truth = expected(scoring)
    got = scoring.sql(f"SELECT count(*), sum(p.predicted_label_probs[2].prob * b.x0) FROM ({QUERY}) AS p "
                      "JOIN big AS b USING (id)").fetchall()
    x0 = scoring.duckdb.sql("SELECT x0 FROM big ORDER BY id").to_arrow_table()["x0"].to_numpy()
    assert got[0][0] == ROWS
    assert got[0][1] == pytest.approx(float(truth @ x0), rel=1e-9)
    assert len(scoring.streams) == 1


def test_a_cte_read_twice_is_materialized_and_correct(scoring):
    truth = expected(scoring)
    got = scoring.sql(f"WITH s AS ({QUERY}) SELECT count(*), sum(a.predicted_label_probs[2].prob) FROM s AS a "
                      "JOIN s AS b ON a.id = b.id + 1").fetchall()
    assert scoring.streams == []  # read twice: registered as a table
    assert got == [(ROWS - 1, pytest.approx(float(truth[1:].sum()), rel=1e-9))]


def test_limit_stops_the_stream_and_leaves_the_connection_usable(scoring):
    got = scoring.sql(f"SELECT id, predicted_label_probs[2].prob FROM ({QUERY}) ORDER BY id LIMIT 3").fetchall()
    assert [r[0] for r in got] == [0, 1, 2]
    np.testing.assert_allclose([r[1] for r in got], expected(scoring)[:3], rtol=1e-12)
    scoring.duckdb.create_function("one", lambda: 1, [], "BIGINT")  # refused while a result is open
    assert scoring.sql("SELECT one()").fetchall() == [(1,)]


def test_bad_data_in_a_later_batch_fails_with_sqlml_error_and_writes_nothing(scoring):
    scoring.sql("UPDATE big SET x2 = 'inf'::DOUBLE WHERE id = 250000")  # the third record batch
    with pytest.raises(DataError, match="Column 'x2' contains NaN or infinite values"):
        scoring.sql(f"CREATE TABLE scored AS {QUERY}")
    assert scoring.duckdb.sql("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'scored'").fetchall() == [(0,)]
    scoring.sql(f"CREATE TABLE scored AS {QUERY} LIMIT 0")
    with pytest.raises(DataError, match="Column 'x2'"):
        scoring.sql(f"INSERT INTO scored {QUERY}")
    assert scoring.duckdb.sql("SELECT count(*) FROM scored").fetchall() == [(0,)]


def test_uncommitted_rows_and_temporary_tables_are_read_on_the_connection(scoring):
    scoring.sql("CREATE TEMP TABLE recent AS SELECT * FROM big WHERE id < 1000")
    scoring.sql("CREATE TABLE from_temp AS SELECT * FROM ML.PREDICT(MODEL m, TABLE recent)")
    np.testing.assert_allclose(probabilities(scoring, "SELECT * FROM from_temp"), expected(scoring)[:1000], rtol=1e-12)
    scoring.duckdb.execute("BEGIN TRANSACTION")
    scoring.sql("DELETE FROM big WHERE id >= 500")  # not committed: only this connection sees it
    scoring.sql(f"CREATE TABLE in_transaction AS {QUERY}")
    scoring.duckdb.execute("COMMIT")
    np.testing.assert_allclose(probabilities(scoring, "SELECT * FROM in_transaction"), expected(scoring), rtol=1e-12)
    assert scoring.duckdb.sql("SELECT count(*) FROM in_transaction").fetchall() == [(500,)]


def test_a_disabled_model_streams_its_baseline(scoring):
    scoring.sql("ALTER MODEL m DISABLE")
    scoring.sql(f"CREATE TABLE scored AS {QUERY}")
    labels = np.array([r[0] for r in scoring.duckdb.sql("SELECT label FROM train").fetchall()])
    prior = np.delete(labels, held_out(scoring.duckdb.sql("SELECT * FROM train").to_arrow_table())).mean()  # the training split's share of true labels
    got = probabilities(scoring, "SELECT * FROM scored")
    assert len(got) == ROWS and len(scoring.streams) == 1
    np.testing.assert_allclose(got, prior, rtol=1e-12)


def test_ab_serving_streams_each_row_through_its_arm(scoring):
    scoring.sql("CREATE OR REPLACE MODEL m OPTIONS (model_type = 'logistic_reg', l2_reg = 5.0, deploy = 'never') "
                "AS SELECT * FROM train")
    scoring.sql("ALTER MODEL m VERSION 2 SET ALIAS challenger")
    scoring.sql("CREATE TABLE scored AS SELECT * FROM ML.PREDICT(MODEL m, TABLE big, "
                "STRUCT(0.3 AS challenger_fraction, 'id' AS split_key))")
    ids = scoring.duckdb.sql("SELECT id FROM big ORDER BY id").to_arrow_table()["id"]
    arms = serve.challenger_rows(ids, 0.3)
    deployed, challenger = expected(scoring, version=1), expected(scoring, version=2)
    got = scoring.duckdb.sql("SELECT model_version, predicted_label_probs[2].prob FROM scored ORDER BY id").fetchall()
    np.testing.assert_array_equal([r[0] for r in got], np.where(arms, 2, 1))
    np.testing.assert_allclose([r[1] for r in got], np.where(arms, challenger, deployed), rtol=1e-12)
    assert 0.25 < arms.mean() < 0.35


def test_explain_predict_streams(scoring):
    scoring.sql("CREATE TABLE explained AS SELECT * FROM ML.EXPLAIN_PREDICT(MODEL m, TABLE big)")
    got = scoring.duckdb.sql("SELECT predicted_label, probability FROM explained ORDER BY id").fetchall()
    truth = expected(scoring)
    np.testing.assert_array_equal([r[0] for r in got], truth > 0.5)
    np.testing.assert_allclose([r[1] for r in got], np.maximum(truth, 1 - truth), rtol=1e-12)
    assert len(scoring.streams) == 1


@pytest.mark.parametrize("sql, twice", [
    ("SELECT * FROM t", False),
    ("WITH s AS (SELECT * FROM t) SELECT * FROM s", False),
    ("WITH s AS (SELECT * FROM t) SELECT * FROM s AS a JOIN s AS b USING (id)", True),
    ("WITH s AS (SELECT * FROM t), u AS (SELECT * FROM s) SELECT * FROM u, u AS v", True),
    ("WITH s AS (SELECT * FROM t) SELECT * FROM s WHERE x > (SELECT avg(x) FROM s)", True),
    ("WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r, t WHERE n < 3) SELECT * FROM r", True),
    ("SELECT * FROM t UNION ALL SELECT * FROM other", False),
])
def test_reads_of_an_ml_table_are_counted_through_ctes(sql, twice):
    assert scans.read_more_than_once(sqlglot.parse_one(sql, read="duckdb"), ["t"]) == ({"t"} if twice else set())
