"""Issue 11, the user's side: results raise sqlml errors when they are read, views name missing feature
columns, table names never reach sqlml's own variables but do reach the caller's data frames, storage
faults are clear and lose nothing, and the first day's commands show what they promise."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LinearRegression

import sqlml
from sqlml import datasets
from sqlml.cli import main
from sqlml.dbt import macro_sql
from sqlml.errors import (
    DatabaseBusyError,
    DataError,
    ModelNotFoundError,
    SecretKeyError,
    SqlmlError,
    StorageError,
)

LINEAR = "CREATE MODEL m OPTIONS (model_type = 'linear_reg', input_label_cols = ['y']) AS SELECT x, z, y FROM t"
POINTS = "CREATE TABLE t AS SELECT range::DOUBLE AS x, (range % 7)::DOUBLE AS z, 3 * range - 2 * (range % 7) + 1 AS y FROM range(60)"


@pytest.fixture
def model(conn):
    conn.sql(POINTS)
    conn.sql(LINEAR)
    return conn


def expected_predictions(conn, sql: str) -> np.ndarray:
    """scikit-learn's least squares on the training rows, applied to ``sql``'s rows (the model standardizes,
    which leaves an unpenalized least-squares fit's predictions unchanged)."""
    train = conn.duckdb.sql("SELECT x, z, y FROM t").df()
    fitted = LinearRegression().fit(train[["x", "z"]], train["y"])
    return fitted.predict(conn.duckdb.sql(sql).df()[["x", "z"]])


# 1. Results are DuckDB relations whose errors are sqlml errors -------------------------------------------

FETCHES = {"fetchall": lambda r: r.fetchall(), "df": lambda r: r.df(), "arrow": lambda r: r.arrow(),
           "to_arrow_table": lambda r: r.to_arrow_table(), "show": lambda r: r.show(), "str": str, "repr": repr,
           "chained relation": lambda r: r.filter("x > 3").order("x").limit(2).fetchall()}


@pytest.mark.parametrize("fetch", FETCHES.values(), ids=FETCHES.keys())
def test_reading_a_view_over_a_dropped_model_raises_the_scoring_functions_own_error(model, fetch):
    model.sql("CREATE VIEW v AS SELECT * FROM ML.PREDICT(MODEL m, TABLE t)")
    model.sql("DROP MODEL m")
    result = model.sql("SELECT * FROM v")  # DuckDB runs it when it is read
    with pytest.raises(ModelNotFoundError) as error:
        fetch(result)
    assert str(error.value) == "Model 'm' was dropped: view 'v' over it cannot score. Recreate the view over a stored model."


def test_a_failure_while_reading_that_is_not_sqlmls_is_still_a_sqlml_error(model):
    model.sql("CREATE VIEW v AS SELECT * FROM ML.PREDICT(MODEL m, TABLE t)")
    model.sql("ALTER TABLE t ALTER z TYPE VARCHAR")
    model.sql("UPDATE t SET z = 'seven' WHERE x = 5")
    with pytest.raises(SqlmlError, match="Could not convert string 'seven' to DOUBLE") as error:
        model.sql("SELECT * FROM v").fetchall()
    assert not isinstance(error.value, duckdb.Error)


def test_results_still_work_as_relations(model):
    result = model.sql("SELECT predicted_y, x, z FROM ML.PREDICT(MODEL m, TABLE t)")
    assert result.columns == ["predicted_y", "x", "z"] and result.shape == (60, 3) and len(result) == 60
    np.testing.assert_allclose(result.df()["predicted_y"], expected_predictions(model, "SELECT * FROM t"), rtol=1e-9)
    further = result.filter("x >= 58").order("x").project("predicted_y")
    np.testing.assert_allclose([v for (v,) in further.fetchall()],
                               expected_predictions(model, "SELECT * FROM t WHERE x >= 58 ORDER BY x"), rtol=1e-9)
    assert pa.table(result).num_rows == 60  # the Arrow stream interface passes through
    joined = result.join(model.sql("SELECT 59.0 AS x"), "x").fetchall()
    assert len(joined) == 1 and joined[0][1] == 59.0


# 2. Missing feature columns in views and dbt's sqlml.predict --------------------------------------------

MISSING_Z = "The input is missing feature column(s) the model was trained on: z."


def test_a_view_over_input_without_a_feature_column_is_refused_when_created(model):
    with pytest.raises(DataError) as error:
        model.sql("CREATE VIEW v AS SELECT * FROM ML.PREDICT(MODEL m, (SELECT x, y FROM t))")
    assert str(error.value) == MISSING_Z
    assert model.duckdb.sql("SELECT count(*) FROM duckdb_views() WHERE view_name = 'v'").fetchall() == [(0,)]


def test_a_view_whose_table_lost_a_feature_column_names_the_column_and_the_view(model):
    model.sql("CREATE VIEW v AS SELECT * FROM ML.PREDICT(MODEL m, TABLE t)")
    model.sql("ALTER TABLE t RENAME COLUMN z TO zz")
    with pytest.raises(DataError) as error:
        model.sql("SELECT * FROM v").fetchall()
    assert str(error.value) == (
        "The input is missing feature column(s) the model was trained on: z (read by view 'v' through ML.PREDICT; "
        "the table under it changed after the view was created). Restore the column, or recreate the view over "
        "data that has it.")
    model.sql("ALTER TABLE t RENAME COLUMN zz TO z")  # nothing was lost: the view scores again
    scored = model.sql("SELECT predicted_y FROM v ORDER BY x").fetchall()
    np.testing.assert_allclose([v for (v,) in scored], expected_predictions(model, "SELECT * FROM t ORDER BY x"), rtol=1e-9)


def test_a_transform_models_view_names_the_column_its_transform_reads(conn):
    conn.sql(POINTS)
    conn.sql("CREATE MODEL m TRANSFORM (ML.STANDARD_SCALER(x) OVER () AS x, z * 2 AS z2, y) "
             "OPTIONS (model_type = 'linear_reg', input_label_cols = ['y']) AS SELECT x, z, y FROM t")
    with pytest.raises(DataError, match=r"^The input is missing column\(s\) the model's TRANSFORM reads: z\.$"):
        conn.sql("CREATE VIEW v AS SELECT * FROM ML.PREDICT(MODEL m, (SELECT x FROM t))")


def test_dbt_predict_without_a_feature_column_gives_sqlmls_message(model):
    cursor = model.duckdb.cursor()
    try:
        with pytest.raises(DataError) as error:
            macro_sql.compile_sql(cursor, {"function": "PREDICT", "model": "m", "input": "SELECT x, y FROM t"})
        assert str(error.value) == MISSING_Z
        compiled = macro_sql.compile_sql(cursor, {"function": "PREDICT", "model": "m", "input": "SELECT * FROM t"})
        scored = cursor.sql(f"SELECT predicted_y FROM {compiled} ORDER BY x").fetchall()
        np.testing.assert_allclose([v for (v,) in scored], expected_predictions(model, "SELECT * FROM t ORDER BY x"),
                                   rtol=1e-9)
    finally:
        cursor.close()


# 3. Table names: the caller's data frames, never sqlml's variables --------------------------------------

@pytest.mark.parametrize("name", ["t", "pa", "exp", "duckdb", "self"])
def test_a_missing_table_is_reported_missing_whatever_sqlml_calls_its_variables(conn, name):
    with pytest.raises(SqlmlError, match=f"Table with name {name} does not exist") as error:
        conn.sql(f"SELECT * FROM {name}")
    assert "module" not in str(error.value) and "Python Object" not in str(error.value)
    with pytest.raises(SqlmlError, match=f"Table with name {name} does not exist"):
        conn.sql(f"CREATE MODEL m OPTIONS (model_type = 'linear_reg') AS SELECT * FROM {name}")


def test_the_callers_data_frames_are_tables_by_name(conn):
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"x": rng.normal(size=80), "z": rng.normal(size=80)})
    df["y"] = 2 * df["x"] - df["z"] + rng.normal(scale=0.1, size=80)
    arrow_rows = pa.table({"x": [0.5, -1.0], "z": [2.0, 0.0]})
    assert conn.sql("SELECT avg(y) AS m FROM df").fetchall()[0][0] == pytest.approx(df["y"].mean(), rel=1e-12)
    conn.sql("CREATE MODEL m OPTIONS (model_type = 'linear_reg', input_label_cols = ['y']) AS SELECT * FROM df")
    scored = conn.sql("SELECT predicted_y FROM ML.PREDICT(MODEL m, TABLE arrow_rows)").fetchall()
    expected = LinearRegression().fit(df[["x", "z"]], df["y"]).predict(arrow_rows.to_pandas())
    np.testing.assert_allclose([v for (v,) in scored], expected, rtol=1e-9)
    late, smallest = conn.sql("SELECT x FROM df ORDER BY x LIMIT 3"), sorted(df["x"])[:3]
    del df  # the result was read while the frame was registered: still readable
    assert [v for (v,) in late.fetchall()] == smallest
    assert conn.duckdb.sql("SELECT count(*) FROM duckdb_views() WHERE view_name IN ('df', 'arrow_rows')").fetchall() == [(0,)]


