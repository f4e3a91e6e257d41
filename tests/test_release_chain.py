"""The chain of custody for releases (docs/release.md, "Chain of custody"): the deployments log is a
hash chain per model incarnation, recomputed here with hmac/hashlib; the serving row is accepted only
as the log's head; every way of editing the log or the serving row by hand is refused with
ModelIntegrityError naming the model and what is wrong, and undoing the edit serves again exactly
what was served before (nothing stored was lost)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import textwrap
from collections import OrderedDict

import duckdb
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import sqlml
from conftest import kill_midway, same_predictions
from sqlml import datasets, views
from sqlml.errors import ModelIntegrityError, SqlmlError
from sqlml.model import loaded as scoring
from sqlml.registry import deployments

KEY = os.environ["SQLML_SECRET_KEY"].strip().encode()
ROWS = "SELECT * FROM penguins WHERE sex IS NOT NULL ORDER BY ALL"
PREDICT = "SELECT predicted_sex, predicted_sex_probs[1].prob FROM ML.PREDICT(MODEL {}, ({}))"
#: Three versions of m (each deployed when trained), then releases: m serves version 1 with challenger = 2.
RELEASES = ("ALTER MODEL m DEPLOY VERSION 1", "ALTER MODEL m VERSION 2 SET ALIAS challenger",
            "ALTER MODEL m DISABLE", "ALTER MODEL m ENABLE")


def tag(fields: dict) -> str:
    """docs/release.md's signature of a registry row, written without sqlml: HMAC-SHA256 under the key of
    'sqlml-row-1', a NUL byte and the row's canonical JSON (sorted keys, no spaces, times as text)."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(KEY, b"sqlml-row-1\0" + text.encode(), hashlib.sha256).hexdigest()


def train(conn, name, columns, deploy="always"):
    conn.sql(f"""CREATE OR REPLACE MODEL {name} OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex'],
                 deploy = '{deploy}') AS SELECT {columns}, sex FROM penguins WHERE sex IS NOT NULL""")


def build(path):
    with sqlml.connect(str(path), progress=lambda m: None) as conn:
        datasets.load(conn.duckdb, "penguins")
        for columns in ("bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, island",
                        "bill_length_mm, island", "body_mass_g"):
            train(conn, "m", columns)
        train(conn, "p", "bill_depth_mm, flipper_length_mm")
        for statement in RELEASES:
            conn.sql(statement)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = tmp_path_factory.mktemp("chain") / "chain.duckdb"
    build(path)
    return path


def fresh():
    """Forget what this process verified and loaded, as a new process would."""
    deployments._VERIFIED.clear()
    scoring.CACHE = scoring.ModelCache()


@pytest.fixture
def db(built, tmp_path, monkeypatch):
    """A copy of the built database, and ``open()`` connecting to it as a new process would."""
    path = tmp_path / "copy.duckdb"
    path.write_bytes(built.read_bytes())
    monkeypatch.setattr(deployments, "_VERIFIED", OrderedDict())
    monkeypatch.setattr(scoring, "CACHE", scoring.ModelCache())

    def open_():
        fresh()
        return sqlml.connect(str(path), progress=lambda m: None)
    with open_() as conn:
        served = {name: conn.sql(PREDICT.format(name, ROWS)).fetchall() for name in ("m", "p", "m VERSION 1")}
        stored = stored_rows(conn)
    return open_, served, stored


def stored_rows(conn):
    return {table: conn.sql(f"SELECT * EXCLUDE ({'model' if table == 'models' else 'signature'}) FROM sqlml.{table} "
                            "ORDER BY ALL").fetchall()
            for table in ("models", "deployments", "serving")}


def entries(conn, model="m"):
    return [dict(zip([d[0] for d in conn.duckdb.description], row)) for row in
            conn.duckdb.execute("SELECT * FROM sqlml.deployments WHERE model = ? ORDER BY seq", [model]).fetchall()]


