"""The sqlml command line, driven in-process with click's CliRunner."""

import json
import os
import re
import subprocess
import sys
import time

import duckdb
import pytest
from click.testing import CliRunner

import sqlml
from sqlml import datasets
from sqlml.cli import main

TRAIN = ("CREATE MODEL m OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g']) AS "
         "SELECT * EXCLUDE (year) FROM penguins WHERE body_mass_g IS NOT NULL;\n")


@pytest.fixture
def runner():
    return CliRunner()


def run(runner, *args, stdin=None):
    result = runner.invoke(main, list(args), input=stdin)
    assert "Traceback" not in result.output + (result.stderr or "")
    return result


def test_penguins_example_runs_and_prints_metrics(runner):
    result = run(runner, "run", "examples/penguins.sql", "--dataset", "penguins", "--format", "json")
    assert result.exit_code == 0, result.output
    evaluation = json.loads(result.stdout.splitlines()[0])
    assert evaluation["mean_absolute_error"] == pytest.approx(227.01, rel=0.01)
    assert "Model 'penguins_model' version 1 stored." in result.stderr


def test_stdin_csv_and_persistent_database(runner, tmp_path):
    db = str(tmp_path / "cli.duckdb")
    assert run(runner, "run", "-", "--db", db, "--dataset", "penguins", stdin=TRAIN).exit_code == 0
    result = run(runner, "run", "-", "--db", db, "--format", "csv",
                 stdin="SELECT round(r2_score, 4) AS r2 FROM ML.EVALUATE(MODEL m);")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["r2", "0.8724"]
    listing = run(runner, "models", "--db", db, "--format", "json")
    assert json.loads(listing.stdout)["name"] == "m"


def test_nested_values_as_json_in_csv(runner):
    result = run(runner, "run", "-", "--dataset", "penguins", "--format", "csv", stdin=
                 "CREATE MODEL c OPTIONS (model_type = 'logistic_reg', input_label_cols = ['species']) AS "
                 "SELECT species, bill_length_mm, flipper_length_mm FROM penguins;"
                 "SELECT predicted_species_probs FROM ML.PREDICT(MODEL c, (SELECT * FROM penguins LIMIT 1));")
    assert result.exit_code == 0, result.output
    probs = json.loads(result.stdout.splitlines()[1].replace('""', '"').strip('"'))
    assert [p["label"] for p in probs] == ["Adelie", "Chinstrap", "Gentoo"]


@pytest.mark.parametrize("sql, message", [
    ("SELECT * FROM ML.PREDICT(MODEL m, TABLE t", "Error: Expecting ) (line 1, column 41)"),
    ("SELECT 'unclosed", "Error: Cannot read the SQL: a string, quoted name or comment is not closed"),
    ("SELECT * FROM ML.EVALUATE(MODEL nope);", "Error: Model 'nope' does not exist."),
    ("SELECT * FROM no_such_table;", "Error: Catalog Error: Table with name no_such_table does not exist"),
    ("CREATE MODEL m OPTIONS (model_type = 'linear_regression') AS SELECT 1 AS label;", "Did you mean 'linear_reg'?"),
])
def test_user_errors_exit_1_without_traceback(runner, sql, message):
    result = run(runner, "run", "-", stdin=sql)
    assert result.exit_code == 1
    assert message in result.stderr


def test_statements_with_nothing_to_show_print_nothing_and_sqlglot_stays_quiet(runner):
    """DuckDB answers SET or CREATE TYPE with an empty 'Success'/'Count' relation, and sqlglot warns when
    it keeps a statement it does not know as text: neither is worth a line of the analyst's output."""
    result = run(runner, "run", "-", stdin="CREATE TYPE mood AS ENUM ('sad', 'ok'); SET threads = 2; "
                                           "CREATE TABLE t AS SELECT unnest(['ok', 'sad'])::mood AS m; SELECT m FROM t;")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("┌") == 1  # one table: the SELECT's
    assert "│ ok      │\n│ sad     │" in result.stdout and "Success" not in result.stdout and "Count" not in result.stdout
    assert "unsupported syntax" not in result.stderr


def test_an_error_in_a_script_names_the_line_its_statement_starts_on(runner):
    """DuckDB's own "LINE 1" counts from the failing statement; the script's line is what the analyst needs."""
    result = run(runner, "run", "-", stdin="SELECT 1 AS a;\n\n-- the next one fails\nSELECT *\nFROM nope;\nSELECT 2;")
    assert result.exit_code == 1
    assert "Error: Statement at line 4: Catalog Error: Table with name nope does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2(runner):
    assert run(runner, "run").exit_code == 2
    assert run(runner, "run", "missing.sql").exit_code == 2
    result = run(runner, "run", "-", "--dataset", "mars")
    assert result.exit_code == 2 and "Invalid value for '--dataset'" in result.stderr


