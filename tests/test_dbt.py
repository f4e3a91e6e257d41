"""The dbt package, run in-process with dbt-core on a copy of integration_tests/.

Everything dbt built is read back with sqlml and checked against scikit-learn on the same rows:
the table-expression macros (predict, evaluate with baselines and slices, confusion matrix, ROC
curve, explanations), the generic tests (one deliberately failing), the audit table, the registry
views, parallel training with four threads, and the profile the package documents.
"""

from __future__ import annotations

import gc
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import sklearn.metrics
from sklearn.linear_model import LinearRegression

import sqlml

pytest.importorskip("dbt.adapters.duckdb")
from dbt.adapters.duckdb.connections import DuckDBConnectionManager  # noqa: E402
from dbt.cli.main import dbtRunner  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WEIGHT = "wt.main.penguin_weight"  # registry names are the relations' full names
SPECIES = "wt.main.penguin_species"
DELAY = "wt.main.delay_model"
RELEASE = "wt.main.release_model"
FORECAST = "wt.main.flights_forecast"
AUDIT_COLUMNS = ["run_id", "model_name", "model_version", "model_type", "label", "options", "metrics", "training_rows",
                 "eval_rows", "fingerprint", "trained_at", "dbt_invocation_id", "dbt_node", "schema_version"]


def dbt(project: Path, *args: str):
    """Invoke dbt on ``project``; return dbt's result object. dbt-duckdb keeps its database open
    after an in-process invocation (it closes it at exit): close it, as the end of `dbt` would."""
    result = dbtRunner().invoke([*args, "--project-dir", str(project), "--profiles-dir", str(project), "-q"])
    DuckDBConnectionManager.close_all_connections()
    gc.collect()
    assert result.exception is None, result.exception
    return result