def test_the_chain_recomputed_with_hmac(db):
    open_, served, _ = db
    with open_() as conn:
        for model in ("m", "p"):
            log = entries(conn, model)
            assert log[0]["action"] == "create" and log[0]["version"] is None and [e["seq"] for e in log] == \
                list(range(1, len(log) + 1))
            assert len({e["incarnation"] for e in log}) == 1 and len(log[0]["incarnation"]) == 32
            previous = ""
            for entry in log:
                fields = {k: v for k, v in entry.items() if k != "signature"}
                assert entry["signature"] == tag({"deployment": fields, "previous": previous}), entry["seq"]
                previous = entry["signature"]
            times = [e["created_at"] for e in log]
            assert times == sorted(times)
            (state, signature), = conn.duckdb.execute("SELECT state, signature FROM sqlml.serving WHERE model = ?",
                                                      [model]).fetchall()
            state = json.loads(state)
            assert signature == tag({"serving": state})
            assert (state["seq"], state["head"], state["genesis"], state["incarnation"]) == \
                (log[-1]["seq"], log[-1]["signature"], 1, log[0]["incarnation"])
        assert [e["action"] for e in entries(conn)] == ["create", "trained_deployed", "trained_deployed",
                                                        "trained_deployed", "deploy", "alias", "disable", "enable"]
        state = json.loads(conn.sql("SELECT state FROM sqlml.serving WHERE model = 'm'").fetchall()[0][0])
        assert (state["deployed"], state["aliases"], state["disabled"]) == (1, {"challenger": 2}, False)
        assert served["m"] == served["m VERSION 1"] != served["p"]


TAMPERING = {
    # name: (edit, undo, message)
    "deleted entry": ("DELETE FROM sqlml.deployments WHERE model = 'm' AND seq = 3",
                      "INSERT INTO sqlml.deployments SELECT * FROM saved",
                      r"The deployments log of model 'm' has lost entry 3: deleted outside sqlml"),
    "deleted head": ("DELETE FROM sqlml.deployments WHERE model = 'm' AND seq = 8",
                     "INSERT INTO sqlml.deployments SELECT * FROM saved",
                     r"Entries 8 to 8 of the deployments log of model 'm' are missing \(deleted outside sqlml\)"),
    "reordered": ("UPDATE sqlml.deployments SET seq = CASE seq WHEN 6 THEN 7 ELSE 6 END WHERE model = 'm' "
                  "AND seq IN (6, 7)",
                  "UPDATE sqlml.deployments SET seq = CASE seq WHEN 6 THEN 7 ELSE 6 END WHERE model = 'm' "
                  "AND seq IN (6, 7)",
                  r"Entry 6 of the deployments log of model 'm' does not match its signature: it was modified, moved"),
    "back-dated": ("UPDATE sqlml.deployments SET created_at = created_at - INTERVAL 1 DAY WHERE model = 'm' "
                   "AND seq = 5",
                   "UPDATE sqlml.deployments SET created_at = created_at + INTERVAL 1 DAY WHERE model = 'm' "
                   "AND seq = 5",
                   r"Entry 5 of the deployments log of model 'm' does not match its signature"),
    "entry appended": ("INSERT INTO sqlml.deployments SELECT * REPLACE ('m' AS model, 9 AS seq) FROM sqlml.deployments "
                       "WHERE model = 'm' AND seq = 5",
                       "DELETE FROM sqlml.deployments WHERE model = 'm' AND seq = 9",
                       r"The serving state of model 'm' reflects entry 8 of its deployments log, but the log goes on to "
                       r"entry 9: entries were added outside sqlml, or the serving state is stale"),
    "entry of another model": ("UPDATE sqlml.deployments SET signature = (SELECT signature FROM sqlml.deployments "
                               "WHERE model = 'p' AND seq = 2) WHERE model = 'm' AND seq = 2",
                               "UPDATE sqlml.deployments SET signature = (SELECT signature FROM saved) "
                               "WHERE model = 'm' AND seq = 2",
                               r"Entry 2 of the deployments log of model 'm' does not match its signature"),
    "deleted serving row": ("DELETE FROM sqlml.serving WHERE model = 'm'",
                            "INSERT INTO sqlml.serving SELECT * FROM saved",
                            r"The serving state of model 'm' \(sqlml.serving\) is missing although its deployments "
                            r"log goes on to entry 8 \('enable'\): it was deleted outside sqlml"),
    "edited serving row": ("UPDATE sqlml.serving SET state = replace(state, '\"deployed\": 1', '\"deployed\": 3') "
                           "WHERE model = 'm'",
                           "UPDATE sqlml.serving SET state = replace(state, '\"deployed\": 3', '\"deployed\": 1') "
                           "WHERE model = 'm'",
                           r"The serving state of model 'm' \(sqlml.serving\) does not match its signature"),
}
SAVED = {"deleted entry": "SELECT * FROM sqlml.deployments WHERE model = 'm' AND seq = 3",
         "entry of another model": "SELECT * FROM sqlml.deployments WHERE model = 'm' AND seq = 2",
         "deleted head": "SELECT * FROM sqlml.deployments WHERE model = 'm' AND seq = 8",
         "deleted serving row": "SELECT * FROM sqlml.serving WHERE model = 'm'"}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_each_edit_of_the_log_or_serving_row_is_refused_and_undoing_it_serves_again(db, case, tmp_path):
    open_, served, stored = db
    edit, undo, message = TAMPERING[case]
    saved = tmp_path / "saved.parquet"
    with open_() as conn:
        if case in SAVED:
            conn.duckdb.execute(f"COPY ({SAVED[case]}) TO '{saved}'")
        conn.duckdb.execute(edit)
    with open_() as conn:  # a new session: the whole chain is checked
        for reference in ("m", "m VERSION 1", "m VERSION challenger"):
            with pytest.raises(ModelIntegrityError, match=message):
                conn.sql(PREDICT.format(reference, ROWS)).fetchall()
        for statement in ("ALTER MODEL m ROLLBACK", "ALTER MODEL m DEPLOY VERSION 3", "ALTER MODEL m DISABLE"):
            with pytest.raises(ModelIntegrityError, match=message):
                conn.sql(statement)
        with pytest.raises(ModelIntegrityError, match=message):
            train(conn, "m", "island")  # the gate reads the deployed version: refused before storing anything
        assert conn.sql(PREDICT.format("p", ROWS)).fetchall() == served["p"]  # other models are not affected
        listed = conn.models().select("name, deployed, status").fetchall()
        assert {r for r in listed if r[0] == "m"} == {("m", False, "ok")}  # listed as serving nothing
    with open_() as conn:
        if case in SAVED:
            conn.duckdb.execute(f"CREATE TEMP TABLE saved AS SELECT * FROM '{saved}'")
        conn.duckdb.execute(undo)
    with open_() as conn:
        assert {name: conn.sql(PREDICT.format(name, ROWS)).fetchall() for name in served} == served
        assert stored_rows(conn) == stored