def test_database_busy(runner, tmp_path):
    import subprocess
    import sys
    import textwrap
    db = tmp_path / "busy.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time, duckdb
        c = duckdb.connect({str(db)!r}); print("ready", flush=True); time.sleep(30)""")],
        stdout=subprocess.PIPE, text=True)
    try:
        holder.stdout.readline()
        result = run(runner, "run", "-", "--db", str(db), stdin="SELECT 1;")
        assert result.exit_code == 1 and "Error: Database busy" in result.stderr
    finally:
        holder.kill()
        holder.wait()


def test_ddl_prints_nothing(runner):
    result = run(runner, "run", "-", "--format", "csv", stdin="CREATE TABLE t AS SELECT 1 AS a; SELECT 42 AS x;")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["x", "42"]


def test_a_model_that_does_not_beat_its_baseline_is_flagged(runner):
    """The relation between x and the label is reversed on the evaluation rows (a CUSTOM split): the
    model ranks every evaluation row exactly wrong, roc_auc 0, far below the class prior's 0.5."""
    sql = ("CREATE TABLE t AS SELECT x, is_eval, CASE WHEN is_eval THEN x <= 0.5 ELSE x > 0.5 END AS label "
           "FROM (SELECT (range * 37 % 1000) / 1000.0 AS x, range % 5 = 0 AS is_eval FROM range(3000));"
           "CREATE MODEL m OPTIONS (model_type = 'logistic_reg', l2_reg = 1.0, data_split_method = 'CUSTOM', "
           "data_split_col = 'is_eval') AS SELECT * FROM t;"
           "SELECT roc_auc, baseline_roc_auc, primary_metric, beats_baseline FROM ML.EVALUATE(MODEL m);")
    result = run(runner, "run", "-", "--format", "json", stdin=sql)
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row == {"roc_auc": 0.0, "baseline_roc_auc": 0.5, "primary_metric": "roc_auc", "beats_baseline": False}
    assert ("Warning: the model does NOT beat its trivial baseline on roc_auc (1 of 1 evaluation rows). "
            "See docs/evaluation.md.") in result.stderr
    good = run(runner, "run", "examples/penguins.sql", "--dataset", "penguins", "--format", "json")
    assert good.exit_code == 0 and json.loads(good.stdout.splitlines()[0])["beats_baseline"] is True
    assert "does NOT beat" not in good.stderr


@pytest.fixture(scope="module")
def flights_db(tmp_path_factory):
    """A database file with EWR's flights of the 1st and 15th of each month and a delay classifier."""
    path = str(tmp_path_factory.mktemp("card") / "flights.duckdb")
    with sqlml.connect(path, progress=lambda message: None) as conn:
        datasets.load(conn.duckdb, "flights", "all_flights")
        conn.sql("""CREATE TABLE ewr AS SELECT make_date(year, month, day) AS flight_date, dep_delay, distance, carrier,
                    arr_delay > 15 AS is_late FROM all_flights
                    WHERE arr_delay IS NOT NULL AND day IN (1, 15) AND origin = 'EWR';
                    CREATE MODEL delay OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late']) AS
                    SELECT * EXCLUDE (flight_date) FROM ewr""")
    return path


def test_card_evaluates_over_the_time_windows_asked_for(runner, flights_db, tmp_path):
    out = tmp_path / "card.html"
    result = run(runner, "card", "delay", "--db", flights_db, "-o", str(out), "--data", "SELECT * FROM ewr",
                 "--time-column", "flight_date", "--time-window", "quarter")
    assert result.exit_code == 0, result.stderr
    monitoring = re.search(r'<section id="monitoring">(.*?)</section>', out.read_text(), re.DOTALL).group(1)
    over_time = monitoring.split("<h3>Evaluation over time")[1]
    rows = re.findall(r'<tr class="[^"]*"><td class="text">([^<]*)</td><td>([^<]*)</td>', over_time)
    with duckdb.connect(flights_db, read_only=True) as db:
        counts = db.sql("SELECT date_trunc('quarter', flight_date)::DATE, count(*) FROM ewr GROUP BY 1 ORDER BY 1").fetchall()
    assert len(counts) == 4
    assert rows == [(str(start), f"{n:,}") for start, n in counts]


def test_card_time_window_without_a_time_column_is_a_usage_error(runner, flights_db):
    result = run(runner, "card", "delay", "--db", flights_db, "--data", "SELECT * FROM ewr", "--time-window", "month")
    assert result.exit_code == 2
    assert "--time-window needs --time-column: the DATE or TIMESTAMP column to window by." in result.stderr


def test_card_time_column_that_is_not_a_time_names_its_type(runner, flights_db, tmp_path):
    result = run(runner, "card", "delay", "--db", flights_db, "-o", str(tmp_path / "c.html"), "--data",
                 "SELECT * FROM ewr", "--time-column", "distance")
    assert result.exit_code == 1
    assert "time_column 'distance' is int64, not a DATE or TIMESTAMP; cast it in the input query" in result.stderr


@pytest.mark.parametrize("command", [["models"], ["card", "m"]])
def test_models_and_card_say_no_database_was_given(runner, command):
    result = run(runner, *command)
    assert result.exit_code == 2
    assert f"No database given: name the file whose models to read, e.g. sqlml {' '.join(command)} --db " \
           "warehouse.duckdb." in result.stderr
    assert "No models yet" not in result.output


@pytest.mark.parametrize("command", [["models"], ["card", "m"]])
def test_models_and_card_name_a_missing_database_file_in_cli_terms(runner, tmp_path, command):
    missing = tmp_path / "missing.duckdb"
    result = run(runner, *command, "--db", str(missing))
    assert result.exit_code == 1
    assert f"Error: No database file at '{missing}'" in result.stderr and "`sqlml run FILE --db PATH`" in result.stderr
    assert "create=True" not in result.output and not missing.exists()


@pytest.mark.parametrize("module", ["sqlml", "sqlml.cli"])
def test_python_dash_m_runs_the_command_line(module, tmp_path):
    script = tmp_path / "one.sql"
    script.write_text("SELECT 6 * 7 AS answer;")
    done = subprocess.run([sys.executable, "-m", module, "run", str(script)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert done.returncode == 0 and "42" in done.stdout, done.stderr


def test_importing_the_command_line_loads_no_engine():
    """`sqlml --help`, `sqlml key create` … start without DuckDB or pyspark: each loads when a command uses it."""
    code = "import sys, sqlml.cli; print(sorted(m for m in ('duckdb', 'pyspark') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
