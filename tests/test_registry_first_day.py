"""The registry on a new user's first day: a database file named sqlml.duckdb, views over a dropped
model, one tampered model among others, and a wrong (but valid) secret key — each ends in an sqlml
error that names the problem, and everything else keeps working."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
import textwrap

import duckdb
import pytest

import sqlml
from conftest import same_predictions
from sqlml import datasets, views
from sqlml.errors import ModelIntegrityError, ModelNotFoundError, SecretKeyError
from sqlml.model import loaded as scoring
from sqlml.registry import deployments

TRAIN = """CREATE OR REPLACE MODEL {name} OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex'])
           AS SELECT {columns}, sex FROM penguins WHERE sex IS NOT NULL"""
SCORED = "SELECT predicted_sex, predicted_sex_probs[1].prob FROM {} ORDER BY ALL"


def as_new_process(monkeypatch):
    """Forget what this process verified, loaded and holds for views."""
    monkeypatch.setattr(deployments, "_VERIFIED", deployments.OrderedDict())
    monkeypatch.setattr(scoring, "CACHE", scoring.ModelCache())
    monkeypatch.setattr(views, "_FUNCTIONS", {})


def two_models(path):
    """Models a and b on penguins, a view over each, and their predictions."""
    with sqlml.connect(str(path), progress=lambda m: None) as conn:
        datasets.load(conn.duckdb, "penguins")
        conn.sql(TRAIN.format(name="a", columns="island, bill_length_mm"))
        conn.sql(TRAIN.format(name="b", columns="flipper_length_mm, body_mass_g"))
        for name in "ab":
            conn.sql(f"CREATE VIEW {name}_scored AS SELECT * FROM ML.PREDICT(MODEL {name}, TABLE penguins)")
        return {name: conn.sql(SCORED.format(f"ML.PREDICT(MODEL {name}, TABLE penguins)")).fetchall() for name in "ab"}


def test_a_database_named_sqlml_works(tmp_path):
    path = tmp_path / "sqlml.duckdb"  # its catalog is called sqlml, like the registry's schema
    expected = two_models(path)
    with sqlml.connect(str(path), progress=lambda m: None) as conn:
        assert same_predictions(conn.sql(SCORED.format("a_scored")).fetchall(), expected["a"])
        assert conn.sql(SCORED.format("ML.PREDICT(MODEL b, TABLE penguins)")).fetchall() == expected["b"]
        conn.sql(TRAIN.format(name="a", columns="island").replace("['sex']", "['sex'], deploy = 'never'"))
        conn.sql("ALTER MODEL a VERSION 2 SET ALIAS challenger")
        conn.sql("ALTER MODEL a DISABLE")
        conn.sql("ALTER MODEL a ENABLE")
        assert same_predictions(conn.sql(SCORED.format("a_scored")).fetchall(), expected["a"])
        assert [(r[0], r[1], r[-1]) for r in conn.models().select("name, version, deployed, status").fetchall()] == \
            [("a", 1, "ok"), ("a", 2, "ok"), ("b", 1, "ok")]
        assert conn.sql("SELECT count(*) FROM sqlml.sqlml.deployments").fetchall() == [(8,)]
        conn.sql("DROP MODEL b")
        with pytest.raises(ModelNotFoundError, match="Model 'b' was dropped: view 'b_scored' over it cannot score"):
            conn.sql("SELECT * FROM b_scored").fetchall()


def test_a_view_over_a_dropped_model_fails_naming_both_even_when_it_reads_no_prediction(tmp_path):
    path = tmp_path / "dropped.duckdb"
    expected = two_models(path)
    with sqlml.connect(str(path), progress=lambda m: None) as conn:
        conn.sql("CREATE VIEW a_pinned AS SELECT * FROM ML.PREDICT(MODEL a VERSION 1, TABLE penguins)")
        conn.sql("DROP MODEL a")
        reads = ["SELECT * FROM {}", "SELECT count(*) FROM {}", "SELECT island FROM {} LIMIT 1"]
        for view in ("a_scored", "a_pinned"):
            for read in reads:
                with pytest.raises(ModelNotFoundError, match=f"Model 'a' was dropped: view '{view}' over it cannot score"):
                    conn.sql(read.format(view)).fetchall()
    script = textwrap.dedent(f"""
        import sqlml
        with sqlml.connect({str(path)!r}, read_only=True, progress=lambda m: None) as c:
            for view in ("a_scored", "a_pinned"):
                try:
                    c.sql(f"SELECT count(*) FROM {{view}}").fetchall()
                except sqlml.errors.ModelNotFoundError as e:
                    print(e)
            print(c.sql("SELECT count(*) FROM b_scored").fetchall()[0][0])
    """)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ})
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.splitlines() == [
        "Model 'a' was dropped: view 'a_scored' over it cannot score. Recreate the view over a stored model.",
        "Model 'a' was dropped: view 'a_pinned' over it cannot score. Recreate the view over a stored model.",
        str(len(expected["b"]))]


TAMPER = {
    "edited bytes": "UPDATE sqlml.models SET model = model[:199] || '\\xFF\\xFE'::BLOB || model[202:] WHERE name = 'a'",
    "swapped blob": "UPDATE sqlml.models SET model = (SELECT model FROM sqlml.models WHERE name = 'b') WHERE name = 'a'",
    "truncated blob": "UPDATE sqlml.models SET model = model[1:100] WHERE name = 'a'",
    "edited row": "UPDATE sqlml.models SET query = 'SELECT 1' WHERE name = 'a'",
}


@pytest.mark.parametrize("how", sorted(TAMPER))
def test_one_tampered_model_never_stops_connect(tmp_path, monkeypatch, how):
    path = tmp_path / "tampered.duckdb"
    expected = two_models(path)
    with duckdb.connect(str(path)) as raw:
        raw.execute(TAMPER[how])
    as_new_process(monkeypatch)
    with sqlml.connect(str(path), progress=lambda m: None) as conn:  # connecting works
        assert same_predictions(conn.sql(SCORED.format("b_scored")).fetchall(), expected["b"])
        assert conn.sql("SELECT count(*) FROM penguins").fetchall() == [(344,)]
        message = (r"Model 'a' version 1 (is damaged|cannot be loaded: Model bytes failed verification)|Model bytes of "
                   r"'a' version 1 failed verification")
        with pytest.raises(ModelIntegrityError, match=message):
            conn.sql(SCORED.format("a_scored")).fetchall()
        with pytest.raises(ModelIntegrityError, match=message):
            conn.sql(SCORED.format("ML.PREDICT(MODEL a, TABLE penguins)")).fetchall()
        assert conn.sql(SCORED.format("ML.PREDICT(MODEL b, TABLE penguins)")).fetchall() == expected["b"]


@pytest.fixture
def wrong_key(tmp_path, monkeypatch):
    """Models a and b signed with the test key; then another valid key in SQLML_SECRET_KEY."""
    path = tmp_path / "keyed.duckdb"
    expected = two_models(path)
    as_new_process(monkeypatch)
    monkeypatch.setenv("SQLML_SECRET_KEY", "another-valid-key-0123456789abcdef-zyxwvut")
    return path, expected


KEY_MESSAGE = ("The secret key from SQLML_SECRET_KEY is not the key this database's models were signed with (the key "
               "check in sqlml.key_check does not match it)")


def test_a_wrong_key_is_named_as_such_and_leaves_the_transaction_usable(wrong_key):
    path, _ = wrong_key
    with sqlml.connect(str(path), progress=lambda m: None) as conn:  # connecting works
        for read in ("SELECT * FROM a_scored", "SELECT * FROM ML.PREDICT(MODEL a, TABLE penguins)",
                     "SELECT * FROM ML.EVALUATE(MODEL b)"):
            with pytest.raises(SecretKeyError, match=re.escape(KEY_MESSAGE)):
                conn.sql(read).fetchall()
        statuses = {r[0] for r in conn.models().select("status").fetchall()}
        assert len(statuses) == 1 and next(iter(statuses)).startswith(KEY_MESSAGE)
        conn.sql("BEGIN")
        conn.sql("CREATE TABLE kept AS SELECT 1 AS x")
        with pytest.raises(SecretKeyError, match=re.escape(KEY_MESSAGE)):
            conn.sql("SELECT count(*) FROM b_scored").fetchall()
        with pytest.raises(SecretKeyError, match=re.escape(KEY_MESSAGE)):
            conn.sql("SELECT * FROM ML.PREDICT(MODEL a, TABLE penguins)")
        conn.sql("INSERT INTO kept VALUES (2)")  # the transaction is still usable
        conn.sql("COMMIT")
        assert conn.sql("SELECT sum(x) FROM kept").fetchall() == [(3,)]


def test_a_wrong_key_read_through_plain_duckdb_names_the_key(wrong_key):
    path, expected = wrong_key
    raw = duckdb.connect(str(path))
    conn = sqlml.register(raw)
    # The view is compiled to plain SQL: DuckDB reads it with no key at all (docs/compiled_sql.md) ...
    assert same_predictions(raw.execute(SCORED.format("a_scored")).fetchall(), expected["a"])
    with pytest.raises(SecretKeyError) as error:  # ... sqlml, which checks it, names the key
        conn.sql("SELECT * FROM a_scored").fetchall()
    assert KEY_MESSAGE in str(error.value) and str(error.value).startswith("View 'a_scored' cannot be checked: ")
    raw.close()


def test_the_right_key_again_serves_everything(wrong_key, monkeypatch):
    path, expected = wrong_key
    with sqlml.connect(str(path), progress=lambda m: None) as conn, pytest.raises(SecretKeyError):
        conn.sql("SELECT * FROM a_scored").fetchall()
    monkeypatch.undo()
    as_new_process(monkeypatch)
    with sqlml.connect(str(path), progress=lambda m: None) as conn:
        assert all(same_predictions(conn.sql(SCORED.format(f"{name}_scored")).fetchall(), expected[name]) for name in "ab")
        assert json.loads(conn.sql("SELECT state FROM sqlml.serving WHERE model = 'a'").fetchall()[0][0])["seq"] == 2


def test_the_dbt_plugin_opens_a_database_named_sqlml(tmp_path):
    """dbt-duckdb calls the plugin on the connection of a profile whose path may be sqlml.duckdb."""
    pytest.importorskip("dbt.adapters.duckdb")
    from sqlml.dbt import plugin
    raw = duckdb.connect(str(tmp_path / "sqlml.duckdb"))
    plugin.Plugin.__new__(plugin.Plugin).configure_connection(raw)
    tables = {t for (t,) in raw.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'sqlml' "
                                        "AND schema_name = 'sqlml'").fetchall()}
    assert {"models", "deployments", "serving", "training_runs", "key_check"} <= tables
    raw.close()
