"""Everything that decides is signed (docs/release.md, "What is signed"): every column of a model
version's row, recomputed here with hmac/hashlib; an edit of any of them is refused when the row is
used and reported by `sqlml models`, while every other row keeps working; a registry written by an
older sqlml keeps working and says what its signatures leave out."""

from __future__ import annotations

import hashlib
import hmac
import json
import os

import pytest
from click.testing import CliRunner

import sqlml
from sqlml import cli, datasets
from sqlml.errors import ModelIntegrityError, SqlmlError
from sqlml.model import loaded as scoring
from sqlml.registry import deployments
from sqlml.registry.schema import Tables, migrations

KEY = os.environ["SQLML_SECRET_KEY"].strip().encode()
JSON = ("options", "input_schema", "metrics", "eval_tables", "feature_info", "training_info", "library_versions")
ROWS = "SELECT * FROM penguins WHERE sex IS NOT NULL ORDER BY ALL"
PREDICT = "SELECT predicted_sex, predicted_sex_probs[1].prob FROM ML.PREDICT(MODEL {}, ({}))"


def tag(fields: dict) -> str:
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(KEY, b"sqlml-row-1\0" + text.encode(), hashlib.sha256).hexdigest()


def train(conn, name, columns, deploy="always", extra=""):
    conn.sql(f"""CREATE OR REPLACE MODEL {name} OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex'],
                 deploy = '{deploy}'{extra}) AS SELECT {columns}, sex FROM penguins WHERE sex IS NOT NULL""")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """m with versions 1 and 2 (2 deployed), and p."""
    path = tmp_path_factory.mktemp("signed") / "signed.duckdb"
    with sqlml.connect(str(path), progress=lambda m: None) as conn:
        datasets.load(conn.duckdb, "penguins")
        train(conn, "m", "island, bill_length_mm, flipper_length_mm")
        train(conn, "m", "island, bill_depth_mm, body_mass_g")
        train(conn, "p", "bill_length_mm, body_mass_g")
    return path


@pytest.fixture
def db(built, tmp_path, monkeypatch):
    path = tmp_path / "copy.duckdb"
    path.write_bytes(built.read_bytes())

    def open_():
        monkeypatch.setattr(deployments, "_VERIFIED", deployments.OrderedDict())
        monkeypatch.setattr(scoring, "CACHE", scoring.ModelCache())
        return sqlml.connect(str(path), progress=lambda m: None)
    with open_() as conn:
        served = {name: conn.sql(PREDICT.format(name, ROWS)).fetchall() for name in ("m", "m VERSION 1", "p")}
    return path, open_, served


def rows(conn):
    described = [d[0] for d in conn.duckdb.execute("SELECT * EXCLUDE (model) FROM sqlml.models LIMIT 0").description]
    return [dict(zip(described, r)) for r in
            conn.duckdb.execute("SELECT * EXCLUDE (model) FROM sqlml.models ORDER BY name, version").fetchall()]


def test_every_column_but_the_bytes_is_signed_recomputed_with_hmac(db):
    _, open_, _ = db
    with open_() as conn:
        found = rows(conn)
        incarnations = dict(conn.sql("SELECT model, state->>'incarnation' FROM sqlml.serving").fetchall())
    for row in found:
        fields = {k: json.loads(v) if k in JSON else v for k, v in row.items() if k != "signature"}
        assert set(fields) == {"name", "version", "model_type", "label", "label_type", *JSON, "training_rows",
                               "eval_rows", "query", "created_at", "fingerprint", "incarnation"}
        assert row["signature"] == "2:" + tag(fields)
        assert row["incarnation"] == incarnations[row["name"]]


#: An edit of each column of m's deployed version 2, as someone with write access and no key would make it.
EDITS = {
    "name": "name = 'm2'", "version": "version = 7", "model_type": "model_type = 'linear_reg'",
    "label": "label = 'island'", "label_type": "label_type = 'int'",
    "options": "options = json_merge_patch(options, '{\"threshold\": 0.9}')",
    "input_schema": "input_schema = '[]'", "training_rows": "training_rows = training_rows + 1",
    "eval_rows": "eval_rows = 0", "metrics": "metrics = json_merge_patch(metrics, '{\"roc_auc\": 0.99}')",
    "eval_tables": "eval_tables = '{}'", "feature_info": "feature_info = replace(feature_info, '\"mean\":', '\"mean\": 1, \"x\":')",
    "training_info": "training_info = '[]'", "library_versions": "library_versions = '{\"sklearn\": \"0.1\"}'",
    "query": "query = query || ' AND island = ''Dream'''",
    "created_at": "created_at = created_at - INTERVAL 30 DAY", "fingerprint": "fingerprint = (SELECT fingerprint FROM "
    "sqlml.models WHERE name = 'm' AND version = 1)", "incarnation": "incarnation = md5('elsewhere')",
}


