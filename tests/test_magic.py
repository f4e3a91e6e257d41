"""The Jupyter magic, run inside a real IPython InteractiveShell; bound parameters; model objects."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import numpy as np
import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from sklearn.metrics import roc_auc_score

import sqlml

PENGUINS = "SELECT *, sex = 'male' AS male FROM penguins WHERE sex IS NOT NULL"
FEATURES = "bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, island"


@pytest.fixture
def shell():
    """A fresh IPython shell with the extension loaded."""
    InteractiveShell.clear_instance()
    ipython = InteractiveShell.instance()
    assert ipython.run_cell("%load_ext sqlml").success
    yield ipython
    for conn in ipython.magics_manager.registry["SqlmlMagics"].databases.values():
        conn.close()
    InteractiveShell.clear_instance()


def cell(shell, source: str):
    result = shell.run_cell(source)
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


def test_cell_result_is_the_sql_dataframe(shell, tmp_path):
    db = str(tmp_path / "w.duckdb")
    with sqlml.connect(db, progress=lambda m: None) as conn:
        sqlml.datasets.load(conn.duckdb, "penguins")
        expected = conn.sql("SELECT species, count(*) AS n FROM penguins GROUP BY species ORDER BY species").df()
    frame = cell(shell, f"%%sqlml --db {db} --out counts\n"
                        "SELECT 1 AS one;\nSELECT species, count(*) AS n FROM penguins GROUP BY species ORDER BY species")
    pd.testing.assert_frame_equal(frame, expected)
    pd.testing.assert_frame_equal(shell.user_ns["counts"], expected)
    # the next cell runs on the same connection without --db; a line magic too
    assert cell(shell, "%sqlml SELECT count(*) AS n FROM penguins").n[0] == 344
    magics = shell.magics_manager.registry["SqlmlMagics"]
    cell(shell, f"%sqlml --db {db} SELECT 1")
    assert len(magics.databases) == 1  # one connection per database for the kernel


def test_training_and_prediction_in_cells_match_plain_sql(shell):
    cell(shell, "%sqlml --db :memory: SELECT 1")
    conn = shell.magics_manager.registry["SqlmlMagics"].current
    sqlml.datasets.load(conn.duckdb, "penguins")
    assert cell(shell, f"""%%sqlml
        CREATE MODEL sexes OPTIONS (model_type = 'logistic_reg', input_label_cols = ['male'])
        AS SELECT {FEATURES}, male FROM ({PENGUINS})""") is None
    shell.user_ns["island"] = "Dream"
    frame = cell(shell, f"%%sqlml\nSELECT male, predicted_male_probs[2].prob AS p FROM ML.PREDICT(MODEL sexes, "
                        f"({PENGUINS} AND island = $island))")
    plain = conn.sql(f"SELECT male, predicted_male_probs[2].prob AS p FROM ML.PREDICT(MODEL sexes, "
                     f"({PENGUINS} AND island = 'Dream'))").df()
    pd.testing.assert_frame_equal(frame, plain)
    evaluation = cell(shell, f"%sqlml SELECT roc_auc FROM ML.EVALUATE(MODEL sexes, ({PENGUINS} AND island = $island))")
    assert evaluation.roc_auc[0] == pytest.approx(roc_auc_score(plain.male, plain.p), abs=1e-12)


def test_notebook_dataframes_are_found_by_name(shell):
    shell.user_ns["frame"] = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    assert cell(shell, "%sqlml SELECT sum(x) AS s FROM frame").s[0] == 6.0


def test_bound_values_cannot_inject_sql(shell):
    cell(shell, "%sqlml CREATE TABLE secrets AS SELECT 'kept' AS v")
    shell.user_ns["who"] = "x' OR 1=1; DROP TABLE secrets; --"
    assert len(cell(shell, "%sqlml SELECT * FROM secrets WHERE v = $who")) == 0
    assert cell(shell, "%sqlml SELECT $who AS echoed").echoed[0] == shell.user_ns["who"]
    assert cell(shell, "%sqlml SELECT v FROM secrets").v[0] == "kept"


def test_parameters_through_the_python_api(conn):
    conn.sql("CREATE TABLE secrets AS SELECT 'kept' AS v")
    hostile = "'); DROP TABLE secrets; --"
    assert conn.sql("SELECT $v AS v", {"v": hostile}).fetchall() == [(hostile,)]
    assert conn.sql("SELECT count(*) FROM secrets WHERE v = ? OR v = ?", ["kept", hostile]).fetchall() == [(1,)]
    with pytest.raises(sqlml.SqlmlError, match=r"No value given for parameter\(s\) \$w"):
        conn.sql("SELECT $v, $w", {"v": 1})
    with pytest.raises(sqlml.SqlmlError, match=r"has 2 '\?' parameter\(s\) but 1 value"):
        conn.sql("SELECT ?, ?", [1])
    assert conn.sql("SELECT v FROM secrets").fetchall() == [("kept",)]


def test_parameters_reach_an_ml_function_input(penguins):
    penguins.sql(f"""CREATE MODEL sexes OPTIONS (model_type = 'logistic_reg', input_label_cols = ['male'])
                     AS SELECT {FEATURES}, male FROM ({PENGUINS})""")
    bound = penguins.sql(f"SELECT count(*) FROM ML.PREDICT(MODEL sexes, ({PENGUINS} AND body_mass_g > $m)) "
                         "WHERE predicted_male = $p", {"m": 4000, "p": True}).fetchall()
    written = penguins.sql(f"SELECT count(*) FROM ML.PREDICT(MODEL sexes, ({PENGUINS} AND body_mass_g > 4000)) "
                           "WHERE predicted_male").fetchall()
    assert bound == written and written[0][0] > 0


def test_user_connections_sqlml_and_plain_duckdb(shell):
    plain = duckdb.connect()
    plain.execute("CREATE TABLE t AS SELECT 41 AS v")
    shell.user_ns["con"] = plain
    assert cell(shell, "%sqlml --connection con SELECT v + 1 AS v FROM t").v[0] == 42
    own = sqlml.connect(progress=lambda m: None)
    own.sql("CREATE TABLE t AS SELECT 7 AS v")
    shell.user_ns["mine"] = own
    assert cell(shell, "%sqlml --connection mine SELECT v FROM t").v[0] == 7
    assert cell(shell, "%sqlml SELECT v FROM t").v[0] == 7  # later cells stay on it
    shell.user_ns["nothing"] = 3
    with pytest.raises(Exception, match="not an sqlml.Connection or a DuckDB connection"):
        cell(shell, "%sqlml --connection nothing SELECT 1")


def test_bigquery_dialect(shell):
    shell.user_ns["n"] = 3
    frame = cell(shell, "%%sqlml --dialect bigquery\nSELECT SAFE_CAST('x' AS INT64) AS bad, x FROM UNNEST([1, 2, 3]) AS x "
                        "WHERE x < @n")
    assert frame.bad.isna().all() and frame.x.tolist() == [1, 2]
    assert shell.magics_manager.registry["SqlmlMagics"].current.executor.dialect == "duckdb"  # back for the next cell


def test_errors_show_the_message_not_a_traceback(shell, capsys):
    result = shell.run_cell("%%sqlml\nSELECT 1;\nSELECT * FROM ML.PREDICT(MODEL m,\n  TABLE t")
    shown = capsys.readouterr()
    assert isinstance(result.error_in_exec, sqlml.SqlmlParseError)
    text = shown.out + shown.err
    assert "SqlmlParseError: Expecting ) (line 3, column" in text and "Traceback" not in text
    shell.run_cell("%sqlml SELECT * FROM ML.EVALUATE(MODEL nope)")
    text = "".join(capsys.readouterr())
    assert "ModelNotFoundError: Model 'nope' does not exist" in text and "Traceback" not in text
    shell.run_cell("%sqlml --plot pie SELECT 1")
    assert "--plot is one of roc" in "".join(capsys.readouterr())


def test_plot_option_draws_the_result_rows(shell):
    cell(shell, "%sqlml --db :memory: SELECT 1")
    conn = shell.magics_manager.registry["SqlmlMagics"].current
    sqlml.datasets.load(conn.duckdb, "penguins")
    conn.sql(f"""CREATE MODEL sexes OPTIONS (model_type = 'logistic_reg', input_label_cols = ['male'])
                 AS SELECT {FEATURES}, male FROM ({PENGUINS})""")
    figure = cell(shell, "%%sqlml --plot roc --out curve\nSELECT * FROM ML.ROC_CURVE(MODEL sexes)")
    (line,) = [ln for ln in figure.axes[0].get_lines() if ln.get_label().startswith("model")]
    curve = shell.user_ns["curve"]
    assert np.column_stack(line.get_data()).tolist() == sorted(map(list, zip(curve.false_positive_rate, curve.recall)))
    figure = cell(shell, "%sqlml --plot feature_importance SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL sexes)")
    assert len(figure.axes[0].patches) == 5


def test_loading_the_extension_keeps_import_sqlml_cheap():
    probe = "import sys, sqlml; print('IPython' in sys.modules, 'sqlml.magic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
    assert callable(sqlml.load_ipython_extension)


def test_model_object_wraps_the_sql(penguins):
    penguins.sql(f"""CREATE MODEL sexes OPTIONS (model_type = 'logistic_reg', input_label_cols = ['male'])
                     AS SELECT {FEATURES}, male FROM ({PENGUINS})""")
    penguins.sql(f"""CREATE OR REPLACE MODEL sexes OPTIONS (model_type = 'logistic_reg', input_label_cols = ['male'],
                     deploy = 'never') AS SELECT {FEATURES}, male FROM ({PENGUINS})""")
    model = penguins.model("sexes")
    versions = model.versions()
    assert versions.version.tolist() == [1, 2] and versions.deployed.tolist() == [True, False]
    assert model.deployed == 1 and model.options["model_type"] == "logistic_reg"
    frame = penguins.sql("SELECT * FROM penguins WHERE sex IS NOT NULL LIMIT 7").df()
    frame["male"] = frame.sex == "male"
    predicted = model.predict(frame)
    plain = penguins.sql("SELECT * FROM ML.PREDICT(MODEL sexes, (SELECT * FROM penguins WHERE sex IS NOT NULL "
                         "LIMIT 7))").df()
    pd.testing.assert_series_equal(predicted.predicted_male, plain.predicted_male)
    assert model.predict(f"{PENGUINS} LIMIT 3").shape[0] == 3
    evaluation = penguins.sql("SELECT * FROM ML.EVALUATE(MODEL sexes)").df()
    pd.testing.assert_frame_equal(model.evaluate(), evaluation)
    metrics = model.metrics().set_index("metric")
    assert metrics.loc["roc_auc", "model"] == evaluation.roc_auc[0]
    assert metrics.loc["roc_auc", "baseline"] == evaluation.baseline_roc_auc[0]
    explained = model.explain(frame, top_k_features=2)
    assert len(explained) == 7 and all(len(a) == 2 for a in explained.top_feature_attributions)
    card = model.card()
    assert card.html.startswith("<!DOCTYPE html>") and "srcdoc=" in card._repr_html_()
    assert "Model 'sexes': logistic_reg, label male, 2 version(s), version 1 deployed" in repr(model)
    assert "roc_auc" in repr(model) and "<table" in model._repr_html_()
    with pytest.raises(sqlml.ModelNotFoundError):
        penguins.model("nope")


def test_results_show_as_html_tables(penguins):
    html = penguins.sql("SELECT * FROM penguins")._repr_html_()
    assert html.count("<tr>") == 50 and "first 50 rows" in html
    assert "first" not in penguins.sql("SELECT 1 AS x")._repr_html_()


def test_dbapi_cursor_runs_sqlml_statements(penguins):
    cursor = penguins.cursor()
    assert cursor.execute("""CREATE MODEL mass OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g'])
                             AS SELECT bill_length_mm, body_mass_g FROM penguins WHERE body_mass_g IS NOT NULL""") is cursor
    assert cursor.description is None
    cursor.execute("SELECT predicted_body_mass_g, bill_length_mm FROM ML.PREDICT(MODEL mass, "
                   "(SELECT bill_length_mm FROM penguins WHERE bill_length_mm > ? ORDER BY bill_length_mm))", [55])
    assert [d[0] for d in cursor.description] == ["predicted_body_mass_g", "bill_length_mm"]
    plain = penguins.sql("SELECT predicted_body_mass_g, bill_length_mm FROM ML.PREDICT(MODEL mass, (SELECT bill_length_mm "
                         "FROM penguins WHERE bill_length_mm > 55 ORDER BY bill_length_mm))").fetchall()
    assert cursor.rowcount == len(plain) and cursor.fetchone() == plain[0]
    assert cursor.fetchmany(2) == plain[1:3] and cursor.fetchall() == plain[3:] and cursor.fetchone() is None
    penguins.commit()


def test_jupysql_runs_sqlml_statements_on_a_sqlml_connection(shell, penguins):
    pytest.importorskip("sql.magic", reason="JupySQL is not installed (it is not a dependency of sqlml)")
    shell.user_ns["conn"] = penguins
    cell(shell, "%load_ext sql")
    cell(shell, "%sql conn")
    cell(shell, "%sql CREATE MODEL mass OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g']) "
                "AS SELECT bill_length_mm, body_mass_g FROM penguins WHERE body_mass_g IS NOT NULL")
    result = cell(shell, "%sql SELECT r2_score FROM ML.EVALUATE(MODEL mass)")
    assert result.DataFrame().r2_score[0] == penguins.sql("SELECT r2_score FROM ML.EVALUATE(MODEL mass)").fetchall()[0][0]
