"""Views over ML.PREDICT compiled to plain SQL (docs/compiled_sql.md, "Views"): a DuckDB client in
which ``import sqlml`` fails reads them and gets ML.PREDICT's rows — after DEPLOY, ROLLBACK, a
threshold, the kill switch and under A/B serving, each done by another process; sqlml refuses a
view whose text or record was edited, or copied back from an earlier state, naming it; a model that
does not compile keeps the scoring function's view, and a release that deploys one that does makes
the view plain SQL again."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest
import sqlglot

import sqlml
from conftest import fmix64, fnv1a, same_predictions
from sqlml import datasets
from sqlml.compile import challenger_arm
from sqlml.errors import ModelIntegrityError, ModelNotFoundError

PLAIN = textwrap.dedent("""
    import json, sys
    sys.modules["sqlml"] = None  # from here on, import sqlml fails in this process
    try:
        import sqlml
    except ImportError:
        pass
    else:
        raise SystemExit("sqlml could be imported")
    import duckdb
    connection = duckdb.connect(sys.argv[1], read_only=True)
    try:
        print(json.dumps(connection.execute(sys.argv[2]).fetchall()))
    except duckdb.Error as e:
        print(json.dumps({"error": str(e)}))
""")
RELEASE = textwrap.dedent("""
    import sys, sqlml
    connection = sqlml.connect(sys.argv[1], progress=lambda message: None)
    for statement in sys.argv[2:]:
        connection.sql(statement)
    connection.close()