def test_an_edit_in_this_session_is_refused_by_ml_predict_and_views(db):
    open_, served, _ = db
    with open_() as conn:
        conn.sql(f"CREATE VIEW live AS {PREDICT.format('m', ROWS)}")
        assert same_predictions(conn.sql("SELECT * FROM live").fetchall(), served["m"])
        conn.duckdb.execute("DELETE FROM sqlml.deployments WHERE model = 'm' AND seq = 8")
        with pytest.raises(ModelIntegrityError, match="Entries 8 to 8 of the deployments log of model 'm' are missing"):
            conn.sql(PREDICT.format("m", ROWS)).fetchall()
        with pytest.raises(ModelIntegrityError, match="Entries 8 to 8 of the deployments log of model 'm' are missing"):
            conn.sql("SELECT * FROM live").fetchall()


def test_a_stale_serving_row_written_back_undoes_nothing(db, tmp_path):
    """The kill switch cannot be silently undone by writing back the serving row of before DISABLE."""
    open_, served, _ = db
    before = tmp_path / "before.parquet"
    with open_() as conn:
        conn.duckdb.execute(f"COPY (SELECT * FROM sqlml.serving WHERE model = 'm') TO '{before}'")
        conn.sql("ALTER MODEL m DISABLE")
        conn.duckdb.execute(f"INSERT OR REPLACE INTO sqlml.serving SELECT * FROM '{before}'")
        with pytest.raises(ModelIntegrityError, match="The serving state of model 'm' reflects entry 8 of its "
                                                      "deployments log, but the log goes on to entry 9"):
            conn.sql(PREDICT.format("m", ROWS)).fetchall()
    with open_() as conn, pytest.raises(ModelIntegrityError, match="is stale"):
        conn.sql(PREDICT.format("m", ROWS)).fetchall()


