"""One test suite, two engines: the same statements on DuckDB and on Spark (``local[2]``), each checked
against scikit-learn computed here on the same rows, and Spark's answers against DuckDB's (predictions
row by row to 1e-9, metrics to 1e-4). What an engine cannot do yet is marked at the test (notimpl).

The data: the penguins of BigQuery ML's tutorial, and the flights of the 1st and 15th of each month with
the delay label ``is_late``, loaded in the same row order on both engines. Models are trained once per
engine (module-scoped), since every Spark job costs seconds."""

from __future__ import annotations

import json
import os
from collections import OrderedDict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import ENGINES as ENGINE_NAMES
from conftest import connect_on
from sklearn import metrics as skm
from test_release_chain import tag

import sqlml
from sqlml import datasets
from sqlml.errors import DataError, ModelIntegrityError, SqlmlError
from sqlml.registry import deployments
from sqlml.sql import transform

PENGUINS_MODEL = """CREATE MODEL penguins_model OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g'])
AS SELECT * EXCLUDE (id) FROM penguins WHERE body_mass_g IS NOT NULL"""
SPECIES_MODEL = """CREATE MODEL species_model OPTIONS (model_type = 'logistic_reg', input_label_cols = ['species'])
AS SELECT species, island, bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, sex FROM penguins"""
#: The flights delay model, with a TRANSFORM whose compiled SQL (DuckDB's CAST … AS VARCHAR among it) is
#: stored once and written for the engine that runs it.
DELAY_MODEL = """CREATE MODEL delay_model
TRANSFORM (ML.STANDARD_SCALER(dep_delay) OVER () AS dep_delay, ML.ONE_HOT_ENCODER(carrier) OVER () AS carrier,
           ML.QUANTILE_BUCKETIZE(distance, 4) OVER () AS distance_bucket, ML.IMPUTER(hour, 'median') OVER () AS hour,
           origin, is_late)
OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late'])
AS SELECT * EXCLUDE (id) FROM flights WHERE day = 1"""
HELD_OUT = "(SELECT * FROM flights WHERE day = 15)"


def penguins() -> pa.Table:
    table = datasets.DATASETS["penguins"]()
    return table.append_column("id", pa.array(range(table.num_rows), pa.int64()))


def flights() -> pa.Table:
    """The 1st and 15th of each month, in the order of conftest's ``flights`` fixture."""
    all_flights = datasets.DATASETS["flights"]()
    kept = all_flights.filter(pc.and_(pc.is_valid(all_flights["arr_delay"]), pc.is_in(all_flights["day"], pa.array([1, 15]))))
    kept = kept.sort_by([(c, "ascending") for c in ("year", "month", "day", "sched_dep_time", "carrier", "flight")])
    columns = ["month", "day", "dep_delay", "sched_dep_time", "distance", "hour", "carrier", "origin", "dest"]
    table = kept.select(columns).append_column("is_late", pc.greater(kept["arr_delay"], 15))
    return table.append_column("id", pa.array(range(table.num_rows), pa.int64()))


_LABS: dict[str, object] = {}


def build_lab(engine: str, request, registry) -> object:
    """A connection on ``engine`` with the data loaded and the three models trained (once per module)."""
    if engine not in _LABS:
        conn = connect_on(engine, request, registry)
        for name, table in (("penguins", penguins()), ("flights", flights())):
            conn.executor.engine.create_table(name, table)
        for statement in (PENGUINS_MODEL, SPECIES_MODEL, DELAY_MODEL):
            conn.sql(statement)
        _LABS[engine] = conn
    return _LABS[engine]


@pytest.fixture(scope="module")
def lab(engine, request, tmp_path_factory):
    yield build_lab(engine, request, tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="module")
def reference(request, tmp_path_factory):
    """The same lab on DuckDB: Spark's answers must be DuckDB's."""
    return build_lab("duckdb", request, tmp_path_factory.mktemp("registry"))


def teardown_module() -> None:
    _LABS.clear()


def rows(result, order: str | None = "id") -> pa.Table:
    """A result of either engine as an Arrow table (sorted by ``order``: Spark keeps no row order)."""
    table = result.toArrow() if hasattr(result, "toArrow") else result.to_arrow_table()
    return table.sort_by(order) if order else table