""")
SEX = "SELECT id, predicted_sex, predicted_sex_probs{} FROM {} ORDER BY id"
AB = "STRUCT(0.4 AS challenger_fraction, 'id' AS split_key)"


def plain(path, query: str):
    """``query``'s rows read by DuckDB in a process where sqlml cannot be imported (or its error)."""
    done = subprocess.run([sys.executable, "-c", PLAIN, str(path), query], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def release(path, *statements: str) -> None:
    """Run ``statements`` through sqlml in another process."""
    done = subprocess.run([sys.executable, "-c", RELEASE, str(path), *statements], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr


def served(path, query: str) -> list:
    """``query`` through sqlml in this process, as JSON gives rows back (lists)."""
    with sqlml.connect(str(path), progress=lambda message: None) as conn:
        return json.loads(json.dumps(conn.sql(query).fetchall()))


def view_text(path, view: str) -> str:
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute("SELECT sql FROM duckdb_views() WHERE view_name = ?", [view]).fetchall()[0][0]


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A database file: penguins with an id; model m (logistic, sex): version 1 on every island, version 2
    without Dream, deployed, version 1 aliased challenger; model trees (20 boosted trees, species); views
    over both: v (MODEL m), ab (A/B at 40 %), pinned (MODEL m VERSION 1), trees."""
    path = tmp_path_factory.mktemp("compiled_views") / "stored.duckdb"
    with sqlml.connect(str(path), progress=lambda message: None) as conn:
        datasets.load(conn.duckdb, "penguins")
        conn.sql("CREATE TABLE pen AS SELECT row_number() OVER () AS id, * FROM (SELECT * FROM penguins ORDER BY ALL)")
        for where in ("TRUE", "island <> 'Dream'"):
            conn.sql(f"""CREATE OR REPLACE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex'],
                         deploy = 'always') AS SELECT island, bill_length_mm, body_mass_g, sex FROM pen
                         WHERE sex IS NOT NULL AND {where}""")
        conn.sql("ALTER MODEL m VERSION 1 SET ALIAS challenger")
        conn.sql("""CREATE MODEL trees OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['species'],
                    max_iterations = 20, max_tree_depth = 4) AS
                    SELECT species, island, bill_length_mm, bill_depth_mm, flipper_length_mm, sex FROM pen""")
        conn.sql("CREATE VIEW v AS SELECT * FROM ML.PREDICT(MODEL m, TABLE pen)")
        conn.sql(f"CREATE VIEW ab AS SELECT * FROM ML.PREDICT(MODEL m, TABLE pen, {AB})")
        conn.sql("CREATE VIEW pinned AS SELECT * FROM ML.PREDICT(MODEL m VERSION 1, TABLE pen)")
        conn.sql("CREATE VIEW trees AS SELECT id, predicted_species, predicted_species_probs "
                 "FROM ML.PREDICT(MODEL trees, (SELECT * FROM pen WHERE id % 2 = 0)) AS p")
    return path


@pytest.fixture
def db(stored, tmp_path):
    """A copy of the stored database, for one test to change."""
    return shutil.copy(stored, tmp_path / "db.duckdb")


def test_the_views_are_plain_sql_a_client_without_sqlml_reads(db):
    for view in ("v", "ab", "pinned", "trees"):
        assert "sqlml_serve_" not in view_text(db, view)
    assert same_predictions(plain(db, SEX.format("", "v")), served(db, SEX.format("", "ML.PREDICT(MODEL m, TABLE pen)")))
    assert same_predictions(plain(db, SEX.format("", "pinned")),
                            served(db, SEX.format("", "ML.PREDICT(MODEL m VERSION 1, TABLE pen)")))
    trees = "SELECT id, predicted_species, predicted_species_probs FROM {} ORDER BY id"
    expected = served(db, trees.format("ML.PREDICT(MODEL trees, (SELECT * FROM pen WHERE id % 2 = 0))"))
    assert len(expected) == 172 and {r[1] for r in expected} == {"Adelie", "Chinstrap", "Gentoo"}
    assert same_predictions(plain(db, trees.format("trees")), expected, tolerance=1e-6)


def test_the_view_follows_deploy_rollback_threshold_and_the_kill_switch_done_by_another_process(db):
    predicted = SEX.format("", "ML.PREDICT(MODEL m, TABLE pen)")
    before = served(db, predicted)
    steps = ["ALTER MODEL m DEPLOY VERSION 1", "ALTER MODEL m ROLLBACK", "ALTER MODEL m SET OPTIONS (threshold = 0.3)",
             "ALTER MODEL m DISABLE", "ALTER MODEL m ENABLE"]
    seen = []
    for statement in steps:
        release(db, statement)
        expected = served(db, predicted)
        assert same_predictions(plain(db, SEX.format("", "v")), expected), statement
        seen.append(expected)
    deployed_1, rolled_back, lower, disabled, enabled = seen
    assert same_predictions(deployed_1, served(db, SEX.format("", "ML.PREDICT(MODEL m VERSION 1, TABLE pen)")))
    assert same_predictions(rolled_back, before) and not same_predictions(deployed_1, before)
    assert sum(r[1] == "male" for r in lower) > sum(r[1] == "male" for r in before)  # the threshold moved labels
    # The kill switch: version 2's baseline, computed here from its training rows (the majority and the prior).
    with duckdb.connect(str(db), read_only=True) as connection:
        ((male,),) = connection.execute("SELECT avg((sex = 'male')::INT) FROM pen WHERE sex IS NOT NULL "
                                        "AND island <> 'Dream'").fetchall()
    label = "male" if male > 0.5 else "female"
    assert all(r[1] == label and r[2] == [{"label": "female", "prob": pytest.approx(1 - male, abs=1e-12)},
                                          {"label": "male", "prob": pytest.approx(male, abs=1e-12)}] for r in disabled)
    assert same_predictions(enabled, lower)


def test_a_b_arms_of_the_view_are_ml_predicts(db):
    query = SEX.format(", model_version", "{}")
    predicted = query.format(f"ML.PREDICT(MODEL m, TABLE pen, {AB})")
    expected = served(db, predicted)
    assert same_predictions(plain(db, query.format("ab")), expected)
    # Each row's arm, from docs/release.md's hash of its key's text computed here: version 1 is the challenger.
    cut = 0.4 * 2**64
    assert {r[0]: r[3] for r in expected} == {r[0]: 1 if fmix64(fnv1a(str(r[0]))) < cut else 2 for r in expected}
    assert 0.3 < sum(r[3] == 1 for r in expected) / len(expected) < 0.5
    release(db, "ALTER MODEL m DEPLOY VERSION 1", "ALTER MODEL m VERSION 2 SET ALIAS challenger")
    swapped = served(db, predicted)
    assert {r[0]: r[3] for r in swapped} == {r[0]: 3 - r[3] for r in expected}  # the same arms, versions swapped
    assert same_predictions(plain(db, query.format("ab")), swapped)
    release(db, "ALTER MODEL m DISABLE")
    disabled = served(db, predicted)
    assert {r[3] for r in disabled} == {1} and len({json.dumps(r[1:3]) for r in disabled}) == 1  # the baseline
    assert same_predictions(plain(db, query.format("ab")), disabled)


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.999999, 1.0])
def test_the_arm_in_sql_is_the_one_docs_release_md_defines_for_keys_of_every_utf8_width(fraction):
    """sqlml.compile.arms in DuckDB against FNV-1a + fmix64 computed here, on keys of 1- to 4-byte characters."""
    keys = ["", "a", "e\u0301x", "ß", "€uro", "\U0001d11e", "🇫🇷", "\u07ff\u0800\uffff\U00010000"] + \
        [f"k{n}" for n in range(2000)]
    arm = challenger_arm(sqlglot.exp.column("k"), fraction).sql("duckdb")
    got = duckdb.sql(f"SELECT {arm} FROM (SELECT unnest(?) AS k, generate_subscripts(?, 1) AS n) ORDER BY n",
                     params=[keys, keys]).fetchall()
    assert [a for (a,) in got] == [fmix64(fnv1a(k)) < fraction * 2**64 or fraction == 1.0 for k in keys]


def test_an_edited_view_is_refused_by_sqlml_naming_it(db):
    text = view_text(db, "v")
    assert ">= 0.5e0" in text
    with duckdb.connect(str(db)) as connection:  # a plain client rewrites the decision threshold
        connection.execute(text.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1).replace(">= 0.5e0", ">= 0.01e0"))
    with sqlml.connect(str(db), progress=lambda message: None) as conn:
        with pytest.raises(ModelIntegrityError) as error:
            conn.sql("SELECT count(*) FROM v").fetchall()
        assert str(error.value) == (
            "View 'v' was modified outside sqlml: its text is not the one sqlml wrote (recorded, signed, in sqlml.views), "
            "so sqlml does not serve through it. Recreate it with CREATE OR REPLACE VIEW v AS ... ML.PREDICT(...), or "
            "drop it (DROP VIEW v).")
        assert conn.sql("SELECT count(*) FROM ab").fetchall() == [(344,)]  # the other views serve on
        assert len(conn.sql("SELECT * FROM ML.PREDICT(MODEL m, TABLE pen)").fetchall()) == 344
        conn.sql("CREATE OR REPLACE VIEW v AS SELECT * FROM ML.PREDICT(MODEL m, TABLE pen)")  # sqlml writes it again
        assert same_predictions(conn.sql(SEX.format("", "v")).fetchall(),
                                conn.sql(SEX.format("", "ML.PREDICT(MODEL m, TABLE pen)")).fetchall())


def test_an_edit_made_while_sqlml_is_attached_is_refused_before_the_view_is_read(db):
    with sqlml.connect(str(db), progress=lambda message: None) as conn:
        assert conn.sql("SELECT count(*) FROM pinned").fetchall() == [(344,)]
        stored_text = conn.duckdb.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'pinned'").fetchall()[0][0]
        conn.duckdb.execute(stored_text.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1))
        assert conn.sql("SELECT count(*) FROM pinned").fetchall() == [(344,)]  # the same text: nothing to refuse
        conn.duckdb.execute(stored_text.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1).replace(";", " LIMIT 3;"))
        with pytest.raises(ModelIntegrityError, match="View 'pinned' was modified outside sqlml: its text is not"):
            conn.sql("SELECT * FROM pinned").fetchall()


def test_a_forged_record_or_a_view_copied_back_from_an_earlier_state_is_refused(db):
    with duckdb.connect(str(db)) as connection:
        earlier = connection.execute("SELECT * FROM sqlml.views WHERE view_name = 'v'").fetchall()[0]
        text = connection.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'v'").fetchall()[0][0]
    release(db, "ALTER MODEL m DEPLOY VERSION 1")
    with duckdb.connect(str(db)) as connection:  # the view and its record as they were before the deploy
        connection.execute(text.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1))
        connection.execute("INSERT OR REPLACE INTO sqlml.views VALUES (?, ?, ?, ?, ?, ?)", list(earlier))
    with sqlml.connect(str(db), progress=lambda message: None) as conn:
        with pytest.raises(ModelIntegrityError, match="View 'v' was written for another serving state of model 'm' "
                                                      "than the one it serves now"):
            conn.sql("SELECT * FROM v").fetchall()
    assert same_predictions(plain(db, SEX.format("", "v")),  # a plain client cannot tell: it reads version 2
                            served(db, SEX.format("", "ML.PREDICT(MODEL m VERSION 2, TABLE pen)")))
    with duckdb.connect(str(db)) as connection:  # a record claiming a newer state, without the key
        connection.execute("UPDATE sqlml.views SET reflects = (SELECT reflects FROM sqlml.views WHERE view_name = 'ab') "
                           "WHERE view_name = 'v'")
    with sqlml.connect(str(db), progress=lambda message: None) as conn:
        with pytest.raises(ModelIntegrityError, match="View 'v' was modified outside sqlml: its record in sqlml.views "
                                                      "does not match its signature"):
            conn.sql("SELECT * FROM v").fetchall()


def test_a_model_that_does_not_compile_keeps_the_scoring_functions_view_until_one_that_does_is_deployed(db):
    big = """CREATE OR REPLACE MODEL big OPTIONS (model_type = 'dnn_classifier', input_label_cols = ['sex'],
             hidden_units = {}, max_iterations = 30, deploy = 'always')
             AS SELECT island, bill_length_mm, body_mass_g, sex FROM pen WHERE sex IS NOT NULL"""
    release(db, big.format("[250, 250]"),  # 5 × 250 + 250 × 250 + 250 × 2 weights and biases: over 50,000
            "CREATE VIEW wide AS SELECT * FROM ML.PREDICT(MODEL big, TABLE pen)")
    predicted = SEX.format("", "ML.PREDICT(MODEL big, TABLE pen)")
    assert "sqlml_serve_" in view_text(db, "wide")
    assert same_predictions(served(db, SEX.format("", "wide")), served(db, predicted))
    assert "sqlml_serve_" in plain(db, "SELECT count(*) FROM wide")["error"]  # no sqlml: no scoring function
    release(db, big.format("[4]"))  # version 2 compiles: the view becomes plain SQL
    assert "sqlml_serve_" not in view_text(db, "wide")
    assert same_predictions(plain(db, SEX.format("", "wide")), served(db, predicted), tolerance=1e-6)
    release(db, "ALTER MODEL big ROLLBACK")  # version 1 again: the scoring function's call again
    assert "sqlml_serve_" in view_text(db, "wide")
    assert same_predictions(served(db, SEX.format("", "wide")), served(db, predicted))
    release(db, "DROP MODEL big")
    with sqlml.connect(str(db), progress=lambda message: None) as conn:
        with pytest.raises(ModelNotFoundError, match="Model 'big' was dropped: view 'wide' over it cannot score"):
            conn.sql("SELECT count(*) FROM wide").fetchall()


def test_a_view_dropped_by_hand_loses_its_record_at_the_next_release(db):
    with duckdb.connect(str(db)) as connection:
        connection.execute("DROP VIEW pinned")
    release(db, "ALTER MODEL m DISABLE")
    with duckdb.connect(str(db), read_only=True) as connection:
        assert connection.execute("SELECT view_name FROM sqlml.views ORDER BY 1").fetchall() == [("ab",), ("trees",),
                                                                                                  ("v",)]
        assert connection.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = 'pinned'").fetchall() == [(0,)]


def test_the_example_runs_and_a_client_without_sqlml_reads_its_views(tmp_path):
    path = tmp_path / "penguins.duckdb"
    example = Path(__file__).parent.parent / "examples" / "compiled_view.sql"
    done = subprocess.run([sys.executable, "-m", "sqlml.cli", "run", str(example), "--dataset", "penguins", "--db", str(path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "same_as_version_1  344" in done.stdout  # the view follows the rollback to version 1
    query = "SELECT id, predicted_sex, predicted_sex_probs{} FROM {} ORDER BY id"
    assert same_predictions(plain(path, query.format("", "sex_scored")),
                            served(path, query.format("", "ML.PREDICT(MODEL sex, TABLE birds)")))
    ab = "STRUCT(0.3 AS challenger_fraction, 'id' AS split_key)"
    assert same_predictions(plain(path, query.format(", model_version", "sex_ab")),
                            served(path, query.format(", model_version", f"ML.PREDICT(MODEL sex, TABLE birds, {ab})")))