def test_a_dropped_model_s_history_is_never_replayed_into_a_new_one(db, tmp_path):
    open_, served, stored = db
    old = tmp_path / "old.parquet"
    with open_() as conn:
        conn.duckdb.execute(f"COPY (SELECT * FROM sqlml.models WHERE name = 'm' AND version = 3) TO '{old}'")
        conn.sql("DROP MODEL m")
        train(conn, "m", "body_mass_g")  # a new m: version 1 of a new incarnation
        train(conn, "m", "bill_length_mm", deploy="never")
        log = entries(conn)
        assert [e["action"] for e in log[8:]] == ["drop", "create", "trained_deployed", "trained_not_deployed"]
        assert log[8]["incarnation"] == log[0]["incarnation"] != log[9]["incarnation"]
        with pytest.raises(SqlmlError, match="Model 'm' has no earlier deployment to roll back to: version 1 is the first"):
            conn.sql("ALTER MODEL m ROLLBACK")  # the dropped model's deployments of 1, 2, 3 and 1 are not replayed
        new = conn.sql(PREDICT.format("m", ROWS)).fetchall()
        # The dropped version 3, copied back by hand, belongs to the old incarnation: refused.
        conn.duckdb.execute(f"INSERT INTO sqlml.models SELECT * FROM '{old}'")
        with pytest.raises(ModelIntegrityError, match="Model 'm' version 3 belongs to another incarnation of the model"):
            conn.sql(PREDICT.format("m VERSION 3", ROWS)).fetchall()
        # The dropped log's entries, renumbered after the new head, do not chain on to it.
        conn.duckdb.execute("DELETE FROM sqlml.models WHERE name = 'm' AND version = 3")
        conn.duckdb.execute("INSERT INTO sqlml.deployments SELECT * REPLACE (seq + 12 AS seq) FROM sqlml.deployments "
                            "WHERE model = 'm' AND seq = 5")
    with open_() as conn:
        with pytest.raises(ModelIntegrityError, match="reflects entry 12 of its deployments log, but the log goes on "
                                                      "to entry 17"):
            conn.sql(PREDICT.format("m", ROWS)).fetchall()
        conn.duckdb.execute("DELETE FROM sqlml.deployments WHERE model = 'm' AND seq = 17")
        assert conn.sql(PREDICT.format("m", ROWS)).fetchall() == new
        assert conn.sql(PREDICT.format("p", ROWS)).fetchall() == served["p"]


def test_verification_is_paid_once_per_change(db, monkeypatch):
    """The whole chain is read when a state is first seen, not per statement nor per batch."""
    open_, served, _ = db
    reads = []
    original = deployments.Deployments._chain_of
    monkeypatch.setattr(deployments.Deployments, "_chain_of",
                        lambda self, serving: reads.append(serving.model) or original(self, serving))
    with open_() as conn:
        conn.sql(f"CREATE VIEW live AS {PREDICT.format('m', ROWS)}")
        reads.clear()
        for _ in range(3):
            assert conn.sql(PREDICT.format("m", ROWS)).fetchall() == served["m"]
            assert same_predictions(conn.sql("SELECT * FROM live").fetchall(), served["m"])
        assert reads == []  # verified at connect and when the view was created
        conn.sql("ALTER MODEL m DISABLE")
        reads.clear()
        conn.sql(PREDICT.format("m", ROWS)).fetchall()
        conn.sql("SELECT * FROM live").fetchall()
        assert reads == []  # the state this process wrote is trusted as written