def assert_same_rows(got: pa.Table, expected: pa.Table, tolerance: float = 1e-9) -> None:
    """Equal column by column, floats (also inside lists and structs) to ``tolerance``."""
    assert got.column_names == expected.column_names
    for name in got.column_names:
        left, right = got[name].to_pylist(), expected[name].to_pylist()
        np.testing.assert_equal(_shape(left), _shape(right))
        floats_left, floats_right = _floats(left), _floats(right)
        np.testing.assert_allclose(floats_left, floats_right, rtol=tolerance, atol=tolerance, err_msg=name)


def _floats(value) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in _floats(v)]
    if isinstance(value, list):
        return [f for v in value for f in _floats(v)]
    return []


def _shape(value):
    """``value`` with every float replaced by a marker: everything but the floats must be equal."""
    if isinstance(value, float):
        return "float"
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return value


# --- The penguins tutorial -------------------------------------------------------------------------


def test_penguins_predictions_are_the_estimators_row_by_row(lab, reference, engine):
    predicted = rows(lab.sql("SELECT * FROM ML.PREDICT(MODEL penguins_model, TABLE penguins)"))
    model = lab.executor.load("penguins_model")
    data = penguins()
    np.testing.assert_allclose(predicted["predicted_body_mass_g"].to_numpy(), _regression_predictions(model, data),
                               rtol=1e-9)
    assert predicted.column_names[:2] == ["predicted_body_mass_g", "species"]
    assert_same_rows(predicted, rows(reference.sql("SELECT * FROM ML.PREDICT(MODEL penguins_model, TABLE penguins)")))


def _regression_predictions(model, data: pa.Table) -> np.ndarray:
    """What the estimator predicts for ``data``, in the label's units (sqlml trains on a scaled label)."""
    mean, std = model.target_scale
    return model.estimator.predict(model.features(data)) * std + mean


def test_penguins_evaluation_is_sklearns(lab, reference, engine):
    got = rows(lab.sql("SELECT * FROM ML.EVALUATE(MODEL penguins_model, TABLE penguins)"), None).to_pylist()[0]
    data = penguins().filter(pc.is_valid(penguins()["body_mass_g"]))
    model = lab.executor.load("penguins_model")
    truth, predicted = data["body_mass_g"].to_numpy(), _regression_predictions(model, data)
    assert got["mean_absolute_error"] == pytest.approx(skm.mean_absolute_error(truth, predicted), rel=1e-9)
    assert got["r2_score"] == pytest.approx(skm.r2_score(truth, predicted), rel=1e-9)
    assert got["median_absolute_error"] == pytest.approx(skm.median_absolute_error(truth, predicted), rel=1e-9)
    expected = rows(reference.sql("SELECT * FROM ML.EVALUATE(MODEL penguins_model, TABLE penguins)"), None).to_pylist()[0]
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == (pytest.approx(value, rel=1e-4, abs=1e-9) if isinstance(value, float) else value), name


def test_species_probabilities_row_by_row(lab, reference, engine):
    query = "SELECT * FROM ML.PREDICT(MODEL species_model, (SELECT * FROM penguins WHERE sex IS NOT NULL))"
    predicted = rows(lab.sql(query))
    model = lab.executor.load("species_model")
    data = penguins().filter(pc.is_valid(penguins()["sex"]))
    probabilities = [[p["prob"] for p in row] for row in predicted["predicted_species_probs"].to_pylist()]
    np.testing.assert_allclose(probabilities, model.estimator.predict_proba(model.features(data)), rtol=1e-9, atol=1e-12)
    assert_same_rows(predicted, rows(reference.sql(query)))


def test_explanations_are_duckdbs(lab, reference, engine):
    query = "SELECT * FROM ML.EXPLAIN_PREDICT(MODEL penguins_model, TABLE penguins, STRUCT(3 AS top_k_features))"
    got = rows(lab.sql(query))
    assert got.num_rows == 344 and "top_feature_attributions" in got.column_names
    assert_same_rows(got, rows(reference.sql(query)))


def test_training_info_and_feature_info_are_duckdbs(lab, reference, engine):
    for query in ("SELECT * FROM ML.FEATURE_INFO(MODEL penguins_model)",
                  "SELECT iteration, loss, eval_loss FROM ML.TRAINING_INFO(MODEL penguins_model)"):
        assert_same_rows(rows(lab.sql(query), None), rows(reference.sql(query), None))


# --- The flights delay model -------------------------------------------------------------------------


