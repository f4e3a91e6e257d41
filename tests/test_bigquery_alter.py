"""ALTER MODEL … SET OPTIONS with BigQuery's labels and expiration_timestamp (reference page
bigqueryml-syntax-alter-model): stored in the version's signed row, listed by `sqlml models`, and an
expired model is not served."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from click.testing import CliRunner

import sqlml
from sqlml.cli import main
from sqlml.errors import (
    ModelExpiredError,
    ModelIntegrityError,
    ModelNotFoundError,
    OptionError,
)

ALTER = """ALTER MODEL m SET OPTIONS (labels = [('team', 'ml'), ('env', 'prod')],
           expiration_timestamp = TIMESTAMP '2099-06-01 12:00:00 America/Los_Angeles', description = 'weights',)"""


@pytest.fixture
def model(conn):
    conn.duckdb.execute("CREATE TABLE t AS SELECT range::DOUBLE AS x, 2.0 * range + 1 AS label FROM range(30)")
    conn.sql("CREATE MODEL m OPTIONS (model_type = 'linear_reg') AS SELECT * FROM t")
    return conn


def _options(conn) -> dict:
    return json.loads(conn.duckdb.sql("SELECT options FROM sqlml.models WHERE name = 'm'").fetchall()[0][0])


def test_labels_and_expiration_are_stored_in_the_signed_row(model):
    # reference: bigqueryml-syntax-alter-model (SET OPTIONS: labels as ARRAY<STRUCT<STRING, STRING>>,
    # expiration_timestamp as a TIMESTAMP)
    model.sql(ALTER)
    options = _options(model)
    assert options["labels"] == {"team": "ml", "env": "prod"}
    assert options["expiration_timestamp"] == "2099-06-01T19:00:00+00:00"  # PDT is UTC-7
    assert options["description"] == "weights"
    assert model.sql("SELECT count(*) FROM ML.PREDICT(MODEL m, TABLE t)").fetchall() == [(30,)]
    model.duckdb.execute("UPDATE sqlml.models SET options = replace(options::VARCHAR, 'prod', 'dev')::JSON")
    with pytest.raises(ModelIntegrityError, match="is damaged"):
        model.sql("SELECT * FROM ML.PREDICT(MODEL m, TABLE t)").fetchall()


def test_sqlml_models_lists_them(tmp_path):
    # reference: bigqueryml-syntax-alter-model (the labels and expiration BigQuery shows for a model)
    db = str(tmp_path / "m.duckdb")
    with sqlml.connect(db, progress=lambda m: None) as conn:
        conn.duckdb.execute("CREATE TABLE t AS SELECT range::DOUBLE AS x, 2.0 * range AS label FROM range(30)")
        conn.sql("CREATE MODEL m OPTIONS (model_type = 'linear_reg') AS SELECT * FROM t")
        conn.sql(ALTER)
    listing = CliRunner().invoke(main, ["models", "--db", db, "--format", "json"])
    assert listing.exit_code == 0, listing.output
    row = json.loads(listing.stdout)
    assert row["expiration_timestamp"] == "2099-06-01T19:00:00+00:00"
    assert json.loads(row["labels"]) == {"team": "ml", "env": "prod"}


def test_an_expired_model_is_not_served_until_its_expiration_is_moved(model):
    # reference: bigqueryml-syntax-alter-model (expiration_timestamp: the model is deleted then; sqlml refuses
    # to serve it instead, keeps it, and DROP MODEL deletes it)
    model.sql("ALTER MODEL m SET OPTIONS (expiration_timestamp = TIMESTAMP '2020-01-01 00:00:00 UTC')")
    for sql in ("SELECT * FROM ML.PREDICT(MODEL m, TABLE t)", "SELECT * FROM ML.EVALUATE(MODEL m)",
                "CREATE VIEW v AS SELECT * FROM ML.PREDICT(MODEL m, TABLE t)"):
        with pytest.raises(ModelExpiredError, match=r"Model 'm' version 1 expired at 2020-01-01T00:00:00\+00:00 "
                                                    r"\(its expiration_timestamp\); BigQuery would have deleted it"):
            model.sql(sql).fetchall() if sql.startswith("SELECT") else model.sql(sql)
    assert issubclass(ModelExpiredError, ModelNotFoundError)
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    model.sql(f"ALTER MODEL m SET OPTIONS (expiration_timestamp = TIMESTAMP '{later}')")
    assert model.sql("SELECT count(*) FROM ML.PREDICT(MODEL m, TABLE t)").fetchall() == [(30,)]
    model.sql("ALTER MODEL m SET OPTIONS (expiration_timestamp = TIMESTAMP '2021-01-01')")
    model.sql("DROP MODEL m")  # an expired model can be dropped
    assert model.duckdb.sql("SELECT count(*) FROM sqlml.models").fetchall() == [(0,)]


@pytest.mark.parametrize("option, message", [
    ("labels = 'team'", "The 'labels' option must be an array of STRUCT(key, value) strings"),
    ("labels = [('team', 1)]", "The 'labels' option must be an array of STRUCT(key, value) strings"),
    ("expiration_timestamp = TIMESTAMP 'soon'", "The 'expiration_timestamp' option must be a TIMESTAMP literal"),
    ("expiration_timestamp = 2027", "The 'expiration_timestamp' option must be a TIMESTAMP literal"),
])
def test_wrong_labels_and_timestamps_are_refused(model, option, message):
    with pytest.raises(OptionError, match=re.escape(message)):
        model.sql(f"ALTER MODEL m SET OPTIONS ({option})")


def test_the_bigquery_dialect_alters_a_backtick_named_model(model):
    # reference: bigqueryml-syntax-alter-model (its example: ALTER MODEL `mydataset.mymodel` SET OPTIONS (...))
    bigquery = sqlml.Connection(model.duckdb, progress=lambda m: None, dialect="bigquery")
    bigquery.sql("""ALTER MODEL `m` SET OPTIONS (description = "a model",
                    expiration_timestamp = TIMESTAMP "2099-01-01 00:00:00 UTC", labels = [("team", "ml")])""")
    options = _options(model)
    assert (options["description"], options["expiration_timestamp"], options["labels"]) == (
        "a model", "2099-01-01T00:00:00+00:00", {"team": "ml"})