def test_kill_during_create_alter_and_drop_leaves_every_model_verifying(tmp_path):
    """SIGKILL a process looping over CREATE OR REPLACE, release statements and DROP MODEL: on reopening,
    every model's chain verifies and its serving state is what its log adds up to."""
    path = tmp_path / "kill.duckdb"
    build(path)
    script = textwrap.dedent(f"""
        import itertools, sqlml
        conn = sqlml.connect({str(path)!r}, progress=lambda m: None)
        train = ("CREATE OR REPLACE MODEL {{}} OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex'], "
                 "deploy = 'always') AS SELECT {{}}, sex FROM penguins WHERE sex IS NOT NULL")
        for i in itertools.count():
            for s in (train.format("q", "island"), "ALTER MODEL q DISABLE", train.format("q", "body_mass_g"),
                      "ALTER MODEL m DEPLOY VERSION 2", "ALTER MODEL m VERSION 3 SET ALIAS challenger",
                      "ALTER MODEL q ROLLBACK", "ALTER MODEL q ENABLE", "DROP MODEL q", "ALTER MODEL m DEPLOY VERSION 1"):
                conn.sql(s)
            print(i, flush=True)
    """)
    kill_midway(script, "0\n", 0.5 + 1.5 * np.random.default_rng().random())
    fresh()
    with sqlml.connect(str(path), progress=lambda m: None) as conn:
        registry = conn.executor.registry
        for name in {n for (n,) in conn.sql("SELECT DISTINCT name FROM sqlml.models").fetchall()}:
            serving = registry.deployments.serving(name)
            log = registry.deployments.log(name)  # the whole chain, verified
            assert log[0]["action"] == "create" and serving.seq == log[-1]["seq"]
            assert serving.deployed == [e["version"] for e in log if e["action"] in deployments.DEPLOYING][-1]
            expected = conn.sql(PREDICT.format(f"{name} VERSION {serving.deployed}", ROWS)).fetchall()
            if serving.disabled:  # the baseline: the majority class of the training rows, with its prior
                share = conn.sql("SELECT avg((sex = 'male')::INT) FROM penguins WHERE sex IS NOT NULL").fetchall()[0][0]
                expected = [("male" if share > 0.5 else "female", pytest.approx(1 - share))] * len(expected)
            assert conn.sql(PREDICT.format(name, ROWS)).fetchall() == expected
        assert {n for (n,) in conn.sql("SELECT DISTINCT model FROM sqlml.deployments").fetchall()} >= {"m", "p"}


# --- whatever is done to the registry by hand, what is served verifies ------------------------------------

#: The references checked after each mutation, and the view over MODEL m.
REFERENCES = ("m", "m VERSION 1", "m VERSION 2", "m VERSION 3", "m VERSION challenger", "p")
#: Registry tables a mutation may touch, with their key columns.
MUTABLE = {"models": ("name", "version"), "deployments": ("model", "seq"), "serving": ("model",),
           "scoring_functions": ("name",), "views": ("schema_name", "view_name")}
