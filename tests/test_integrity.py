"""The registry trusts only what it signed: edited rows, swapped bytes and bad keys are refused by name,
and one damaged row never stops the others."""

from __future__ import annotations

import os

import pytest

import sqlml
from sqlml.errors import ModelIntegrityError, ModelNotFoundError, SecretKeyError
from sqlml.model import envelope
from sqlml.model import loaded as scoring

TRAIN = """CREATE OR REPLACE MODEL {name} OPTIONS (model_type = 'logistic_reg', input_label_cols = ['label'])
           AS SELECT range::DOUBLE AS x, (range % 3)::VARCHAR AS c, (range * {k}) % 7 < 3 AS label FROM range(200)"""
ROWS = "SELECT range::DOUBLE AS x, (range % 3)::VARCHAR AS c FROM range(20)"


@pytest.fixture
def two(tmp_path, monkeypatch):
    """A database file with models a and b, opened fresh (no loaded models) after each edit."""
    path = str(tmp_path / "two.duckdb")
    with sqlml.connect(path, progress=lambda m: None) as conn:
        conn.sql(TRAIN.format(name="a", k=1))
        conn.sql(TRAIN.format(name="b", k=5))
        expected = {n: conn.sql(f"SELECT predicted_label_probs[2].prob FROM ML.PREDICT(MODEL {n}, ({ROWS}))").fetchall()
                    for n in "ab"}

    def reopen() -> sqlml.Connection:
        monkeypatch.setattr(scoring, "CACHE", scoring.ModelCache())  # as a new process: nothing loaded yet
        return sqlml.connect(path, progress=lambda m: None)

    return path, reopen, expected


def predictions(conn, name: str) -> list:
    return conn.sql(f"SELECT predicted_label_probs[2].prob FROM ML.PREDICT(MODEL {name}, ({ROWS}))").fetchall()


def test_swapped_model_bytes_are_refused_naming_the_model(two):
    path, reopen, expected = two
    with reopen() as conn:
        conn.duckdb.execute("""UPDATE sqlml.models SET model = (SELECT model FROM sqlml.models o WHERE o.name <> models.name)""")
    with reopen() as conn, pytest.raises(ModelIntegrityError, match="'a' version 1 failed verification"):
        predictions(conn, "a")


def test_swapped_bytes_and_fingerprints_are_refused_by_the_row_signature(two):
    path, reopen, expected = two
    with reopen() as conn:
        conn.duckdb.execute("""UPDATE sqlml.models SET model = o.model, fingerprint = o.fingerprint
                               FROM sqlml.models o WHERE o.name <> models.name""")
    with reopen() as conn, pytest.raises(ModelIntegrityError, match="Model 'a' version 1 is damaged.*signature"):
        predictions(conn, "a")


@pytest.mark.parametrize("edit", [
    "model_type = 'bogus'",
    "label_type = 'bogus'",
    "input_schema = NULL",
    "options = json_merge_patch(options, '{\"threshold\": 0.99}')",
    "label = 'x'",
    "version = 7",
])
def test_an_edited_row_is_refused_and_the_others_keep_working(two, edit):
    path, reopen, expected = two
    with reopen() as conn:
        conn.duckdb.execute(f"UPDATE sqlml.models SET {edit} WHERE name = 'a'")
    with reopen() as conn:  # connecting works although one row is damaged
        assert predictions(conn, "b") == expected["b"]
        with pytest.raises(ModelIntegrityError, match="Model 'a' version \\d+ is (damaged|deployed .* but not stored|"
                                                      "missing from sqlml.models although its deployments log)"):
            predictions(conn, "a")
        status = dict(conn.models().select("name, status").fetchall())
        assert status["b"] == "ok" and "does not match its signature" in status["a"]


def test_alter_model_re_signs_the_row(two):
    path, reopen, expected = two
    with reopen() as conn:
        conn.sql("ALTER MODEL a SET OPTIONS (threshold = 0.9, description = 'checked')")
    with reopen() as conn:
        assert predictions(conn, "a") == expected["a"]
        assert conn.sql("SELECT options->>'description' FROM sqlml.models WHERE name = 'a'").fetchall() == [("checked",)]


def test_a_row_inserted_by_hand_is_refused(two):
    path, reopen, expected = two
    with reopen() as conn:
        conn.duckdb.execute("INSERT INTO sqlml.models SELECT * REPLACE (2 AS version, NULL AS signature) "
                            "FROM sqlml.models WHERE name = 'a'")
    with reopen() as conn:
        with pytest.raises(ModelIntegrityError, match="'a' version 2 is damaged.*not signed"):
            predictions(conn, "a VERSION 2")
        assert predictions(conn, "a") == expected["a"]  # MODEL a is the deployed version 1


class Smuggled:
    """A type nobody put on the allow-list."""


def test_a_correctly_signed_envelope_with_a_type_outside_the_allow_list_is_refused():
    import hashlib
    import hmac
    import json
    import struct

    import skops.io as sio
    body = sio.dumps({"payload": Smuggled()})  # written past the allow-list check, as a crafted file would be
    header = json.dumps({}).encode()
    payload = struct.pack(">I", len(header)) + header + body
    tag = hmac.new(os.environ["SQLML_SECRET_KEY"].encode(), payload, hashlib.sha256).digest()
    with pytest.raises(ModelIntegrityError, match="types outside the allow-list.*Smuggled"):
        envelope.loads(b"SQLML" + bytes([1]) + tag + payload)