def held_out_probabilities(conn) -> tuple[np.ndarray, np.ndarray]:
    """The held-out flights' labels, and the estimator's P(late), computed here from the model's own
    TRANSFORM on DuckDB (every engine's figures are checked against these)."""
    duck = _LABS["duckdb"].executor.engine
    model = conn.executor.load("delay_model")
    held_out = HELD_OUT[1:-1]
    data = duck.read_arrow(transform.wrap_sql(model.transform, held_out, duck.schema(held_out).names, dialect=duck.dialect))
    data = data.sort_by("id")
    late = list(model.classes).index(True)
    return data["is_late"].to_numpy(zero_copy_only=False), model.estimator.predict_proba(model.features(data))[:, late]


def test_delay_predictions_through_the_transform(lab, reference, engine):
    query = f"SELECT * FROM ML.PREDICT(MODEL delay_model, {HELD_OUT})"
    predicted = rows(lab.sql(query))
    _, probability = held_out_probabilities(lab)
    np.testing.assert_allclose([p[1]["prob"] for p in predicted["predicted_is_late_probs"].to_pylist()], probability,
                               rtol=1e-9, atol=1e-12)
    assert_same_rows(predicted, rows(reference.sql(query)))
    transformed = f"SELECT * FROM ML.TRANSFORM(MODEL delay_model, {HELD_OUT})"
    assert_same_rows(rows(lab.sql(transformed)), rows(reference.sql(transformed)))


def test_delay_metrics_are_sklearns(lab, reference, engine):
    late, probability = held_out_probabilities(lab)
    got = rows(lab.sql(f"SELECT * FROM ML.EVALUATE(MODEL delay_model, {HELD_OUT})"), None).to_pylist()[0]
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(late, probability), rel=1e-9)
    assert got["log_loss"] == pytest.approx(skm.log_loss(late, np.column_stack([1 - probability, probability])), rel=1e-9)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(late, probability >= 0.5), rel=1e-12)
    assert got["pr_auc"] == pytest.approx(skm.average_precision_score(late, probability), rel=1e-9)
    matrix = rows(lab.sql(f"SELECT * FROM ML.CONFUSION_MATRIX(MODEL delay_model, {HELD_OUT})"), "expected_label")
    np.testing.assert_array_equal([matrix["false"].to_pylist(), matrix["true"].to_pylist()],
                                  skm.confusion_matrix(late, probability >= 0.5).T)
    expected = rows(reference.sql(f"SELECT * FROM ML.EVALUATE(MODEL delay_model, {HELD_OUT})"), None).to_pylist()[0]
    assert got == {k: pytest.approx(v, rel=1e-4) if isinstance(v, float) else v for k, v in expected.items()}
    for query in (f"SELECT * FROM ML.ROC_CURVE(MODEL delay_model, {HELD_OUT})",
                  f"SELECT * FROM ML.THRESHOLD_METRICS(MODEL delay_model, {HELD_OUT}, GENERATE_ARRAY(0.1, 0.9, 0.1))"):
        assert_same_rows(rows(lab.sql(query), "threshold"), rows(reference.sql(query), "threshold"), tolerance=1e-4)


def test_roc_curve_at_given_thresholds_counts_rows(lab, engine):
    late, probability = held_out_probabilities(lab)
    curve = rows(lab.sql(f"SELECT * FROM ML.ROC_CURVE(MODEL delay_model, {HELD_OUT}, GENERATE_ARRAY(0.2, 0.8, 0.3))"),
                 "threshold")
    assert curve["threshold"].to_pylist() == pytest.approx([0.2, 0.5, 0.8])
    for threshold, tp, fp in zip([0.2, 0.5, 0.8], curve["true_positives"].to_pylist(), curve["false_positives"].to_pylist()):
        assert (tp, fp) == (int(((probability >= threshold) & late).sum()), int(((probability >= threshold) & ~late).sum()))


def test_sliced_evaluation_by_origin(lab, reference, engine):
    query = f"SELECT * FROM ML.EVALUATE(MODEL delay_model, {HELD_OUT}, STRUCT('origin' AS slice_by))"
    got = rows(lab.sql(query), None).sort_by([("slice_value", "ascending")])
    late, probability = held_out_probabilities(lab)
    origin = rows(_LABS["duckdb"].sql(f"SELECT id, origin FROM {HELD_OUT}"))["origin"].to_numpy(zero_copy_only=False)
    for row in got.to_pylist():
        if row["slice_value"] is not None:
            chosen = origin == row["slice_value"]
            assert row["row_count"] == chosen.sum()
            assert row["roc_auc"] == pytest.approx(skm.roc_auc_score(late[chosen], probability[chosen]), rel=1e-9)
    assert_same_rows(got, rows(reference.sql(query), None).sort_by([("slice_value", "ascending")]), tolerance=1e-4)