@pytest.mark.parametrize("column", sorted(EDITS))
def test_an_edit_of_any_column_is_refused_and_reported_and_the_rest_keeps_working(db, column):
    _, open_, served = db
    with open_() as conn:
        before = rows(conn)
        conn.duckdb.execute(f"UPDATE sqlml.models SET {EDITS[column]} WHERE name = 'm' AND version = 2")
    with open_() as conn:
        edited = next(r for r in rows(conn) if r["version"] != 1 and r["name"] in ("m", "m2"))
        assert edited[column] != next(r for r in before if r["version"] == 2 and r["name"] == "m")[column]
        with pytest.raises(ModelIntegrityError, match=r"Model 'm' version 2 (is damaged and cannot be used: its registry "
                                                      r"row does not match its signature|is missing from sqlml.models "
                                                      r"although its deployments log records it)"):
            conn.sql(PREDICT.format("m", ROWS)).fetchall()
        assert conn.sql(PREDICT.format("m VERSION 1", ROWS)).fetchall() == served["m VERSION 1"]
        assert conn.sql(PREDICT.format("p", ROWS)).fetchall() == served["p"]
        listed = {(r[0], r[1]): r[2] for r in conn.models().select("name, version, status").fetchall()}
        assert listed[("m", 1)] == listed[("p", 1)] == "ok"
        assert listed[(edited["name"], edited["version"])] == \
            "its registry row does not match its signature (it was modified outside sqlml)"


def test_an_edited_training_query_cannot_steer_the_gate(db):
    """The gate re-reads the deployed version's training query: edited to hold out other rows, it would
    let a worse retrain through. It is signed: the retrain is refused before anything is stored."""
    _, open_, served = db
    with open_() as conn:
        conn.duckdb.execute(f"UPDATE sqlml.models SET {EDITS['query']} WHERE name = 'm' AND version = 2")
        with pytest.raises(ModelIntegrityError, match="Model 'm' version 2 is damaged"):
            train(conn, "m", "island", deploy="if_not_worse")
        assert conn.sql("SELECT count(*) FROM sqlml.models WHERE name = 'm'").fetchall() == [(2,)]