def test_a_table_of_the_database_wins_over_a_data_frame_of_the_same_name(conn):
    conn.sql("CREATE TABLE df AS SELECT 42 AS answer")
    df = pd.DataFrame({"answer": [1, 2, 3]})
    assert conn.sql("SELECT * FROM df").fetchall() == [(42,)] and len(df) == 3


def test_a_variable_that_is_no_data_frame_is_not_a_table(conn):
    rows = [1, 2, 3]
    with pytest.raises(SqlmlError, match="Table with name rows does not exist") as error:
        conn.sql("SELECT * FROM rows")
    assert "list" not in str(error.value) and rows


def test_the_cli_reports_a_missing_table_as_missing(tmp_path):
    result = CliRunner().invoke(main, ["run", "-"], input="SELECT * FROM t;")
    assert result.exit_code == 1
    assert "Error: Catalog Error: Table with name t does not exist" in result.stderr and "module" not in result.stderr


# 4. Environment faults -----------------------------------------------------------------------------------

ROOT = os.geteuid() == 0


@contextlib.contextmanager
def tmpfs(path, size: str):
    path.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"cannot mount a tmpfs here ({e}); needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory) -> None:
    """Write a file until the file system is full."""
    with open(directory / "filler", "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()


@pytest.mark.skipif(not ROOT, reason="mounting a small tmpfs needs root")
def test_a_full_disk_at_commit_is_a_storage_error_and_the_earlier_version_is_intact(tmp_path):
    with tmpfs(tmp_path / "small", "4m") as disk:
        path = str(disk / "full.duckdb")
        with sqlml.connect(path, progress=lambda m: None) as conn:
            conn.sql(POINTS)
            conn.sql(LINEAR)
            conn.sql("CHECKPOINT")
            fill(disk)
            with pytest.raises(StorageError) as error:
                conn.sql(LINEAR.replace("CREATE", "CREATE OR REPLACE"))
            assert str(error.value).startswith("The disk is full (TransactionContext Error: Failed to commit: ")
            assert "No space left on device" in str(error.value) and "what was stored before is intact" in str(error.value)
        os.remove(disk / "filler")
        with sqlml.connect(path, read_only=True, progress=lambda m: None) as conn:
            assert [(r["name"], r["version"], r["status"]) for r in conn.models().to_arrow_table().to_pylist()] == [("m", 1, "ok")]
            (predicted,), = conn.sql("SELECT predicted_y FROM ML.PREDICT(MODEL m, (SELECT 4.0 AS x, 3.0 AS z))").fetchall()
            assert predicted == pytest.approx(3 * 4 - 2 * 3 + 1, abs=1e-6)


@pytest.mark.skipif(not ROOT, reason="mounting a small tmpfs needs root")
def test_a_full_disk_at_key_creation_is_a_key_error_and_stores_nothing(tmp_path, monkeypatch):
    with tmpfs(tmp_path / "small", "1m") as disk:
        monkeypatch.delenv("SQLML_SECRET_KEY", raising=False)
        monkeypatch.setenv("SQLML_KEY_FILE", str(disk / "keys" / "secret.key"))
        (disk / "keys").mkdir()
        fill(disk)
        with sqlml.connect(progress=lambda m: None) as conn:
            conn.sql(POINTS)
            with pytest.raises(SecretKeyError) as error:
                conn.sql(LINEAR)
            assert str(error.value) == f"Cannot write the secret key file {disk / 'keys' / 'secret.key'}: No space left on device."
            assert not (disk / "keys" / "secret.key").exists()
            assert conn.models().fetchall() == []


@contextlib.contextmanager
def unprivileged():
    """Run as an unprivileged user for a while (root passes every permission check); not root, as we are."""
    if not ROOT:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.mark.parametrize("locked", ["file", "directory"])
def test_a_database_without_write_permission_is_a_storage_error_and_keeps_its_versions(locked):
    top = pathlib.Path(tempfile.mkdtemp())  # not tmp_path: pytest's folders are private to their owner
    os.chmod(top, 0o755)
    folder = top / "db"
    folder.mkdir()
    path = str(folder / "locked.duckdb")
    with sqlml.connect(path, progress=lambda m: None) as conn:
        conn.sql(POINTS)
        conn.sql(LINEAR)
    os.chmod(path, 0o444 if locked == "file" else 0o666)
    os.chmod(folder, 0o555 if locked == "directory" else 0o777)
    try:
        with unprivileged(), pytest.raises(StorageError) as error, \
                sqlml.connect(path, progress=lambda m: None) as conn:  # the file: refused here; the folder: at commit
            conn.sql("CREATE OR REPLACE MODEL m OPTIONS (model_type = 'linear_reg', input_label_cols = ['y']) "
                     "AS SELECT * FROM t")
        refused = {"file": f'IO Error: Cannot open file "{path}"',
                   "directory": f'TransactionContext Error: Failed to commit: Cannot open file "{path}.wal"'}[locked]
        assert str(error.value) == (f"No permission ({refused}: Permission denied). A database is written with a '.wal' "
                                    "file beside it: make both and their folder writable, or open the database read-only "
                                    "(sqlml.connect(path, read_only=True)) to read its models and tables.")
        with unprivileged(), sqlml.connect(path, read_only=True, progress=lambda m: None) as conn:
            assert conn.sql("SELECT name, version FROM sqlml.models").fetchall() == [("m", 1)]  # intact, and readable
    finally:
        os.chmod(folder, 0o755)
    with sqlml.connect(path, read_only=True, progress=lambda m: None) as conn:
        assert conn.sql("SELECT name, version FROM sqlml.models").fetchall() == [("m", 1)]
    shutil.rmtree(top)


def test_busy_says_that_read_only_is_refused_too_and_what_to_do(tmp_path):
    path = str(tmp_path / "busy.duckdb")
    script = f"import time, duckdb\nc = duckdb.connect({path!r})\nprint('ready', flush=True)\ntime.sleep(30)"
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        holder.stdout.readline()
        for read_only in (False, True):
            with pytest.raises(DatabaseBusyError) as error:
                sqlml.connect(path, read_only=read_only)
            assert str(error.value) == (
                f"Database busy: another process has '{path}' open for writing. While it does, DuckDB lets no other "
                "process open the file, not even read-only (several processes may read it only when none writes). "
                "Close the other program (a notebook, a dbt run, another sqlml run) or wait until it ends, then retry.")
    finally:
        holder.kill()
        holder.wait()


# 5. The first day ----------------------------------------------------------------------------------------

def vertical(text: str) -> dict[str, str]:
    return dict(line.split(None, 1) for line in text.strip().splitlines())


def test_the_quick_start_prints_every_evaluation_column_with_r2(tmp_path):
    runner = CliRunner()
    table = runner.invoke(main, ["run", "examples/penguins.sql", "--dataset", "penguins"])
    as_json = runner.invoke(main, ["run", "examples/penguins.sql", "--dataset", "penguins", "--format", "json"])
    assert table.exit_code == 0 and as_json.exit_code == 0, table.output
    evaluation = json.loads(as_json.stdout.splitlines()[0])
    printed = vertical(table.stdout.split("\n\n")[0])
    assert list(printed) == list(evaluation) and len(printed) == 27
    assert float(printed["r2_score"]) == evaluation["r2_score"] and round(evaluation["r2_score"], 2) == 0.87
    assert round(float(printed["mean_absolute_error"])) == 227 and printed["beats_baseline"] == "true"
    with open("README.md", encoding="utf-8") as f:
        readme = f.read()
    shown = vertical("\n".join(line for line in readme.split("prints `ML.EVALUATE`", 1)[1].split("```\n", 2)[1]
                                .splitlines() if line != "…"))
    assert len(shown) > 5 and all(printed[name] == value or float(printed[name]) == pytest.approx(float(value), rel=1e-9)
                                  for name, value in shown.items())  # the README shows what is printed


def test_a_wide_result_of_several_rows_shows_every_column(conn):
    columns = ", ".join(f"range * {i} AS a_rather_long_column_name_{i}" for i in range(30))
    result = CliRunner().invoke(main, ["run", "-"], input=f"SELECT {columns} FROM range(3);")
    assert result.exit_code == 0
    assert all(f"a_rather_long_column_name_{i} " in result.stdout for i in range(30)) and "…" not in result.stdout
    last_row = [line for line in result.stdout.splitlines() if line.startswith("│")][-1]
    assert [int(v) for v in last_row.strip("│ ").split("│")] == [2 * i for i in range(30)]


def test_connect_with_create_false_refuses_a_missing_file(tmp_path):
    path = tmp_path / "typo.duckdb"
    with pytest.raises(SqlmlError, match=f"^No database file at '{path}'"):
        sqlml.connect(str(path), create=False)
    assert not path.exists()
    sqlml.connect(str(path)).close()
    with sqlml.connect(str(path), create=False) as conn:
        assert conn.sql("SELECT 1").fetchall() == [(1,)]


def test_the_cli_says_when_it_creates_a_database_and_lists_no_models_of_a_missing_one(tmp_path):
    runner, path = CliRunner(), tmp_path / "new.duckdb"
    listing = runner.invoke(main, ["models", "--db", str(path)])
    assert listing.exit_code == 1 and f"Error: No database file at '{path}'" in listing.stderr and not path.exists()
    first = runner.invoke(main, ["run", "-", "--db", str(path)], input="CREATE TABLE a AS SELECT 1 AS x;")
    assert first.exit_code == 0 and first.stderr == f"Creating new database {path} (no file at --db {path} yet).\n"
    again = runner.invoke(main, ["run", "-", "--db", str(path), "--format", "csv"], input="SELECT x FROM a;")
    assert again.exit_code == 0 and again.stderr == "" and again.stdout == "x\n1\n"


def test_datasets_load_takes_the_connection_sqlml_connect_returns(conn):
    import palmerpenguins
    assert datasets.load(conn, "penguins") == "penguins"
    expected = palmerpenguins.load_penguins()
    assert conn.sql("SELECT count(*), avg(body_mass_g) FROM penguins").fetchall() == [
        (len(expected), pytest.approx(expected["body_mass_g"].mean(), rel=1e-12))]
    assert datasets.load(conn.duckdb, "iris", "flowers") == "flowers"
    assert conn.sql("SELECT count(*) FROM flowers").fetchall() == [(150,)]
