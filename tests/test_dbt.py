"""The dbt package, run in-process with dbt-core on a copy of integration_tests/.

Everything dbt built is read back with sqlml and checked against scikit-learn on the same rows.
"""

from __future__ import annotations

import gc
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import sklearn.metrics

import sqlml

pytest.importorskip("dbt.adapters.duckdb")
from dbt.adapters.duckdb.connections import DuckDBConnectionManager  # noqa: E402
from dbt.cli.main import dbtRunner  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WEIGHT = "wt.main.penguin_weight"  # registry names are the relations' full names
SPECIES = "wt.main.penguin_species"


def dbt(project: Path, *args: str):
    """Invoke dbt on ``project``; return dbt's result object. dbt-duckdb keeps its database open
    after an in-process invocation (it closes it at exit): close it, as the end of `dbt` would."""
    result = dbtRunner().invoke([*args, "--project-dir", str(project), "--profiles-dir", str(project), "-q"])
    DuckDBConnectionManager.close_all_connections()
    gc.collect()
    assert result.exception is None, result.exception
    return result


def copy_project(directory: Path, database: str, plugin: bool = True) -> Path:
    """integration_tests/ with the package installed from this checkout and its own database."""
    project = directory / "project"
    shutil.copytree(ROOT / "integration_tests", project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb"))
    (project / "packages.yml").write_text(f"packages:\n  - local: {ROOT}\n")
    profile = (project / "profiles.yml").read_text()
    profile = profile.replace("{{ env_var('SQLML_DBT_DATABASE', 'integration_tests.duckdb') }}", str(directory / database))
    if not plugin:
        profile = profile.split("      plugins:")[0]
    (project / "profiles.yml").write_text(profile)
    dbt(project, "deps")
    return project


def failures(result) -> dict[str, str]:
    return {r.node.name: r.message for r in result.result.results if r.status in ("error", "fail")}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """integration_tests/ built, plus models whose options are wrong or missing and one whose SQL
    holds a character outside the BMP; then the weight model and what depends on it built again."""
    directory = tmp_path_factory.mktemp("dbt")
    project = copy_project(directory, "wt.duckdb")
    (project / "models" / "bad_options.sql").write_text(
        "{{ config(materialized='sqlml_model', ml_config={'model_type': 'linear_reg', "
        "'input_label_cols': ['body_mass_g'], 'max_iterations': 0}) }}\n"
        "select body_mass_g, flipper_length_mm from {{ ref('penguins') }}\n")
    (project / "models" / "no_config.sql").write_text(
        "{{ config(materialized='sqlml_model') }}\nselect * from {{ ref('penguins') }}\n")
    (project / "models" / "weighted_species.sql").write_text(
        "{{ config(materialized='sqlml_model', ml_config={'model_type': 'logistic_reg', 'input_label_cols': ['species'], "
        "'class_weights': {'Adelie': 1, 'Gentoo': 2.5, \"Chin'strap\": 1}, 'auto_class_weights': false, "
        "'description': 'weighted \"species\"; 🐧'}) }}\n"
        "select replace(species, 'Chinstrap', 'Chin''strap') as species, bill_length_mm, flipper_length_mm "
        "from {{ ref('penguins') }} where bill_length_mm is not null\n")
    (project / "models" / "penguin_labels.sql").write_text(
        "{{ config(materialized='sqlml_table') }}\n"
        "select '🐧 ' || predicted_species as label, species\n"
        "from ML.PREDICT(MODEL {{ ref('penguin_species') }}, TABLE {{ ref('penguins') }})\n")
    first = dbt(project, "build")
    second = dbt(project, "build", "--select", "penguin_weight+")
    yield {"first": first, "second": second, "project": project, "database": directory / "wt.duckdb"}


@pytest.fixture
def db(built):
    connection = sqlml.connect(str(built["database"]), read_only=True, progress=lambda message: None)
    yield connection
    connection.close()


def test_build_succeeds_except_the_models_with_bad_options(built):
    assert sorted(failures(built["first"])) == ["bad_options", "no_config"]
    assert built["second"].success


def test_missing_ml_config_is_named_at_compile_time(built):
    message = failures(built["first"])["no_config"]
    assert "A sqlml_model needs ml_config, the model's OPTIONS as a dict" in message


def test_bad_options_fail_with_sqlml_message_and_no_traceback(built):
    message = failures(built["first"])["bad_options"]
    assert "sqlml: The 'max_iterations' option must be an integer in the range [1, inf]. Got 0 instead." in message
    assert "Traceback" not in message


def test_each_build_trains_a_new_version(db):
    versions = db.sql("SELECT name, list(version ORDER BY version) FROM sqlml.models GROUP BY name ORDER BY name").fetchall()
    assert versions == [(SPECIES, [1]), (WEIGHT, [1, 2]), ("wt.main.weighted_species", [1])]


def test_ml_config_values_reach_the_options_as_written(db):
    """Dicts become [STRUCT(label, weight), ...]; quotes and characters outside the BMP survive."""
    (options,) = db.sql("SELECT options FROM sqlml.models WHERE name = 'wt.main.weighted_species'").fetchall()[0]
    assert json.loads(options) == {
        "model_type": "logistic_reg", "input_label_cols": ["species"], "auto_class_weights": False,
        "class_weights": [["Adelie", 1.0], ["Gentoo", 2.5], ["Chin'strap", 1.0]],
        "description": 'weighted "species"; \U0001F427'}


def test_model_relation_holds_the_latest_versions_metrics_as_sklearn_computes_them(db):
    row = db.sql("SELECT * FROM penguin_weight").df()
    assert len(row) == 1
    assert (row.model_name[0], row.model_version[0]) == (WEIGHT, 2)
    # 342 rows is under the AUTO_SPLIT threshold: the model is evaluated on all its training rows.
    scored = db.sql(f"""SELECT body_mass_g, predicted_body_mass_g FROM ML.PREDICT(MODEL {WEIGHT} VERSION 2,
                        (SELECT * FROM penguins WHERE body_mass_g IS NOT NULL))""").df()
    assert row.r2_score[0] == pytest.approx(sklearn.metrics.r2_score(scored.body_mass_g, scored.predicted_body_mass_g))
    assert row.mean_absolute_error[0] == pytest.approx(
        sklearn.metrics.mean_absolute_error(scored.body_mass_g, scored.predicted_body_mass_g))


def test_model_trained_by_dbt_predicts_like_the_same_statement_run_directly(db):
    """The materialization adds nothing to the training query and the options."""
    direct = sqlml.connect(progress=lambda message: None)
    direct.duckdb.register("seed", db.sql("SELECT * FROM penguins").to_arrow_table())
    direct.sql("""CREATE TABLE penguins AS SELECT * FROM seed;
                  CREATE MODEL direct OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g']) AS
                  SELECT species, island, bill_length_mm, bill_depth_mm, flipper_length_mm, sex, body_mass_g
                  FROM penguins WHERE body_mass_g IS NOT NULL""")
    expected = direct.sql("SELECT predicted_body_mass_g FROM ML.PREDICT(MODEL direct, "
                          "(SELECT * FROM penguins WHERE body_mass_g IS NOT NULL))").fetchall()
    direct.close()
    table = db.sql("SELECT predicted_body_mass_g FROM penguin_weight_predictions").fetchall()
    np.testing.assert_allclose(np.array(table).ravel(), np.array(expected).ravel(), rtol=1e-9)


def test_view_scores_on_read_and_the_plain_table_over_it_counts_its_confusion(db):
    scored = db.sql("SELECT species, predicted_species FROM penguin_species_scored WHERE body_mass_g IS NOT NULL").df()
    eager = db.sql(f"""SELECT species, predicted_species FROM ML.PREDICT(MODEL {SPECIES},
                       (SELECT * FROM penguins WHERE body_mass_g IS NOT NULL))""").df()
    assert scored.predicted_species.tolist() == eager.predicted_species.tolist()
    labels = sorted(scored.species.unique())
    matrix = sklearn.metrics.confusion_matrix(scored.species, scored.predicted_species, labels=labels)
    counts = dict(((a, p), n) for a, p, n in db.sql("SELECT * FROM species_confusion").fetchall())
    assert counts == {(a, p): matrix[i, j] for i, a in enumerate(labels) for j, p in enumerate(labels) if matrix[i, j]}
    assert sklearn.metrics.accuracy_score(scored.species, scored.predicted_species) > 0.9


def test_quality_gate_test_ran_on_the_metrics(built):
    gate = [r for r in built["second"].result.results if r.node.name == "penguin_weight_is_useful"]
    assert [r.status for r in gate] == ["pass"]


def test_sql_text_keeps_characters_outside_the_bmp(db):
    labels = db.sql("SELECT DISTINCT label FROM penguin_labels ORDER BY label").fetchall()
    predicted = db.sql(f"SELECT DISTINCT predicted_species FROM ML.PREDICT(MODEL {SPECIES}, TABLE penguins) ORDER BY 1").fetchall()
    assert labels == [("\U0001F427 " + p,) for (p,) in predicted]


def test_view_without_the_plugin_is_refused_with_the_fix(tmp_path):
    project = copy_project(tmp_path, "noplugin.duckdb", plugin=False)
    result = dbt(project, "run", "--select", "penguin_species_scored")
    message = failures(result)["penguin_species_scored"]
    assert "sqlml: A sqlml_view calls sqlml's scoring functions whenever it is read" in message
    assert "plugins: [{module: sqlml.dbt.plugin}]" in message


def test_example_script_builds_what_the_dbt_project_builds():
    """examples/dbt_penguins.sql, run through the Python API as `sqlml run --dataset penguins` does."""
    from sqlml import datasets
    conn = sqlml.connect(progress=lambda message: None)
    datasets.load(conn.duckdb, "penguins")
    conn.sql((ROOT / "examples" / "dbt_penguins.sql").read_text())
    row = conn.sql("SELECT model_name, model_version, r2_score FROM penguin_weight").fetchall()
    scored = conn.sql("SELECT body_mass_g, predicted_body_mass_g FROM penguin_weight_predictions").df()
    assert row == [("penguin_weight", 1, pytest.approx(sklearn.metrics.r2_score(scored.body_mass_g, scored.predicted_body_mass_g)))]
    view = conn.sql("SELECT species, predicted_species FROM penguin_species_scored WHERE body_mass_g IS NOT NULL").df()
    counts = conn.sql("SELECT species, predicted_species, penguins FROM species_confusion").fetchall()
    assert sum(n for a, p, n in counts if a == p) == (view.species == view.predicted_species).sum()
    (weighed,) = conn.sql("SELECT count(*) FROM penguins WHERE body_mass_g IS NOT NULL").fetchall()[0]
    assert sum(n for _, _, n in counts) == len(view) == weighed
    conn.close()