@pytest.mark.parametrize("query", [
    "SELECT * FROM ML.VALIDATE_DATA_DRIFT((SELECT * FROM flights WHERE month <= 6), (SELECT * FROM flights WHERE month > 6))",
    f"SELECT * FROM ML.VALIDATE_DATA_SKEW(MODEL delay_model, {HELD_OUT})",
    f"SELECT * FROM ML.ESTIMATE_PERFORMANCE(MODEL delay_model, {HELD_OUT})",
])
def test_monitoring_is_duckdbs(lab, reference, engine, query):
    order = "input" if "VALIDATE" in query else None
    assert_same_rows(rows(lab.sql(query), order), rows(reference.sql(query), order), tolerance=1e-9)


#: Both halves of the year, with NaN, infinities, a constant (a point bucket), a boolean and a date.
ODD_SIDES = """(SELECT dep_delay, carrier, is_late, make_date(2013, month, day) AS flight_date, 1.5 AS constant,
  CASE WHEN dep_delay > 120 THEN CAST('NaN' AS DOUBLE) WHEN dep_delay < -10 THEN CAST('-Infinity' AS DOUBLE)
       WHEN dep_delay > 60 THEN CAST('Infinity' AS DOUBLE) ELSE distance END AS odd
  FROM flights WHERE month {} 6)"""


def refuse_reading_rows_on_the_driver(conn, engine: str, monkeypatch) -> None:
    """On Spark, reading a query's rows on the driver fails from here on: the statement must aggregate."""
    def refused(*args, **kwargs):
        raise AssertionError("the input rows were read on the driver")
    if engine == "spark":
        for method in ("input_batches", "read_batches", "read_arrow"):
            monkeypatch.setattr(conn.executor.engine, method, refused)


def test_drift_and_skew_are_aggregated_by_the_engine_and_equal_numpys(lab, reference, engine, monkeypatch):
    """On Spark, Spark aggregates the columns: the driver reads no input row. The answers are DuckDB's,
    and dep_delay's and carrier's distances those computed here with NumPy."""
    refuse_reading_rows_on_the_driver(lab, engine, monkeypatch)
    drift_query = (f"SELECT * FROM ML.VALIDATE_DATA_DRIFT({ODD_SIDES.format('<=')}, {ODD_SIDES.format('>')}, "
                   "STRUCT(7 AS num_histogram_buckets, 3 AS num_rank_histogram_buckets))")
    skew_query = f"SELECT * FROM ML.VALIDATE_DATA_SKEW(MODEL delay_model, {HELD_OUT})"
    for query in (drift_query, skew_query):
        got = rows(lab.sql(query), "input")
        assert_same_rows(got, rows(reference.sql(query), "input"), tolerance=1e-9)
    got = {row["input"]: row["value"] for row in rows(lab.sql(drift_query.replace("3 AS", "50 AS")), "input").to_pylist()}
    assert set(got) == {"dep_delay", "carrier", "is_late", "flight_date", "constant", "odd"}
    table = flights()
    first, second = pc.less_equal(table["month"], 6), pc.greater(table["month"], 6)
    delays = [table.filter(side)["dep_delay"].drop_null().to_numpy() for side in (first, second)]
    union = np.union1d(*(np.histogram_bin_edges(d, 7) for d in delays))
    masses = [np.diff(np.interp(union, np.histogram_bin_edges(d, 7), np.r_[0, np.cumsum(np.histogram(d, 7)[0])]))
              for d in delays]
    p, q = (m / m.sum() for m in masses)
    middle = (p + q) / 2
    jsd = sum(float(np.sum(x[x > 0] * np.log2(x[x > 0] / middle[x > 0]))) for x in (p, q)) / 2
    assert got["dep_delay"] == pytest.approx(jsd, rel=1e-9)
    carriers = [table.filter(side)["carrier"].to_numpy(zero_copy_only=False) for side in (first, second)]
    names = np.union1d(*carriers)
    shares = [np.array([(c == name).mean() for name in names]) for c in carriers]
    assert got["carrier"] == pytest.approx(np.abs(shares[0] - shares[1]).max(), rel=1e-9)
    assert got["constant"] == 0.0