#: 25 derandomized examples run in about a minute in CI; explore with e.g.
#: SQLML_REGISTRY_FUZZ_EXAMPLES=500 SQLML_REGISTRY_FUZZ_RANDOM=1 python -m pytest tests/test_release_chain.py -k whatever
EXAMPLES = int(os.environ.get("SQLML_REGISTRY_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def truth(built, tmp_path_factory):
    """The built database with a view over MODEL m, and what each reference serves in it."""
    path = tmp_path_factory.mktemp("truth") / "truth.duckdb"
    path.write_bytes(built.read_bytes())
    fresh()
    with sqlml.connect(str(path), progress=lambda m: None) as conn:
        conn.sql(f"CREATE VIEW live AS {PREDICT.format('m', ROWS)}")
        served = {ref: conn.sql(PREDICT.format(ref, ROWS)).fetchall() for ref in REFERENCES}
    return path, served


def edit_sql(kind: str, column: str, variant: int) -> str:
    """An edit of one value by someone without the key: of a number, a text, a JSON document, a time, bytes."""
    quoted = f'"{column}"'
    if kind in ("INTEGER", "BIGINT", "DOUBLE"):
        return [f"{quoted} + 1", f"{quoted} - 1", "NULL"][variant % 3]
    if kind == "BOOLEAN":
        return f"NOT {quoted}"
    if kind == "TIMESTAMP":
        return [f"{quoted} - INTERVAL 1 SECOND", f"{quoted} + INTERVAL 1 DAY"][variant % 2]
    if kind == "BLOB":
        return [f"{quoted}[:{40 + variant}]", f"{quoted}[:{100 + variant}] || '\\xAB'::BLOB || {quoted}[{102 + variant}:]",
                f"(SELECT model FROM sqlml.models ORDER BY version DESC, name LIMIT 1)"][variant % 3]
    return [f"{quoted} || ' '", f"replace({quoted}, '1', '2')", f"replace({quoted}, 'false', 'true')",
            f"replace({quoted}, 'm', 'p')", "NULL", f"upper({quoted})"][variant % 6]


@st.composite
def mutations(draw):
    """One hand edit of a registry table: delete a row, duplicate it under another key, reorder two rows
    (swap their keys), swap them between models, or edit any column."""
    table = draw(st.sampled_from(sorted(MUTABLE)))
    action = draw(st.sampled_from(["delete", "duplicate", "reorder", "swap", "edit", "edit"]))
    return table, action, draw(st.integers(0, 40)), draw(st.integers(0, 40)), draw(st.integers(0, 40))


def mutate(raw, table: str, action: str, first: int, second: int, variant: int) -> bool:
    """Apply one mutation on a plain DuckDB connection; False when the table's constraints refuse it."""
    rows = [r for (r,) in raw.execute(f"SELECT rowid FROM sqlml.{table} ORDER BY rowid").fetchall()]
    if not rows:
        return False
    a, b = rows[first % len(rows)], rows[second % len(rows)]
    keys = MUTABLE[table]
    columns = raw.execute(f"SELECT column_name, column_type FROM (DESCRIBE sqlml.{table})").fetchall()
    try:
        if action == "delete":
            raw.execute(f"DELETE FROM sqlml.{table} WHERE rowid = ?", [a])
        elif action == "duplicate":  # under another key: a later number, or another model's name
            key = keys[-1]
            changed = f"{key} + 100" if len(keys) > 1 else f"{key} || '_copy'"
            raw.execute(f"INSERT INTO sqlml.{table} SELECT * REPLACE ({changed} AS {key}) FROM sqlml.{table} "
                        "WHERE rowid = ?", [a])
        elif action in ("reorder", "swap"):  # swap the last key column (reorder) or the model column (swap)
            key = keys[-1] if action == "reorder" or len(keys) == 1 else keys[0]
            if a == b:
                return False
            (x,), = raw.execute(f"SELECT {key} FROM sqlml.{table} WHERE rowid = ?", [a]).fetchall()
            (y,), = raw.execute(f"SELECT {key} FROM sqlml.{table} WHERE rowid = ?", [b]).fetchall()
            if x == y:
                return False
            placeholder = -1 if isinstance(x, int) else "__moving__"
            raw.execute(f"UPDATE sqlml.{table} SET {key} = ? WHERE rowid = ?", [placeholder, a])
            raw.execute(f"UPDATE sqlml.{table} SET {key} = ? WHERE rowid = ?", [x, b])
            raw.execute(f"UPDATE sqlml.{table} SET {key} = ? WHERE rowid = ?", [y, a])
        else:
            column, kind = columns[variant % len(columns)]
            raw.execute(f'UPDATE sqlml.{table} SET "{column}" = {edit_sql(kind, column, second)} WHERE rowid = ?', [a])
    except duckdb.Error:  # a key or NOT NULL constraint: not a database sqlml could be left with
        return False
    return True


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("SQLML_REGISTRY_FUZZ_RANDOM"),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.lists(mutations(), min_size=1, max_size=2))
def test_whatever_is_edited_by_hand_what_is_served_verifies_or_is_refused(truth, tmp_path_factory, edits):
    """After any hand edits of the registry tables, connecting works; each of ML.PREDICT over every
    reference, the view over MODEL m and the registry listing either gives exactly what the untouched
    registry gave, or refuses with ModelIntegrityError."""
    built_path, served = truth
    path = tmp_path_factory.mktemp("mutated") / "mutated.duckdb"
    path.write_bytes(built_path.read_bytes())
    with duckdb.connect(str(path)) as raw:
        applied = [mutate(raw, *edit) for edit in edits]
    assume(any(applied))
    fresh()
    views._FUNCTIONS.clear()
    with sqlml.connect(str(path), progress=lambda m: None) as conn:
        for reference in REFERENCES:
            try:
                result = conn.sql(PREDICT.format(reference, ROWS)).fetchall()
            except ModelIntegrityError:
                continue
            assert result == served[reference], (reference, edits)
        try:
            assert same_predictions(conn.sql("SELECT * FROM live").fetchall(), served["m"]), edits
        except ModelIntegrityError:
            pass
        conn.models().fetchall()  # the listing never fails