def test_edited_feature_statistics_are_refused_by_feature_info_and_reported_by_the_cli(db):
    path, open_, _ = db
    with open_() as conn:
        shown = conn.sql("SELECT input, mean FROM ML.FEATURE_INFO(MODEL m) ORDER BY input").fetchall()
        conn.duckdb.execute(f"UPDATE sqlml.models SET {EDITS['feature_info']} WHERE name = 'm' AND version = 2")
        with pytest.raises(ModelIntegrityError, match="Model 'm' version 2 is damaged"):
            conn.sql("SELECT * FROM ML.FEATURE_INFO(MODEL m)").fetchall()
        assert len(shown) == 3
    result = CliRunner().invoke(cli.main, ["models", "--db", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    listed = {(r["name"], r["version"]): r["status"] for r in map(json.loads, result.stdout.splitlines())}
    assert listed == {("m", 1): "ok", ("m", 2): "its registry row does not match its signature (it was modified "
                                                "outside sqlml)", ("p", 1): "ok"}


def test_tuning_trials_are_signed_in_every_column(penguins):
    penguins.sql("""CREATE MODEL t OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex'], num_trials = 2,
                    l2_reg = HPARAM_CANDIDATES([0.1, 10])) AS SELECT island, bill_length_mm, sex FROM penguins
                    WHERE sex IS NOT NULL""")
    trials = penguins.sql("SELECT trial_id, hyperparameters FROM ML.TRIAL_INFO(MODEL t) ORDER BY trial_id").fetchall()
    assert len(trials) == 2
    penguins.duckdb.execute("UPDATE sqlml.trials SET is_optimal = NOT is_optimal WHERE trial_id = 1")
    with pytest.raises(ModelIntegrityError, match="Trial 1 of model 't' version 1 does not match its signature"):
        penguins.sql("SELECT * FROM ML.TRIAL_INFO(MODEL t)").fetchall()


# --- a registry written by sqlml before the chain and the new signatures ----------------------------------

LEGACY_ROW = ("name", "version", "model_type", "label", "label_type", "options", "input_schema", "metrics",
              "eval_tables", "fingerprint")
LEGACY_LOG = ("seq", "model", "version", "previous_version", "action", "alias", "reason", "metric", "new_value",
              "old_value", "eval_rows")


def make_legacy(path):
    """Rewrite the database as sqlml 0.3 left it (schema version 3): rows signed over the scoring
    columns only, a log of rows signed one by one and no genesis entries, serving rows without the chain."""
    import duckdb
    with duckdb.connect(str(path)) as raw:
        catalog = raw.execute("SELECT current_database()").fetchall()[0][0]
        models = raw.sql("SELECT * FROM sqlml.models").to_arrow_table()
        log = raw.execute("SELECT * FROM sqlml.deployments WHERE action <> 'create' ORDER BY model, seq").fetchall()
        columns = [d[0] for d in raw.description]
        serving = raw.execute("SELECT model, state FROM sqlml.serving").fetchall()
        for table in ("models", "trials", "dropped", "deployments", "serving", "scoring_functions", "key_check",
                      "views", "schema_version"):
            raw.execute(f"DROP TABLE IF EXISTS sqlml.{table}")
        for statements in migrations(Tables.of(catalog))[:3]:
            for statement in statements:
                raw.execute(statement)
        raw.execute("CREATE TABLE sqlml.schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP DEFAULT "
                    "current_timestamp); INSERT INTO sqlml.schema_version (version) VALUES (1), (2), (3)")
        raw.register("old_models", models)
        raw.execute("INSERT INTO sqlml.models BY NAME SELECT * EXCLUDE (incarnation) FROM old_models")
        stored = raw.execute("SELECT * FROM sqlml.models").fetchall()
        names = [d[0] for d in raw.description]
        for row in stored:
            values = dict(zip(names, row))
            fields = {k: json.loads(values[k]) if k in JSON else values[k] for k in LEGACY_ROW}
            raw.execute("UPDATE sqlml.models SET signature = ? WHERE name = ? AND version = ?",
                        [tag(fields), values["name"], values["version"]])
        numbers: dict[str, int] = {}
        for row in log:
            entry = dict(zip(columns, row))
            numbers[entry["model"]] = numbers.get(entry["model"], 0) + 1
            entry["seq"] = numbers[entry["model"]]
            fields = {c: entry[c] for c in LEGACY_LOG}
            raw.execute(f"INSERT INTO sqlml.deployments ({', '.join(LEGACY_LOG)}, created_at, signature) VALUES "
                        f"({', '.join('?' * len(LEGACY_LOG))}, ?, ?)",
                        [entry[c] for c in LEGACY_LOG] + [entry["created_at"], tag({"deployment": fields})])
        for model, state in serving:
            state = json.loads(state)
            old = {"model": model, "deployed": state["deployed"], "disabled": state["disabled"],
                   "aliases": state["aliases"], "seq": numbers[model],
                   "versions": {n: {"fingerprint": v["fingerprint"], "threshold": v["threshold"]}
                                for n, v in state["versions"].items()}}
            raw.execute("INSERT INTO sqlml.serving VALUES (?, ?, ?)", [model, json.dumps(old), tag({"serving": old})])


def test_a_registry_written_by_an_older_sqlml_keeps_working_and_begins_its_chain(db):
    path, open_, served = db
    with open_() as conn:
        conn.sql("ALTER MODEL m DEPLOY VERSION 1")
        conn.sql("ALTER MODEL m VERSION 2 SET ALIAS challenger")
        conn.sql("ALTER MODEL m DEPLOY VERSION 2")
    make_legacy(path)
    with sqlml.connect(str(path), read_only=True, progress=lambda m: None) as conn:  # it cannot be migrated
        with pytest.raises(SqlmlError, match=r"This database's registry was written by an older sqlml \(schema "
                                             r"version 3; this sqlml reads version 5\), and it is open read-only"):
            conn.sql(PREDICT.format("m", ROWS)).fetchall()
    with open_() as conn:  # migrated on connect
        assert conn.sql("SELECT max(version) FROM sqlml.schema_version").fetchall() == [(5,)]
        assert {name: conn.sql(PREDICT.format(name, ROWS)).fetchall() for name in served} == served
        statuses = {r[0] for r in conn.models().select("status").fetchall()}
        assert statuses == {"ok, but signed by an older sqlml, which did not sign its training query, feature "
                            "statistics, training info, row counts, library versions or created_at; retrain it to "
                            "have them signed"}
        conn.sql("ALTER MODEL m ROLLBACK")  # the first release statement begins the chain, carrying the state over
        assert conn.sql(PREDICT.format("m", ROWS)).fetchall() == served["m VERSION 1"]
        log = conn.sql("SELECT seq, action, version, alias, incarnation IS NULL FROM sqlml.deployments "
                       "WHERE model = 'm' ORDER BY seq").fetchall()
        assert log == [(1, "trained_deployed", 1, None, True), (2, "trained_deployed", 2, None, True),
                       (3, "deploy", 1, None, True), (4, "alias", 2, "challenger", True), (5, "deploy", 2, None, True),
                       (6, "create", None, None, False), (7, "deploy", 1, None, False), (8, "deploy", 2, None, False),
                       (9, "deploy", 1, None, False), (10, "deploy", 2, None, False),
                       (11, "alias", 2, "challenger", False), (12, "rollback", 1, None, False)]
        conn.sql("ALTER MODEL m ROLLBACK")  # steps back along the carried deployments
        assert conn.sql(PREDICT.format("m", ROWS)).fetchall() == served["m"]
        train(conn, "m", "island, bill_depth_mm, body_mass_g", "if_not_worse", ", data_split_method = 'RANDOM'")
        (reason,), = conn.sql("SELECT reason FROM sqlml.deployments WHERE model = 'm' AND version = 3").fetchall()
        assert "(the deployed version was stored by an older sqlml, which did not sign its training query, so which " \
               "rows it held out is not recomputed: it may have been trained on some of them)" in reason
        with pytest.raises(ModelIntegrityError, match="Entry 7 of the deployments log of model 'm' does not match"):
            conn.duckdb.execute("UPDATE sqlml.deployments SET version = 2 WHERE model = 'm' AND seq = 7")
            deployments._VERIFIED.clear()
            conn.sql(PREDICT.format("m", ROWS)).fetchall()