def test_estimate_performance_is_counted_by_the_engine_and_equal_duckdbs(lab, reference, engine, monkeypatch):
    """On Spark, the executors score and Spark counts the distinct scored rows per window: the driver
    reads no input row. The estimates are DuckDB's, per quarter as over all rows."""
    refuse_reading_rows_on_the_driver(lab, engine, monkeypatch)
    dated = "(SELECT *, make_date(2013, month, day) AS flight_date FROM flights WHERE day = 15)"
    for query in (f"SELECT * FROM ML.ESTIMATE_PERFORMANCE(MODEL delay_model, {HELD_OUT})",
                  f"SELECT * FROM ML.ESTIMATE_PERFORMANCE(MODEL delay_model, {dated}, "
                  "STRUCT('flight_date' AS time_column, 'quarter' AS time_window))"):
        got, expected = rows(lab.sql(query), None), rows(reference.sql(query), None)
        assert_same_rows(got, expected, tolerance=1e-9)
    assert got["row_count"].to_pylist() == [
        pc.sum(pc.equal(pc.divide(pc.subtract(flights().filter(pc.equal(flights()["day"], 15))["month"], 1), 3), q)).as_py()
        for q in range(4)]


def test_ab_serving_splits_rows_as_duckdb(lab, reference, engine):
    for conn in {id(lab): lab, id(reference): reference}.values():
        if len(conn.executor.registry.versions("species_model")) == 1:
            conn.sql(SPECIES_MODEL.replace("CREATE MODEL", "CREATE OR REPLACE MODEL")
                     .replace("'logistic_reg'", "'logistic_reg', l2_reg = 5.0"))
            conn.sql("ALTER MODEL species_model VERSION 2 SET ALIAS challenger")
    query = ("SELECT * FROM ML.PREDICT(MODEL species_model, (SELECT * FROM penguins WHERE sex IS NOT NULL), "
             "STRUCT(0.5 AS challenger_fraction, 'id' AS split_key))")
    got = rows(lab.sql(query))
    assert set(got["model_version"].to_pylist()) == {1, 2}
    assert_same_rows(got, rows(reference.sql(query)))


# --- Engine-neutral behaviour ------------------------------------------------------------------------


def test_generate_array_is_written_for_the_engine(econn):
    got = rows(econn.sql("SELECT GENERATE_ARRAY(0, 1, 0.25) AS a, GENERATE_ARRAY(3, 1) AS none"), None).to_pylist()
    assert got == [{"a": [0.0, 0.25, 0.5, 0.75, 1.0], "none": []}]


def test_a_missing_feature_column_is_named(lab, engine):
    with pytest.raises(DataError, match="flipper_length_mm"):
        rows(lab.sql("SELECT * FROM ML.PREDICT(MODEL penguins_model, "
                     "(SELECT * EXCLUDE (flipper_length_mm) FROM penguins))"))


def test_training_on_at_most_max_training_rows_says_so(lab, engine):
    lab.sql("CREATE OR REPLACE MODEL sampled OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late'], "
            "max_training_rows = 2000) AS SELECT carrier, origin, dep_delay, is_late FROM flights")
    (notes,) = {row["notes"] for row in rows(lab.sql("SELECT * FROM ML.TRAINING_INFO(MODEL sampled)"), None).to_pylist()}
    (info,) = lab.executor.registry.versions("sampled")[-1:]
    assert info.training_rows <= 2000 and "2,000" in notes
    if engine == "spark":  # Spark draws the sample on its executors; the driver collects at most 2,000 rows
        assert "a sample Spark drew" in notes and info.training_rows + info.eval_rows <= 2000


def open_registry(engine: str, request, storage) -> object:
    """A session on the registry at ``storage`` that outlives it: a database file, or Spark's folder."""
    if engine == "spark":
        return connect_on(engine, request, storage)
    return sqlml.connect(str(storage), progress=lambda message: None)


def test_the_registry_persists_and_refuses_a_forged_row(engine, request, tmp_path):
    storage = tmp_path / ("models.duckdb" if engine == "duckdb" else "registry")
    first = open_registry(engine, request, storage)
    first.executor.engine.create_table("penguins", penguins())
    first.sql(SPECIES_MODEL)
    expected = rows(first.sql("SELECT * FROM ML.PREDICT(MODEL species_model, (SELECT * FROM penguins WHERE sex IS NOT NULL))"))
    first.close()
    again = open_registry(engine, request, storage)
    assert_same_rows(rows(again.sql("SELECT * FROM ML.PREDICT(MODEL species_model, "
                                    "(SELECT * FROM penguins WHERE sex IS NOT NULL))")), expected, tolerance=0)
    again.sql("UPDATE sqlml.models SET label = 'island' WHERE name = 'species_model'")
    with pytest.raises(ModelIntegrityError, match="does not match its signature"):
        again.sql("SELECT * FROM ML.PREDICT(MODEL species_model, TABLE penguins)")
    again.close()


