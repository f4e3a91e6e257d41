"""The dbt package on Spark: integration_tests_spark/ (the penguin weight model and its predictions) built
in-process by dbt-core with dbt-spark's session method on the test run's SparkSession, inside
sqlml.dbt.spark.attached (docs/dbt.md, "On Spark"). What dbt built is checked against scikit-learn and
against the same statement run on DuckDB."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import sklearn.metrics

import sqlml

pytest.importorskip("dbt.adapters.spark")
from dbt.cli.main import dbtRunner  # noqa: E402

from sqlml.dbt.spark import attached  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WEIGHT = "sqlml_dbt.penguin_weight"


@pytest.fixture(scope="module")
def built(spark_session, tmp_path_factory):
    """integration_tests_spark/ (with the DuckDB project's seeds it reads) copied, with the package from
    this checkout, and built once."""
    directory = tmp_path_factory.mktemp("dbt_spark")
    project = directory / "integration_tests_spark"
    shutil.copytree(ROOT / "integration_tests_spark", project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    shutil.copytree(ROOT / "integration_tests" / "seeds", directory / "integration_tests" / "seeds")  # its seed-paths
    (project / "packages.yml").write_text(f"packages:\n  - local: {ROOT}\n")
    paths = ["--project-dir", str(project), "--profiles-dir", str(project)]
    with attached(spark_session, registry=str(directory / "registry")) as conn:
        for command in (["deps"], ["build", "--select", "+penguin_weight_predictions"]):
            result = dbtRunner().invoke([*command, *paths, "-q"])
            assert result.exception is None and result.success, result
        seed = Path("integration_tests", "seeds", "penguins.csv")
        assert (directory / seed).read_bytes() == (ROOT / seed).read_bytes()  # dbt wrote under target/ only
        yield conn, spark_session, paths


def test_the_model_relation_holds_the_versions_metrics_as_sklearn_computes_them(built):
    conn, spark, _ = built
    (row,) = spark.table(WEIGHT).toArrow().to_pylist()
    assert (row["model_name"], row["model_version"], row["deployed"]) == (WEIGHT, 1, True)
    assert [v.version for v in conn.executor.registry.versions(WEIGHT)] == [1]
    # 342 rows is under the AUTO_SPLIT threshold: the model is evaluated on all its training rows.
    scored = spark.table("sqlml_dbt.penguin_weight_predictions").toArrow()
    truth, predicted = scored["body_mass_g"].to_numpy(), scored["predicted_body_mass_g"].to_numpy()
    assert scored.num_rows == 342
    assert row["r2_score"] == pytest.approx(sklearn.metrics.r2_score(truth, predicted), rel=1e-9)
    assert row["mean_absolute_error"] == pytest.approx(sklearn.metrics.mean_absolute_error(truth, predicted), rel=1e-9)


def test_the_model_dbt_trained_on_spark_predicts_like_the_statement_run_on_duckdb(built):
    _, spark, _ = built
    direct = sqlml.connect(progress=lambda message: None)
    direct.executor.engine.create_table("penguins", spark.table("sqlml_dbt.penguins").toArrow())
    direct.sql("""CREATE MODEL direct OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g']) AS
                  SELECT species, island, bill_length_mm, bill_depth_mm, flipper_length_mm, sex, body_mass_g
                  FROM penguins WHERE body_mass_g IS NOT NULL""")
    expected = direct.sql("SELECT predicted_body_mass_g FROM ML.PREDICT(MODEL direct, "
                          "(SELECT * FROM penguins WHERE body_mass_g IS NOT NULL))").fetchall()
    direct.close()
    table = spark.table("sqlml_dbt.penguin_weight_predictions").select("predicted_body_mass_g").collect()
    np.testing.assert_allclose(np.sort(np.array(table).ravel()), np.sort(np.array(expected).ravel()), rtol=1e-9)


def test_a_sqlml_error_fails_the_node_with_sqlmls_message(built):
    _, _, paths = built
    project = Path(paths[1])
    (project / "models" / "bad_options.sql").write_text(
        "{{ config(materialized='sqlml_model', sqlml={'model_type': 'linear_reg', 'input_label_cols': ['body_mass_g'], "
        "'max_iterations': 0}) }}\nselect flipper_length_mm, body_mass_g from {{ ref('penguins') }}\n")
    result = dbtRunner().invoke(["run", "--select", "bad_options", *paths, "-q"])
    (node,) = result.result.results
    assert not result.success and node.status == "error"
    assert "sqlml: The 'max_iterations' option must be an integer in the range [1, " in node.message
    assert node.message.endswith("Got 0 instead.") and "Traceback" not in node.message