# --- the key ------------------------------------------------------------------------------------------

@pytest.fixture
def key_file(tmp_path, monkeypatch):
    monkeypatch.delenv("SQLML_SECRET_KEY", raising=False)
    path = tmp_path / "keys" / "secret.key"
    monkeypatch.setenv("SQLML_KEY_FILE", str(path))
    return path


@pytest.mark.parametrize("content", ["", "   \n", "0123456789abcdef", "a" * 64])
def test_a_weak_key_is_refused(key_file, content):
    key_file.parent.mkdir()
    key_file.write_text(content)
    with pytest.raises(SecretKeyError, match="too weak: a key needs at least 32 bytes"):
        envelope.dumps({"a": 1}, {})


def test_a_weak_key_in_the_environment_is_refused(monkeypatch):
    monkeypatch.setenv("SQLML_SECRET_KEY", "short")
    with pytest.raises(SecretKeyError, match="SQLML_SECRET_KEY is too weak"):
        envelope.dumps({"a": 1}, {})


def test_a_key_path_that_is_a_directory_or_cannot_be_created_is_a_clear_error(key_file, tmp_path, monkeypatch):
    key_file.mkdir(parents=True)
    with pytest.raises(SecretKeyError, match="is a directory"):
        envelope.secret_key()
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("SQLML_KEY_FILE", str(blocker / "secret.key"))
    with sqlml.connect(progress=lambda m: None) as conn, pytest.raises(SecretKeyError, match="Cannot create the secret key file"):
        conn.sql(TRAIN.format(name="a", k=1))
    assert not (blocker / "secret.key").exists()


def test_a_missing_key_is_never_recreated_over_stored_models(key_file, tmp_path):
    path = str(tmp_path / "m.duckdb")
    with sqlml.connect(path, progress=lambda m: None) as conn:
        conn.sql(TRAIN.format(name="a", k=1))
    original = key_file.read_text()
    key_file.unlink()
    with sqlml.connect(path, progress=lambda m: None) as conn:
        with pytest.raises(SecretKeyError, match="holds 1 model version.*sqlml key create"):
            conn.sql(TRAIN.format(name="b", k=5))
        with pytest.raises(SecretKeyError, match="does not exist"):
            predictions(conn, "a")
        assert not key_file.exists()
        assert conn.sql("SELECT count(*) FROM sqlml.models").fetchall() == [(1,)]
    key_file.write_text(original)
    with sqlml.connect(path, progress=lambda m: None) as conn:
        assert len(predictions(conn, "a")) == 20


def test_sqlml_key_create_refuses_to_overwrite(key_file):
    from click.testing import CliRunner

    from sqlml.cli import main
    first = CliRunner().invoke(main, ["key", "create"])
    assert first.exit_code == 0 and str(key_file) in first.output and key_file.exists()
    again = CliRunner().invoke(main, ["key", "create"])
    assert again.exit_code == 1 and "already exists" in again.output and "Traceback" not in again.output


# --- views over dropped models ---------------------------------------------------------------------------

def test_views_over_a_dropped_model_fail_naming_it_in_this_session_and_the_next(tmp_path):
    path = str(tmp_path / "v.duckdb")
    with sqlml.connect(path, progress=lambda m: None) as conn:
        conn.sql(TRAIN.format(name="a", k=1))
        conn.sql(f"CREATE TABLE rows AS {ROWS}")
        conn.sql("CREATE VIEW scored AS SELECT * FROM ML.PREDICT(MODEL a, TABLE rows)")
        assert conn.sql("SELECT count(*) FROM scored").fetchall() == [(20,)]
        conn.sql("DROP MODEL a")
        with pytest.raises(Exception, match="Model 'a' was dropped"):
            conn.sql("SELECT * FROM scored").fetchall()
    with sqlml.connect(path, progress=lambda m: None) as conn:
        with pytest.raises(Exception, match="Model 'a' was dropped"):
            conn.sql("SELECT * FROM scored").fetchall()
        with pytest.raises(ModelNotFoundError):
            predictions(conn, "a")


# --- model names ---------------------------------------------------------------------------------------

def test_a_dotted_name_and_a_quoted_name_with_a_dot_are_different_models():
    with sqlml.connect(progress=lambda m: None) as conn:
        conn.sql(TRAIN.format(name="a.b", k=1))
        conn.sql(TRAIN.format(name='"a.b"', k=5))
        conn.sql(TRAIN.format(name='"A"', k=3))
        names = conn.sql("SELECT name, version FROM sqlml.models ORDER BY name").fetchall()
        assert names == [('"A"', 1), ('"a.b"', 1), ("a.b", 1)]
        assert predictions(conn, "a.b") != predictions(conn, '"a.b"')
        with pytest.raises(ModelNotFoundError, match="Model 'a' does not exist"):
            predictions(conn, "A")  # unquoted: lower-cased, so not the quoted "A"
        for stored, in conn.sql("SELECT name FROM sqlml.models").fetchall():  # a stored name reads back as SQL
            assert len(predictions(conn, stored)) == 20