# --- Releases: the same registry code, the same chain of custody (docs/release.md) ---------------------

SEXED = "(SELECT * FROM penguins WHERE sex IS NOT NULL)"


def species_probabilities(conn, model: str) -> np.ndarray:
    """P(species) of every sexed penguin, in id order, as ``MODEL <model>`` serves them."""
    scored = rows(conn.sql(f"SELECT id, predicted_species_probs FROM ML.PREDICT(MODEL {model}, {SEXED})"))
    return np.array([[p["prob"] for p in row] for row in scored["predicted_species_probs"].to_pylist()])


@pytest.fixture
def released(engine, request, tmp_path, monkeypatch):
    """A registry where species_model was trained twice (each deployed), then rolled back to version 1 and
    version 2 named challenger; with what versions 1 and 2 predict, and ``reopen()``, a new session that
    has verified nothing yet (as another process)."""
    monkeypatch.setattr(deployments, "_VERIFIED", OrderedDict())
    storage = tmp_path / ("models.duckdb" if engine == "duckdb" else "registry")
    conn = open_registry(engine, request, storage)
    conn.executor.engine.create_table("penguins", penguins())
    always = SPECIES_MODEL.replace("'logistic_reg'", "'logistic_reg', deploy = 'always'")
    conn.sql(always)
    conn.sql(always.replace("CREATE MODEL", "CREATE OR REPLACE MODEL").replace("'always'", "'always', l2_reg = 5.0"))
    versions = [species_probabilities(conn, f"species_model VERSION {n}") for n in (1, 2)]
    np.testing.assert_array_equal(species_probabilities(conn, "species_model"), versions[1])
    conn.sql("ALTER MODEL species_model ROLLBACK")
    conn.sql("ALTER MODEL species_model VERSION 2 SET ALIAS challenger")

    def reopen():
        conn.close()
        deployments._VERIFIED.clear()
        return open_registry(engine, request, storage)
    return conn, versions, reopen


def test_deploy_rollback_and_aliases_serve_as_the_signed_log_says(released, engine):
    conn, (first, second), reopen = released
    assert not np.allclose(first, second)  # the two versions are told apart by what they predict
    np.testing.assert_array_equal(species_probabilities(conn, "species_model"), first)
    np.testing.assert_array_equal(species_probabilities(conn, "species_model VERSION challenger"), second)
    conn = reopen()
    log = rows(conn.sql("SELECT * FROM sqlml.deployments WHERE model = 'species_model'"), "seq").to_pylist()
    assert [(e["action"], e["version"], e["alias"]) for e in log] == [
        ("create", None, None), ("trained_deployed", 1, None), ("trained_deployed", 2, None), ("rollback", 1, None),
        ("alias", 2, "challenger")]
    previous = ""
    for entry in log:  # the documented chain, recomputed with hmac: each entry signs the one before it
        fields = {k: v for k, v in entry.items() if k != "signature"}
        assert entry["signature"] == tag({"deployment": fields, "previous": previous}), entry["seq"]
        previous = entry["signature"]
    conn.sql("ALTER MODEL species_model DEPLOY VERSION challenger")
    np.testing.assert_array_equal(species_probabilities(conn, "species_model"), second)
    assert rows(conn.models(), "version").select(["version", "deployed", "aliases"]).to_pylist() == [
        {"version": 1, "deployed": False, "aliases": []}, {"version": 2, "deployed": True, "aliases": ["challenger"]}]
    conn.close()


def test_a_forged_log_entry_is_refused_and_undoing_it_serves_again(released, engine):
    conn, (first, _), reopen = released
    conn.sql("UPDATE sqlml.deployments SET version = 2 WHERE model = 'species_model' AND action = 'rollback'")
    conn = reopen()
    forged = "Entry 4 of the deployments log of model 'species_model' does not match its signature"
    with pytest.raises(ModelIntegrityError, match=forged):
        species_probabilities(conn, "species_model")
    for statement in ("ALTER MODEL species_model ROLLBACK", "ALTER MODEL species_model DEPLOY VERSION 2"):
        with pytest.raises(ModelIntegrityError, match=forged):
            conn.sql(statement)
    conn.sql("UPDATE sqlml.deployments SET version = 1 WHERE model = 'species_model' AND action = 'rollback'")
    np.testing.assert_array_equal(species_probabilities(conn, "species_model"), first)
    conn.close()


