"""The registry and model bytes: versions, integrity, and crashes that lose nothing."""

import textwrap

import pytest

import sqlml
from conftest import kill_midway
from sqlml.errors import ModelIntegrityError
from sqlml.model import envelope as storage

TRAIN = """CREATE OR REPLACE MODEL m OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['label'])
           AS SELECT range::DOUBLE AS x, (range % 5)::VARCHAR AS c, range % 2 = 0 AS label FROM range(300)"""


def test_registry_is_plain_sql(conn):
    conn.sql(TRAIN)
    conn.sql(TRAIN)
    rows = conn.sql("""SELECT name, version, model_type, label, training_rows, options->>'model_type',
                       library_versions->>'sklearn', octet_length(model) > 1000 FROM sqlml.models ORDER BY version""").fetchall()
    import sklearn
    assert rows == [("m", v, "boosted_tree_classifier", "label", 300, "boosted_tree_classifier", sklearn.__version__, True)
                    for v in (1, 2)]
    assert conn.models().columns[:3] == ["name", "version", "model_type"]


@pytest.mark.parametrize("offset", [-1, 100, 10])
def test_tampered_bytes_are_refused(conn, offset, monkeypatch):
    from sqlml.model import loaded as scoring
    conn.sql(TRAIN)
    blob = bytearray(conn.sql("SELECT model FROM sqlml.models").fetchall()[0][0])
    blob[offset] ^= 0xFF
    conn.duckdb.execute("UPDATE sqlml.models SET model = ?", [bytes(blob)])
    monkeypatch.setattr(scoring, "CACHE", scoring.ModelCache())  # as a new process would: load from the database
    with pytest.raises(ModelIntegrityError, match="failed verification"):
        conn.sql("SELECT * FROM ML.EVALUATE(MODEL m)")


def test_foreign_bytes_and_unknown_versions_are_refused():
    import pickle
    with pytest.raises(ModelIntegrityError, match="not a sqlml model"):
        storage.loads(pickle.dumps({"x": 1}))
    blob = storage.dumps({"not": "an estimator"}, {"h": 1})
    with pytest.raises(ModelIntegrityError, match="Unknown model format version 9"):
        storage.loads(blob[:5] + bytes([9]) + blob[6:])


def test_another_key_cannot_load(conn, monkeypatch):
    conn.sql(TRAIN)
    blob = conn.sql("SELECT model FROM sqlml.models").fetchall()[0][0]
    monkeypatch.setenv("SQLML_SECRET_KEY", "someone else's key, long enough to be accepted")
    with pytest.raises(ModelIntegrityError, match="written with another secret key"):
        storage.loads(blob)


def test_key_file_is_created_private_by_the_first_model(tmp_path, monkeypatch):
    monkeypatch.delenv("SQLML_SECRET_KEY")
    key_file = tmp_path / "k" / "secret.key"
    monkeypatch.setenv("SQLML_KEY_FILE", str(key_file))
    messages = []
    with sqlml.connect(progress=messages.append) as conn:
        conn.sql(TRAIN)
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        assert len(bytes.fromhex(key_file.read_text())) == 32
        assert any(f"Created a new secret key at {key_file}" in m for m in messages)
        assert conn.sql("SELECT count(*) FROM ML.PREDICT(MODEL m, (SELECT 1.0 AS x, '2' AS c))").fetchall() == [(1,)]


class Smuggled:
    """A type nobody put on the allow-list."""


def test_types_outside_the_allow_list_are_never_stored():
    with pytest.raises(ModelIntegrityError, match="outside the allow-list.*Smuggled"):
        storage.dumps({"payload": Smuggled()}, {})


def test_kill_during_training_keeps_the_previous_version(tmp_path):
    """SIGKILL in the middle of a long CREATE OR REPLACE MODEL: version 1 must still load."""
    path = str(tmp_path / "kill.duckdb")
    with sqlml.connect(path, progress=lambda m: None) as conn:
        conn.sql(TRAIN)
        before = conn.sql("SELECT * FROM ML.EVALUATE(MODEL m)").fetchall()
    script = textwrap.dedent(f"""
        import sqlml
        conn = sqlml.connect({path!r}, progress=lambda m: print(m, flush=True))
        conn.sql('''CREATE OR REPLACE MODEL m OPTIONS (model_type = 'random_forest_classifier', num_parallel_tree = 3000,
                    input_label_cols = ['label']) AS SELECT range::DOUBLE AS x, range % 2 = 0 AS label FROM range(20000)''')
    """)
    kill_midway(script, "Training", 0.5)
    with sqlml.connect(path) as conn:
        assert conn.sql("SELECT version FROM sqlml.models").fetchall() == [(1,)]
        assert conn.sql("SELECT * FROM ML.EVALUATE(MODEL m)").fetchall() == before