def copy_project(directory: Path, database: str, plugin: bool = True) -> Path:
    """integration_tests/ with the package installed from this checkout and its own database; its
    profile is profiles.yml.example with the path changed (test_integration_profile_is_the_example)."""
    project = directory / "project"
    shutil.copytree(ROOT / "integration_tests", project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb"))
    (project / "packages.yml").write_text(f"packages:\n  - local: {ROOT}\n")
    profile = (ROOT / "profiles.yml.example").read_text().replace("path: dev.duckdb", f"path: {directory / database}")
    if not plugin:
        profile = profile.split("      plugins:")[0]
    (project / "profiles.yml").write_text(profile)
    dbt(project, "deps")
    return project


def failures(result) -> dict[str, str]:
    return {r.node.name: r.message for r in result.result.results if r.status in ("error", "fail")}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """integration_tests/ built with four threads (the default selector leaves out the deliberately
    failing model), plus models whose options are wrong or missing, one trained with the older
    ml_config whose SQL holds a character outside the BMP, a prediction from an unknown model and a
    generic test naming an unknown metric; then the failing model alone; then the weight model, the
    release model and what depends on them again; then the release model retrained worse."""
    directory = tmp_path_factory.mktemp("dbt")
    project = copy_project(directory, "wt.duckdb")
    models = project / "models"
    (models / "bad_options.sql").write_text(
        "{{ config(materialized='sqlml_model', sqlml={'model_type': 'linear_reg', "
        "'input_label_cols': ['body_mass_g'], 'max_iterations': 0}) }}\n"
        "select body_mass_g, flipper_length_mm from {{ ref('penguins') }}\n")
    (models / "no_config.sql").write_text(
        "{{ config(materialized='sqlml_model') }}\nselect * from {{ ref('penguins') }}\n")
    (models / "weighted_species.sql").write_text(
        "{{ config(materialized='sqlml_model', ml_config={'model_type': 'logistic_reg', 'input_label_cols': ['species'], "
        "'class_weights': {'Adelie': 1, 'Gentoo': 2.5, \"Chin'strap\": 1}, 'auto_class_weights': false, "
        "'description': 'weighted \"species\"; 🐧'}) }}\n"
        "select replace(species, 'Chinstrap', 'Chin''strap') as species, bill_length_mm, flipper_length_mm "
        "from {{ ref('penguins') }} where bill_length_mm is not null\n")
    (models / "penguin_labels.sql").write_text(
        "{{ config(materialized='sqlml_table') }}\n"
        "select '🐧 ' || predicted_species as label, species\n"
        "from ML.PREDICT(MODEL {{ ref('penguin_species') }}, TABLE {{ ref('penguins') }})\n")
    (models / "bigquery_weight.sql").write_text(  # BigQuery ML's SQL: SAFE_CAST, FLOAT64, a "string"
        "{{ config(materialized='sqlml_model', dialect='bigquery', "
        "sqlml={'model_type': 'linear_reg', 'input_label_cols': ['body_mass_g'], 'data_split_method': 'NO_SPLIT'}) }}\n"
        "select SAFE_CAST(flipper_length_mm AS FLOAT64) as flipper_length_mm, body_mass_g from {{ ref('penguins') }}\n"
        'where body_mass_g is not null and flipper_length_mm is not null and species != "Gentoo"\n')
    (models / "unknown_model_predictions.sql").write_text(
        "select * from {{ sqlml.predict('wt.main.nope', ref('penguins')) }}\n")
    first = dbt(project, "build", "--threads", "4")
    with sqlml.connect(str(directory / "wt.duckdb"), read_only=True, progress=lambda m: None) as conn:
        audit_after_first = conn.sql("SELECT * FROM sqlml.training_runs ORDER BY run_id").fetchall()
    failing = dbt(project, "build", "--select", "tag:deliberately_failing")
    second = dbt(project, "build", "--select", "penguin_weight+", "release_model+")  # release_model: an equal retrain
    worse = dbt(project, "build", "--select", "release_model+", "--vars", "{release_drop_delay: true}")
    yield {"first": first, "failing": failing, "second": second, "worse": worse, "project": project,
           "database": directory / "wt.duckdb", "audit_after_first": audit_after_first}


@pytest.fixture
def db(built):
    connection = sqlml.connect(str(built["database"]), read_only=True, progress=lambda message: None)
    yield connection
    connection.close()


def test_build_succeeds_except_the_models_and_test_with_user_errors(built):
    assert sorted(failures(built["first"])) == ["bad_options", "no_config", "unknown_model_predictions"]
    assert built["second"].success
    names = {r.node.name for r in built["first"].result.results}
    assert "delay_model_noise" not in names  # left out by the default selector
    assert {"delay_model", "late_evaluation", "sqlml_models", "sqlml_model_versions", "sqlml_training_runs"} <= names


def test_missing_options_are_named_at_compile_time(built):
    message = failures(built["first"])["no_config"]
    assert "A sqlml_model needs its model's OPTIONS as a dict in config(sqlml={...}) (or meta: {sqlml: {...}})" in message


def test_user_errors_in_macros_are_compiler_errors_with_the_message(built):
    errors = failures(built["first"])
    assert "sqlml: Model 'wt.main.nope' does not exist." in errors["unknown_model_predictions"]
    assert not any("Traceback" in message for message in errors.values())


def test_bad_options_fail_with_sqlml_message_and_no_traceback(built):
    message = failures(built["first"])["bad_options"]
    assert "sqlml: The 'max_iterations' option must be an integer in the range [1, 10,000]. Got 0 instead." in message
    assert "Traceback" not in message


def test_each_build_trains_a_new_version(db):
    versions = db.sql("SELECT name, list(version ORDER BY version) FROM sqlml.models GROUP BY name ORDER BY name").fetchall()
    assert versions == [("wt.main.bigquery_weight", [1]), (DELAY, [1]), ("wt.main.delay_model_noise", [1]), (FORECAST, [1]),
                        ("wt.main.movie_model", [1]), (SPECIES, [1]),
                        (WEIGHT, [1, 2]), (RELEASE, [1, 2, 3]), ("wt.main.weighted_species", [1])]


def test_a_model_configured_with_the_bigquery_dialect_reads_bigquery_sql(db):
    # reference: bigqueryml-syntax-create (a CREATE MODEL query written in BigQuery's SQL), as a dbt model
    # with config(dialect='bigquery')
    rows = db.sql("SELECT flipper_length_mm, body_mass_g FROM penguins WHERE body_mass_g IS NOT NULL "
                  "AND flipper_length_mm IS NOT NULL AND species != 'Gentoo'").fetchnumpy()
    expected = LinearRegression().fit(rows["flipper_length_mm"][:, None], rows["body_mass_g"])
    X, y = rows["flipper_length_mm"][:, None], rows["body_mass_g"]
    ((r2,),) = db.sql("SELECT r2_score FROM bigquery_weight").fetchall()
    assert r2 == pytest.approx(sklearn.metrics.r2_score(y, expected.predict(X)), rel=1e-9)
    weight = db.sql("SELECT weight FROM ML.WEIGHTS(MODEL wt.main.bigquery_weight) WHERE processed_input = "
                    "'flipper_length_mm'").fetchall()[0][0]
    assert weight == pytest.approx(expected.coef_[0], rel=1e-9)


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


def test_a_worse_retrain_fails_sqlml_is_deployed_and_an_equal_one_passes(built, db):
    """The deploy gate in dbt (docs/dbt.md): each run's message says whether the version was deployed;
    the worse retrain (without dep_delay) is stored, not deployed, and its sqlml_is_deployed test fails."""
    def outcome(build: str) -> tuple:
        results = {r.node.name: r for r in built[build].result.results}
        (test,) = [r for name, r in results.items() if name.startswith("sqlml_sqlml_is_deployed_release_model")]
        return results["release_model"], test
    (model, test), first = outcome("second"), outcome("first")
    assert first[0].message == "version 1 deployed" and first[1].status == "pass"
    assert (model.status, model.message, test.status) == ("success", "version 2 deployed", "pass")
    model, test = outcome("worse")
    assert model.status == "success" and model.message.startswith("version 3 stored, NOT deployed: roc_auc ")
    assert model.message.endswith(f"to deploy it: ALTER MODEL {RELEASE} DEPLOY VERSION 3")
    assert test.status == "fail" and test.failures == 1
    (row,) = db.sql("SELECT model_version, deployed, deploy_reason, roc_auc FROM release_model").fetchall()
    (reason,) = db.sql(f"SELECT reason FROM sqlml.deployments WHERE model = '{RELEASE}' AND version = 3").fetchall()[0]
    (auc,) = db.sql(f"SELECT roc_auc FROM ML.EVALUATE(MODEL {RELEASE} VERSION 3)").fetchall()[0]
    assert row == (3, False, reason, pytest.approx(auc)) and reason in model.message
    served, second = (db.sql(f"SELECT predicted_is_late_probs FROM ML.PREDICT(MODEL {RELEASE}{v}, TABLE flights_recent)").fetchall()
                      for v in ("", " VERSION 2"))
    assert served == second  # MODEL release_model still serves version 2


def test_quality_gate_test_ran_on_the_metrics(built):
    gate = [r for r in built["second"].result.results if r.node.name == "penguin_weight_is_useful"]
    assert [r.status for r in gate] == ["pass"]


def test_sql_text_keeps_characters_outside_the_bmp(db):
    labels = db.sql("SELECT DISTINCT label FROM penguin_labels ORDER BY label").fetchall()
    predicted = db.sql(f"SELECT DISTINCT predicted_species FROM ML.PREDICT(MODEL {SPECIES}, TABLE penguins) ORDER BY 1").fetchall()
    assert labels == [("\U0001F427 " + p,) for (p,) in predicted]


@pytest.fixture(scope="module")
def bare_project(tmp_path_factory):
    return copy_project(tmp_path_factory.mktemp("bare"), "noplugin.duckdb", plugin=False)


def test_without_the_plugin_the_first_sqlml_macro_says_what_to_add(bare_project):
    project = bare_project
    result = dbt(project, "run", "--select", "penguin_species", "late_predictions", "sqlml_models")
    errors = failures(result)
    assert sorted(errors) == ["late_predictions", "penguin_species", "sqlml_models"]
    for message in errors.values():
        assert "sqlml needs its dbt-duckdb plugin, which this profile does not load." in message
        assert "plugins: [{module: sqlml.dbt.plugin, alias: sqlml}]" in message


def test_generic_test_arguments_are_checked_when_dbt_parses(bare_project):
    (bare_project / "models" / "extra.yml").write_text(
        "version: 2\nmodels:\n  - name: penguin_species\n    data_tests:\n"
        "      - sqlml.sqlml_metric_at_least:\n          arguments: {metric: auc, threshold: 0.5}\n")
    try:
        result = dbtRunner().invoke(["parse", "--project-dir", str(bare_project), "--profiles-dir", str(bare_project), "-q"])
    finally:
        (bare_project / "models" / "extra.yml").unlink()
    assert "sqlml_metric_at_least: metric must be one of precision, recall, accuracy" in str(result.exception)
    assert "explained_variance; got auc" in str(result.exception)


def test_integration_profile_is_the_example_apart_from_the_path():
    example = (ROOT / "profiles.yml.example").read_text().splitlines()
    used = (ROOT / "integration_tests" / "profiles.yml").read_text().splitlines()
    differing = [(a, b) for a, b in zip(example, used) if a != b]
    assert len(example) == len(used)
    assert differing == [("      path: dev.duckdb",
                          "      path: \"{{ env_var('SQLML_DBT_DATABASE', 'integration_tests.duckdb') }}\"")]
    assert "plugins:\n        # " in "\n".join(example) and "- module: sqlml.dbt.plugin\n          alias: sqlml" in "\n".join(example)


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


# ---- flights: predict, evaluate with baselines and slices, confusion matrix, ROC, explanations ----

@pytest.fixture
def late(db):
    """late_predictions (a plain dbt table over sqlml.predict) with the positive class's probability."""
    frame = db.sql("SELECT * FROM late_predictions").df()
    frame["score"] = [dict((p["label"], p["prob"]) for p in probs)[True] for probs in frame.predicted_is_late_probs]
    return frame


def test_predictions_cover_the_recent_flights_with_consistent_labels(db, late):
    (recent,) = db.sql("SELECT count(*) FROM flights WHERE month >= 10").fetchall()[0]
    assert len(late) == recent == 1876
    assert (late.predicted_is_late == (late.score >= 0.5)).all()


def test_evaluation_with_baselines_matches_sklearn_on_the_predicted_rows(db, late):
    row = db.sql("SELECT * FROM late_evaluation WHERE slice_column IS NULL").df().iloc[0]
    y, score, predicted = late.is_late.astype(bool), late.score, late.predicted_is_late.astype(bool)
    assert row.row_count == len(late)
    assert row.roc_auc == pytest.approx(sklearn.metrics.roc_auc_score(y, score), abs=1e-12)
    assert row.accuracy == pytest.approx(sklearn.metrics.accuracy_score(y, predicted), abs=1e-12)
    assert row.recall == pytest.approx(sklearn.metrics.recall_score(y, predicted), abs=1e-12)
    assert row.log_loss == pytest.approx(sklearn.metrics.log_loss(y, score), rel=1e-9)
    # The baseline predicts the training split's majority class (on time) and its class prior.
    (statistics,) = db.sql(f"SELECT metrics->'baseline'->'statistics' FROM sqlml.models WHERE name = '{DELAY}'").fetchall()[0]
    statistics = json.loads(statistics)
    train = db.sql("SELECT is_late FROM flights_train").df().is_late.astype(bool)
    assert statistics["majority_class"] is False and statistics["class_prior"][1] == pytest.approx(train.mean(), abs=0.01)
    assert row.baseline_accuracy == pytest.approx(sklearn.metrics.accuracy_score(y, np.zeros(len(y), bool)), abs=1e-12)
    assert row.baseline_roc_auc == 0.5
    assert row.baseline_log_loss == pytest.approx(
        sklearn.metrics.log_loss(y, np.full(len(y), statistics["class_prior"][1])), rel=1e-9)
    assert row.lift_roc_auc == pytest.approx(row.roc_auc - 0.5, abs=1e-12)
    assert row.lift_log_loss == pytest.approx(row.baseline_log_loss - row.log_loss, abs=1e-12)
    assert row.primary_metric == "roc_auc" and bool(row.beats_baseline)


def test_evaluation_slices_match_sklearn_per_carrier_and_origin(db, late):
    slices = db.sql("SELECT * FROM late_evaluation WHERE slice_column IS NOT NULL").df()
    overall = db.sql("SELECT accuracy, roc_auc FROM late_evaluation WHERE slice_column IS NULL").fetchall()[0]
    assert sorted(slices.slice_column.unique()) == ["carrier", "origin"]
    assert set(slices[slices.slice_column == "origin"].slice_value) == {"EWR", "JFK", "LGA"}
    types = dict(db.sql("SELECT column_name, data_type FROM information_schema.columns "
                        "WHERE table_name = 'late_evaluation' AND column_name IN ('carrier', 'origin')").fetchall())
    assert types == {"carrier": "VARCHAR", "origin": "VARCHAR"}  # the slice columns, typed, beside slice_value
    assert db.sql("SELECT slice_column, count(*) FROM late_evaluation WHERE CASE slice_column "
                  "WHEN 'carrier' THEN carrier IS DISTINCT FROM slice_value OR origin IS NOT NULL "
                  "WHEN 'origin' THEN origin IS DISTINCT FROM slice_value OR carrier IS NOT NULL "
                  "ELSE carrier IS NOT NULL OR origin IS NOT NULL END GROUP BY ALL").fetchall() == []
    for _, row in slices.iterrows():
        rows = late[late[row.slice_column] == row.slice_value]
        y = rows.is_late.astype(bool)
        assert row.row_count == len(rows)
        assert row.accuracy == pytest.approx(sklearn.metrics.accuracy_score(y, rows.predicted_is_late.astype(bool)), abs=1e-12)
        if y.nunique() == 2:
            assert row.roc_auc == pytest.approx(sklearn.metrics.roc_auc_score(y, rows.score), abs=1e-12)
            assert row.worse_than_overall == (row.roc_auc < overall[1] - 0.05)
        assert row.unreliable == (len(rows) < 30)


def test_confusion_matrix_table_matches_sklearn(db, late):
    matrix = sklearn.metrics.confusion_matrix(late.is_late.astype(bool), late.predicted_is_late.astype(bool), labels=[False, True])
    table = db.sql('SELECT expected_label, "false", "true" FROM late_confusion ORDER BY expected_label').fetchall()
    assert table == [(False, matrix[0, 0], matrix[0, 1]), (True, matrix[1, 0], matrix[1, 1])]


def test_roc_curve_table_matches_sklearn_at_every_threshold(db, late):
    curve = db.sql("SELECT * FROM late_roc").df()
    y = late.is_late.astype(bool)
    assert len(curve) > 100
    for _, row in curve.iterrows():
        predicted = late.score >= row.threshold
        assert row.recall == pytest.approx(sklearn.metrics.recall_score(y, predicted), abs=1e-12)
        assert row.true_positives == (predicted & y).sum() and row.false_positives == (predicted & ~y).sum()
    fpr, tpr, _ = sklearn.metrics.roc_curve(y, late.score)
    points = curve.sort_values(["false_positive_rate", "recall"])
    assert np.trapezoid(points.recall, points.false_positive_rate) == pytest.approx(
        sklearn.metrics.auc(fpr, tpr), abs=0.01)


def test_predict_with_a_threshold_decides_on_the_same_probabilities(db, late):
    strict = db.sql("SELECT * FROM late_predictions_strict").df()
    strict["score"] = [dict((p["label"], p["prob"]) for p in probs)[True] for probs in strict.predicted_is_late_probs]
    np.testing.assert_array_equal(strict.score, late.score)  # same rows, same order, scores exact through JSON
    assert (strict.predicted_is_late == (strict.score >= 0.8)).all()
    assert 0 < strict.predicted_is_late.sum() < late.predicted_is_late.sum()


def test_view_and_incremental_models_over_predict_score_like_the_table(db, late):
    view = db.sql("SELECT sched_dep_time, carrier, origin, distance, dep_delay, predicted_is_late FROM late_scores").fetchall()
    december = late[late.month == 12]
    assert len(view) == len(december) and sum(r[-1] for r in view) == december.predicted_is_late.sum()
    incremental = db.sql("SELECT month, count(*), sum(predicted_is_late::INT) FROM late_predictions_incremental "
                         "GROUP BY month ORDER BY month").fetchall()
    by_month = late.groupby("month").predicted_is_late.agg(["count", "sum"])
    assert incremental == [(m, by_month.loc[m, "count"], by_month.loc[m, "sum"]) for m in (10, 12)]


def test_explanations_sum_to_the_logit_of_the_predicted_probability(db):
    rows = db.sql("SELECT * FROM late_explanations").df()
    assert len(rows) == 20 and all(len(a) == 2 for a in rows.top_feature_attributions)
    logit = np.log(rows.probability / (1 - rows.probability))
    chosen = np.where(rows.predicted_is_late, logit, -logit)  # probability is the predicted class's
    np.testing.assert_allclose(rows.prediction_value, chosen, atol=1e-9)


# ---- generic tests ----

def test_generic_tests_pass_on_the_delay_and_weight_models(built):
    tests = {r.node.name: r.status for r in built["first"].result.results if r.node.resource_type == "test"}
    passing = [name for name in tests if name.startswith(("sqlml_sqlml_beats", "sqlml_sqlml_no_slice", "sqlml_sqlml_metric"))
]
    assert len(passing) == 4 and all(tests[name] == "pass" for name in passing)


def test_the_noise_model_fails_its_baseline_test_for_the_right_reason(built, db):
    results = {r.node.name: r for r in built["failing"].result.results}
    (test,) = [r for name, r in results.items() if name.startswith("sqlml_sqlml_beats_baseline_delay_model_noise")]
    assert results["delay_model_noise"].status == "success"
    assert test.status == "fail" and test.failures == 1
    assert "Got 1 result, configured to fail if != 0" in test.message
    scored = db.sql("SELECT is_late, predicted_is_late_probs FROM ML.PREDICT(MODEL wt.main.delay_model_noise, TABLE flights_recent)").df()
    score = [dict((p["label"], p["prob"]) for p in probs)[True] for probs in scored.predicted_is_late_probs]
    assert sklearn.metrics.roc_auc_score(scored.is_late.astype(bool), score) - 0.5 <= 0.05


def _drift_tests(result) -> dict:
    """The sqlml_no_drift / sqlml_no_skew results of a run by (test, model, whether it fails on purpose)."""
    found = {}
    for r in result.result.results:
        metadata = getattr(r.node, "test_metadata", None)
        if metadata is not None and metadata.name in ("sqlml_no_drift", "sqlml_no_skew"):
            on = r.node.attached_node.split(".")[-1]
            found[(metadata.name, on, "columns" not in metadata.kwargs and "thresholds" not in metadata.kwargs)] = r
    return found


def test_drift_and_skew_tests_pass_and_fail_on_what_ml_validate_finds(built, db):
    first, failing = _drift_tests(built["first"]), _drift_tests(built["failing"])
    assert {k: r.status for k, r in first.items()} == {("sqlml_no_skew", "delay_model", False): "pass",
                                                       ("sqlml_no_drift", "flights_recent", False): "pass"}
    assert {k: (r.status, r.failures) for k, r in failing.items()} == {
        ("sqlml_no_skew", "delay_model_noise", True): ("fail", 1), ("sqlml_no_drift", "flights_recent", True): ("fail", 1)}
    drift = db.sql("SELECT input FROM ML.VALIDATE_DATA_DRIFT(TABLE flights_train, TABLE flights_recent) "
                   "WHERE is_anomaly").fetchall()
    skew = db.sql("SELECT input, value FROM ML.VALIDATE_DATA_SKEW(MODEL wt.main.delay_model_noise, TABLE flights_recent)"
                  ).fetchall()
    assert drift == [("month",)]  # February–August against October–December
    assert [name for name, value in skew if value > 0.0001] == ["noise"]


def test_estimate_and_review_macros_equal_the_same_sql_run_directly(db):
    """late_estimates (sqlml.estimate_performance per month) and late_review (sqlml.review_queue)
    hold what ML.ESTIMATE_PERFORMANCE and ML.REVIEW_QUEUE return on the same rows."""
    estimates = db.sql("SELECT * FROM late_estimates ORDER BY window_start").fetchall()
    direct = db.sql(f"""SELECT * FROM ML.ESTIMATE_PERFORMANCE(MODEL {DELAY},
                        (SELECT *, make_date(2013, month, 20) AS flight_date FROM flights_recent),
                        STRUCT('flight_date' AS time_column, 'month' AS time_window)) ORDER BY window_start""").fetchall()
    counts = db.sql("SELECT make_date(2013, month, 1), count(*) FROM flights_recent GROUP BY 1 ORDER BY 1").fetchall()
    assert [(start, n) for start, n, *_ in estimates] == counts and len(counts) == 2
    assert estimates == [tuple(pytest.approx(v) if isinstance(v, float) else v for v in row) for row in direct]
    review = db.sql("SELECT * FROM late_review").fetchall()
    direct = db.sql(f"SELECT * FROM ML.REVIEW_QUEUE(MODEL {DELAY}, TABLE flights_recent, "
                    "STRUCT(25 AS top_k, 0.6 AS max_confidence))").fetchall()
    assert len(review) == 25 and review == direct
    assert [r[1] for r in review] == sorted(r[1] for r in review) and review[-1][1] <= 0.6


def test_recommend_macro_equals_ml_recommend_run_directly(db):
    """movie_recommendations (sqlml.recommend with top_k and exclude_rated) holds what ML.RECOMMEND returns."""
    table = db.sql("SELECT * FROM movie_recommendations ORDER BY user_id, predicted_rating DESC, movie_id").fetchall()
    direct = db.sql("SELECT * FROM ML.RECOMMEND(MODEL wt.main.movie_model, STRUCT(5 AS top_k, TRUE AS exclude_rated)) "
                    "ORDER BY user_id, predicted_rating DESC, movie_id").fetchall()
    rated = set(db.sql("""SELECT user_id, movie_id FROM (SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY
                          "timestamp" DESC, movie_id) <= greatest(1, round(0.2 * count(*) OVER (PARTITION BY user_id)))
                          AS held_out FROM movie_ratings) WHERE NOT held_out""").fetchall())
    assert len(table) == 15 * 5 and table == [tuple(pytest.approx(v) if isinstance(v, float) else v for v in r)
                                              for r in direct]
    assert not any((user, movie) in rated for _, user, movie in table)  # none rated in training
    columns = db.sql("SELECT * FROM movie_recommendations LIMIT 0").columns
    assert columns == ["predicted_rating", "user_id", "movie_id"]


# ---- audit table and registry views ----

def test_audit_table_has_one_row_per_training_run_appended_never_rewritten(built, db):
    columns = [c for (c,) in db.sql("SELECT column_name FROM information_schema.columns WHERE table_schema = 'sqlml' "
                                     "AND table_name = 'training_runs' ORDER BY ordinal_position").fetchall()]
    assert columns == AUDIT_COLUMNS
    runs = db.sql("SELECT * FROM sqlml.training_runs ORDER BY run_id").fetchall()
    assert set(built["audit_after_first"]) <= set(runs)  # the first build's rows are untouched
    assert len(runs) == len(built["audit_after_first"]) + 4  # noise model, penguin_weight, release_model twice
    registry = {(n, v): (o, m, f) for n, v, o, m, f in db.sql(
        "SELECT name, version, options, metrics, fingerprint FROM sqlml.models").fetchall()}
    assert sorted((r[1], r[2]) for r in runs) == sorted(registry)
    for run in runs:
        record = dict(zip(AUDIT_COLUMNS, run))
        options, metrics, fingerprint = registry[(record["model_name"], record["model_version"])]
        assert json.loads(record["options"]) == json.loads(options)
        assert json.loads(record["metrics"]) == json.loads(metrics)
        assert record["fingerprint"] == fingerprint and record["schema_version"] == 1
        assert record["dbt_node"] == "model.sqlml_integration_tests." + record["model_name"].split(".")[-1]
    delay = [dict(zip(AUDIT_COLUMNS, r)) for r in runs if r[1] == DELAY][0]
    assert json.loads(delay["options"])["auto_class_weights"] is True
    assert 0.8 < json.loads(delay["metrics"])["roc_auc"] < 1


def test_registry_views_list_every_model_and_version(db):
    versions = db.sql("SELECT model_name, model_version, metrics FROM sqlml_model_versions ORDER BY 1, 2").fetchall()
    assert versions == db.sql("SELECT name, version, metrics FROM sqlml.models ORDER BY 1, 2").fetchall()
    models = dict((n, (latest, count)) for n, latest, count in db.sql(
        "SELECT model_name, latest_version, versions FROM sqlml_models").fetchall())
    assert models[WEIGHT] == (2, 2) and models[DELAY] == (1, 1) and len(models) == 9


# ---- time series: sqlml.forecast, sqlml.detect_anomalies, sqlml_forecast_mape_at_most ----

def test_forecast_and_anomaly_tables_equal_the_same_sql_run_directly(db):
    table = db.sql("SELECT * FROM december_forecast ORDER BY origin, forecast_timestamp").fetchall()
    direct = db.sql(f"SELECT * FROM ML.FORECAST(MODEL {FORECAST}, STRUCT(31 AS horizon, 0.9 AS confidence_level)) "
                    "ORDER BY origin, forecast_timestamp").fetchall()
    assert len(table) == 3 * 31 and table == direct
    anomalies = db.sql("SELECT * FROM flights_anomalies ORDER BY origin, time_series_timestamp").fetchall()
    assert anomalies == db.sql(f"SELECT * FROM ML.DETECT_ANOMALIES(MODEL {FORECAST}, STRUCT(0.99 AS anomaly_prob_threshold)) "
                               "ORDER BY origin, time_series_timestamp").fetchall()
    assert len(anomalies) == 3 * 334


def test_the_forecast_mape_test_passes_and_fails_on_what_ml_evaluate_finds(built, db):
    def mape_tests(result) -> dict:
        return {r.node.test_metadata.kwargs["max_mape"]: r for r in result.result.results
                if getattr(r.node, "test_metadata", None) is not None
                and r.node.test_metadata.name == "sqlml_forecast_mape_at_most"}
    mape = dict(db.sql(f"SELECT origin, mean_absolute_percentage_error FROM ML.EVALUATE(MODEL {FORECAST}, "
                       "TABLE december_flights)").fetchall())
    assert 1 < min(mape.values()) and max(mape.values()) <= 15
    (passing,) = mape_tests(built["first"]).values()
    (failing,) = mape_tests(built["failing"]).values()
    assert passing.status == "pass"
    assert failing.status == "fail" and failing.failures == len(mape) == 3


# ---- threads ----

def test_models_trained_in_parallel_threads(built, db):
    """The default build runs with four threads: sqlml_model nodes trained at the same time."""
    spans = []
    for r in built["first"].result.results:
        if r.node.config.materialized == "sqlml_model" and r.status == "success":
            (execute,) = [t for t in r.timing if t.name == "execute"]
            spans.append((execute.started_at, execute.completed_at, r.thread_id))
    assert len(spans) == 8  # bigquery_weight, release_model, flights_forecast and movie_model too
    overlapping = [(a, b) for a in spans for b in spans if a is not b and a[0] < b[1] and b[0] < a[1]]
    assert overlapping and all(a[2] != b[2] for a, b in overlapping)
    assert db.sql(f"SELECT count(*) FROM sqlml.models WHERE name IN ('{DELAY}', '{SPECIES}', '{WEIGHT}')").fetchall() == [(4,)]


def test_model_cache_is_safe_to_share_between_threads(db):
    """Eight threads load and score three versions through a two-model cache at once."""
    from sqlml.engines.duckdb import DuckDBEngine
    from sqlml.model.loaded import ModelCache
    from sqlml.registry.versions import Registry
    registry = Registry(DuckDBEngine(db.duckdb))
    infos = [registry.resolve(WEIGHT, 1), registry.resolve(WEIGHT, 2), registry.resolve(SPECIES)]
    blobs = {info.fingerprint: registry.blob(info) for info in infos}
    data = db.sql("SELECT * FROM penguins WHERE body_mass_g IS NOT NULL").to_arrow_table()
    expected = [ModelCache().get(info, blobs.__getitem__).predict(data).column(0).to_pylist() for info in infos]
    cache, errors = ModelCache(size=2), []

    def work(seed: int) -> None:
        try:
            for i in range(30):
                k = (seed + i) % 3
                assert cache.get(infos[k], blobs.__getitem__).predict(data).column(0).to_pylist() == expected[k]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(cache._models) <= 2