def test_a_view_over_predict_is_persistent_on_duckdb_and_temporary_on_spark(released, engine):
    """DuckDB keeps the view and it serves what is deployed when it runs; a Spark view cannot call a
    temporary function, so there the view is the session's temporary view, scoring when read with the
    version served when it was created, and it says so (docs/scale_out.md#views)."""
    conn, (first, second), _ = released
    notes = []
    conn.executor.progress = notes.append
    view = ("CREATE {} AS SELECT id, predicted_species_probs FROM ML.PREDICT(MODEL species_model, "
            f"{SEXED})")

    def served() -> np.ndarray:
        scored = rows(conn.sql("SELECT * FROM species_view"))
        return np.array([[p["prob"] for p in row] for row in scored["predicted_species_probs"].to_pylist()])
    conn.sql(view.format("VIEW species_view"))
    np.testing.assert_allclose(rtol=1e-9, atol=0, actual=served(), desired=first)  # version 1: the rollback's
    conn.sql("ALTER MODEL species_model DEPLOY VERSION 2")
    np.testing.assert_allclose(rtol=1e-9, atol=0, actual=served(), desired=second if engine == "duckdb" else first)
    conn.sql(view.format("OR REPLACE VIEW species_view"))
    np.testing.assert_allclose(rtol=1e-9, atol=0, actual=served(), desired=second)
    conn.sql(view.format("VIEW IF NOT EXISTS species_view").replace("species_model,", "species_model VERSION 1,"))
    np.testing.assert_allclose(rtol=1e-9, atol=0, actual=served(), desired=second)  # kept as it was
    with pytest.raises(SqlmlError, match="species_view"):
        conn.sql(view.format("VIEW species_view"))  # exists already
    if engine == "spark":
        (table,) = [t for t in conn.executor.engine.spark.catalog.listTables() if t.name == "species_view"]
        assert table.isTemporary
        assert [n for n in notes if n.startswith("View 'species_view'")] == [
            "View 'species_view' is a temporary view of this session (a Spark view cannot call sqlml's scoring "
            "function): it scores when read, with the version of 'species_model' served now; after a DEPLOY or "
            "ROLLBACK, create it again (docs/scale_out.md#views)."] * 2
    conn.close()


def test_sqlml_run_on_spark_prints_duckdbs_answers(spark_session, tmp_path):
    """examples/penguins.sql (BigQuery's tutorial) run by ``sqlml run --engine spark``."""
    from click.testing import CliRunner

    from sqlml.cli import main
    printed = {}
    for engine in ENGINE_NAMES:
        result = CliRunner().invoke(main, ["run", "examples/penguins.sql", "--dataset", "penguins", "--format", "json",
                                           "--engine", engine, "--registry", str(tmp_path / "registry")])
        assert result.exit_code == 0 and "Traceback" not in result.output, result.output
        printed[engine] = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(printed["spark"]) == len(printed["duckdb"]) == 1 + 7 + 5  # ML.EVALUATE, 7 ML.WEIGHTS, 5 predictions
    for got, expected in zip(printed["spark"], printed["duckdb"]):
        assert got == {k: pytest.approx(v, rel=1e-9) if isinstance(v, float) else v for k, v in expected.items()}


# --- A model trained on DuckDB, copied to Spark (sqlml models copy) -------------------------------------

COPIED_HELD_OUT = "(SELECT * FROM {table} WHERE day = 15)"


@pytest.fixture(scope="module")
def trained_on_duckdb(tmp_path_factory):
    """A DuckDB database file holding delay_model (with its TRANSFORM) and species_model, and what
    ML.PREDICT of delay_model gives on DuckDB for the held-out flights."""
    path = tmp_path_factory.mktemp("duckdb") / "trained.duckdb"
    with sqlml.connect(str(path), progress=lambda message: None) as duck:
        for name, table in (("penguins", penguins()), ("flights", flights())):
            duck.executor.engine.create_table(name, table)
        duck.sql(DELAY_MODEL)
        duck.sql(SPECIES_MODEL)
        expected = rows(duck.sql(f"SELECT * FROM ML.PREDICT(MODEL delay_model, {HELD_OUT})"))
    return path, expected


def copy_cli(*arguments: str):
    from click.testing import CliRunner

    from sqlml.cli import main
    return CliRunner().invoke(main, ["models", "copy", *arguments])


def manifests(registry) -> list[str]:
    return sorted(os.listdir(registry / "_log")) if (registry / "_log").exists() else []


def test_a_model_copied_from_duckdb_scores_on_spark_as_on_duckdb(trained_on_duckdb, spark_session, request, tmp_path):
    path, expected = trained_on_duckdb
    registry = tmp_path / "registry"
    result = copy_cli("delay_model", "--db", str(path), "--to-registry", str(registry))
    assert result.exit_code == 0, result.output
    assert f"Copied model 'delay_model' from {path} to the Spark registry at {registry} as version 1 (deployed)." \
        in result.output
    spark = connect_on("spark", request, registry)
    spark.executor.engine.register_table("copied_flights", flights())
    got = rows(spark.sql(f"SELECT * FROM ML.PREDICT(MODEL delay_model, "
                         f"{COPIED_HELD_OUT.format(table='copied_flights')})"))
    assert_same_rows(got, expected)  # row by row, probabilities to 1e-9
    with sqlml.connect(str(path), read_only=True, progress=lambda message: None) as duck:
        (source,) = duck.executor.registry.versions("delay_model")
    (copied,) = spark.executor.registry.versions("delay_model")
    assert copied.damage is None and (copied.fingerprint, copied.metrics, copied.options, copied.input_schema) == \
        (source.fingerprint, source.metrics, source.options, source.input_schema)
    assert (source.query, copied.query) == ("SELECT * EXCLUDE (id) FROM flights WHERE day = 1",
                                            "SELECT * EXCEPT (id) FROM flights WHERE day = 1")  # in Spark's words
    (entry,) = rows(spark.sql("SELECT action, reason FROM sqlml.deployments WHERE model = 'delay_model' "
                              "AND action <> 'create'"), None).to_pylist()
    assert entry["action"] == "trained_deployed" and f"copied from DuckDB database {path}, model 'delay_model' version 1" \
        in entry["reason"]
    # A second copy is stored beside the deployed one, not deployed.
    assert spark.copy_model("delay_model", sqlml.connect(str(path), read_only=True)) == 2
    assert [(v["version"], v["deployed"]) for v in rows(spark.models(), "version").to_pylist()] == [(1, True), (2, False)]


def tamper(path, statement: str) -> None:
    with sqlml.connect(str(path), progress=lambda message: None) as duck:
        duck.sql(statement)


def test_a_tampered_source_is_refused_by_name_and_nothing_is_written(trained_on_duckdb, tmp_path):
    source = tmp_path / "tampered.duckdb"
    source.write_bytes(trained_on_duckdb[0].read_bytes())
    registry = tmp_path / "registry"
    tamper(source, "UPDATE sqlml.models SET label = 'dep_delay' WHERE name = 'delay_model'")
    result = copy_cli("delay_model", "--db", str(source), "--to-registry", str(registry))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Error: Model 'delay_model' version 1 is damaged and cannot be used: its registry row does not match its " \
           "signature" in result.output
    # Bytes swapped for another model's (a signed envelope, but not the one the row names).
    tamper(source, "UPDATE sqlml.models SET model = (SELECT model FROM sqlml.models WHERE name = 'delay_model') "
                   "WHERE name = 'species_model'")
    result = copy_cli("species_model", "--db", str(source), "--to-registry", str(registry))
    assert result.exit_code == 1
    assert "Error: Model bytes of 'species_model' version 1 failed verification" in result.output
    assert manifests(registry) == []  # nothing was stored


def test_a_copy_that_fails_while_storing_leaves_nothing(trained_on_duckdb, request, tmp_path, monkeypatch):
    registry = tmp_path / "registry"
    spark = connect_on("spark", request, registry)
    source = sqlml.connect(str(trained_on_duckdb[0]), read_only=True, progress=lambda message: None)
    spark.copy_model("species_model", source)
    before = manifests(registry)
    files = sorted(p.name for p in registry.rglob("*.parquet"))

    def broken(*args):  # fails inside the store's transaction, after the version's row was inserted
        raise DataError("the log could not be written")
    monkeypatch.setattr(spark.executor.registry, "record", broken)
    with pytest.raises(DataError, match="the log could not be written"):
        spark.copy_model("delay_model", source)
    monkeypatch.undo()
    assert manifests(registry) == before and sorted(p.name for p in registry.rglob("*.parquet")) == files
    assert [v.name for v in spark.executor.registry.versions()] == ["species_model"]
    source.close()
