"""ML.VALIDATE_DATA_DRIFT and ML.VALIDATE_DATA_SKEW against distances computed here with NumPy and SciPy on
the binning docs/monitoring_drift.md documents (each side's own equal-width buckets, re-cut uniformly at
the union of both sides' edges; categories: the top num_rank_histogram_buckets values, NULLs left out)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
from scipy.spatial.distance import jensenshannon

from sqlml import datasets
from sqlml.errors import DataError, ParameterError, SqlmlError

DRIFT = "SELECT * FROM ML.VALIDATE_DATA_DRIFT(TABLE base, TABLE study{})"


def _rows(relation) -> dict:
    return {row["input"]: SimpleNamespace(**row) for row in relation.fetch_arrow_table().to_pylist()}


def _drift(conn, struct: str = "") -> dict:
    return _rows(conn.sql(DRIFT.format(f", STRUCT({struct})" if struct else "")))


def _jsd(p, q) -> float:
    return float(jensenshannon(np.asarray(p, float), np.asarray(q, float), base=2) ** 2)


def _hand_masses(x: np.ndarray, y: np.ndarray, buckets: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Each side's numpy histogram over its own range, its counts spread uniformly over the union of edges."""
    out = []
    union = np.union1d(np.histogram_bin_edges(x, buckets), np.histogram_bin_edges(y, buckets))
    for values in (x, y):
        counts, edges = np.histogram(values, buckets)
        cumulative = np.concatenate([[0], np.cumsum(counts)])
        out.append(np.diff(np.interp(union, edges, cumulative)))
    return out[0], out[1]


@pytest.fixture
def tables(conn):
    """``base`` and ``study``: a drifting number x, categories c (NULLs in base) and flag, and ``same``."""
    rng = np.random.default_rng(7)
    base = pa.table({"x": rng.normal(0, 1, 400), "c": rng.choice(["a", "b", "c", None], 400, p=[.5, .3, .1, .1]),
                     "same": np.arange(400) % 7, "flag": rng.random(400) < 0.3})
    study = pa.table({"x": rng.normal(0.8, 1.5, 400), "c": rng.choice(["a", "b", "d"], 400, p=[.2, .5, .3]),
                      "same": np.arange(400)[::-1] % 7, "flag": rng.random(400) < 0.6})  # same: the values reversed
    conn.duckdb.register("b_frame", base)
    conn.duckdb.register("s_frame", study)
    conn.sql("CREATE TABLE base AS SELECT * FROM b_frame; CREATE TABLE study AS SELECT * FROM s_frame ORDER BY same")
    return conn, base, study


def test_l_infinity_is_exact(tables):
    conn, base, study = tables
    got = _drift(conn)
    for column in ("c", "flag"):
        p = base[column].drop_null().to_pandas().astype(str).str.lower().value_counts(normalize=True)
        q = study[column].drop_null().to_pandas().astype(str).str.lower().value_counts(normalize=True)
        values = sorted(set(p.index) | set(q.index))
        expected = max(abs(p.get(v, 0.0) - q.get(v, 0.0)) for v in values)
        assert got[column].metric == "L_INFTY"
        assert got[column].value == pytest.approx(expected, abs=1e-15)
        assert got[column].is_anomaly == (expected > 0.3)


def test_jensen_shannon_equals_scipy_on_the_documented_bins(tables):
    conn, base, study = tables
    got = _drift(conn, "'JENSEN_SHANNON_DIVERGENCE' AS categorical_metric_type")
    p, q = _hand_masses(base["x"].to_numpy(), study["x"].to_numpy())
    assert got["x"].metric == "JENSEN_SHANNON_DIVERGENCE"
    assert got["x"].value == pytest.approx(_jsd(p, q), rel=1e-12)
    counts_b = base["c"].drop_null().to_pandas().value_counts()
    counts_s = study["c"].drop_null().to_pandas().value_counts()
    values = sorted(set(counts_b.index) | set(counts_s.index))
    assert got["c"].metric == "JENSEN_SHANNON_DIVERGENCE"
    assert got["c"].value == pytest.approx(_jsd([counts_b.get(v, 0) for v in values],
                                                [counts_s.get(v, 0) for v in values]), rel=1e-12)


def test_buckets_written_out_by_hand(conn):
    """Base 0,0,1,2,3,4 in 2 buckets: [0,2) 3 values, [2,4] 3; study 2,3,6: [2,4) 2, [4,6] 1. On the union
    0,2,4,6 the masses are 3,3,0 and 0,2,1; NULLs are in neither."""
    conn.sql("CREATE TABLE base AS SELECT unnest([0, 0, 1, 2, 3, 4, NULL]::DOUBLE[]) AS v")
    conn.sql("CREATE TABLE study AS SELECT unnest([2, 3, 6, NULL, NULL]::DOUBLE[]) AS v")
    got = _drift(conn, "2 AS num_histogram_buckets")
    assert got["v"].value == pytest.approx(_jsd([3, 3, 0], [0, 2, 1]), rel=1e-12)
    got = _drift(conn, "1 AS num_histogram_buckets")  # [0,4] 6 values, [2,6] 3: on 0,2,4,6 3,3,0 and 0,1.5,1.5
    assert got["v"].value == pytest.approx(_jsd([3, 3, 0], [0, 1.5, 1.5]), rel=1e-12)


def test_identical_column_is_zero_and_no_anomaly(tables):
    conn, _, _ = tables
    for struct in ("", "'JENSEN_SHANNON_DIVERGENCE' AS categorical_metric_type, 0 AS numerical_default_threshold, "
                       "0 AS categorical_default_threshold"):
        row = _drift(conn, struct)["same"]
        assert (row.value, row.is_anomaly) == (0.0, False)


def test_constant_columns_are_point_buckets_and_nan_and_infinities_have_their_own(conn):
    conn.sql("CREATE TABLE base AS SELECT 5.0 AS k, 5.0 AS j, unnest(['1', '2', 'nan', 'inf', '-inf']::DOUBLE[]) AS w")
    conn.sql("CREATE TABLE study AS SELECT 5.0 AS k, 6.0 AS j, unnest(['1', '2', 'nan', 'nan', '2']::DOUBLE[]) AS w")
    got = _drift(conn, "1 AS num_histogram_buckets")
    assert (got["k"].value, got["j"].value) == (0.0, 1.0)
    # w: [1,2] holds 2 and 3; then NaN 1 and 2, -inf 1 and 0, +inf 1 and 0.
    assert got["w"].value == pytest.approx(_jsd([2, 1, 1, 1], [3, 2, 0, 0]), rel=1e-12)


def test_per_column_thresholds_and_defaults_are_honoured(tables):
    conn, _, _ = tables
    plain = _drift(conn)
    assert {row.input: row.threshold for row in plain.values()} == {"x": 0.3, "c": 0.3, "same": 0.3, "flag": 0.3}
    x, c = plain["x"].value, plain["c"].value
    got = _drift(conn, f"[('x', {x + 0.01:.6f}), STRUCT('c', {c / 2:.6f})] AS thresholds, "
                       "0.0 AS numerical_default_threshold, 0.9 AS categorical_default_threshold")
    assert got["x"].threshold == float(f"{x + 0.01:.6f}") and not got["x"].is_anomaly
    assert got["c"].threshold == float(f"{c / 2:.6f}") and got["c"].is_anomaly
    assert (got["same"].threshold, got["same"].is_anomaly) == (0.0, False)  # 0 is not above 0
    assert (got["flag"].threshold, got["flag"].is_anomaly) == (0.9, False)


def test_rank_histogram_keeps_the_most_frequent_values(conn):
    conn.sql("CREATE TABLE base AS SELECT unnest(['a', 'a', 'a', 'b', 'b', 'c']) AS c")
    conn.sql("CREATE TABLE study AS SELECT unnest(['a', 'b', 'b', 'c', 'c', 'c']) AS c")
    got = _drift(conn, "2 AS num_rank_histogram_buckets")
    # top 2: base a 3, b 2 → 3/5, 2/5; study c 3, b 2 → b 2/5, c 3/5: max |p − q| = 3/5
    assert got["c"].value == pytest.approx(0.6, abs=1e-15)
    assert _drift(conn)["c"].value == pytest.approx(2 / 6, abs=1e-15)


def test_a_side_without_values_is_an_anomaly_of_unknown_size(conn):
    conn.sql("CREATE TABLE base AS SELECT range::DOUBLE AS v, NULL::VARCHAR AS s, NULL::DOUBLE AS n FROM range(5)")
    conn.sql("CREATE TABLE study AS SELECT NULL::DOUBLE AS v, NULL::VARCHAR AS s, range::VARCHAR AS n FROM range(5)")
    got = _drift(conn)
    assert (got["v"].value, got["v"].is_anomaly) == (None, True)
    assert (got["s"].value, got["s"].is_anomaly) == (None, False)
    assert "n" not in got  # a number on one side, a string on the other: left out, as BigQuery does


def test_weather_temperature_of_january_and_july_is_flagged(conn):
    datasets.load(conn.duckdb, "weather")
    got = _rows(conn.sql("""SELECT * FROM ML.VALIDATE_DATA_DRIFT(
        (SELECT temp, origin FROM weather WHERE month = 1), (SELECT temp, origin FROM weather WHERE month = 7))"""))
    january = conn.sql("SELECT temp FROM weather WHERE month = 1 AND temp IS NOT NULL").df().temp.to_numpy()
    july = conn.sql("SELECT temp FROM weather WHERE month = 7 AND temp IS NOT NULL").df().temp.to_numpy()
    assert got["temp"].value == pytest.approx(_jsd(*_hand_masses(january, july)), rel=1e-12)
    assert got["temp"].value > 0.9 and got["temp"].is_anomaly
    assert not got["origin"].is_anomaly  # the three airports report every hour in both months


def test_carrier_mix_of_two_adjacent_weeks_is_not_flagged(conn):
    datasets.load(conn.duckdb, "flights")
    week = "(SELECT carrier FROM flights WHERE month = 3 AND day BETWEEN {} AND {})"
    row = _rows(conn.sql(f"SELECT * FROM ML.VALIDATE_DATA_DRIFT({week.format(4, 10)}, {week.format(11, 17)})"))["carrier"]
    shares = [conn.sql(week.format(a, b)).df().carrier.value_counts(normalize=True) for a, b in ((4, 10), (11, 17))]
    expected = max(abs(shares[0].get(c, 0.0) - shares[1].get(c, 0.0)) for c in set(shares[0].index) | set(shares[1].index))
    assert (row.input, row.metric) == ("carrier", "L_INFTY")
    assert row.value == pytest.approx(expected, abs=1e-15)
    assert row.value < 0.01 and not row.is_anomaly


SKEW_MODEL = ("CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late']{}) "
              "AS SELECT carrier, origin, distance, dep_delay, is_late FROM flights")


def _skew(conn, serving: str, struct: str = "", model: str = "m") -> dict:
    struct = f", STRUCT({struct})" if struct else ""
    return _rows(conn.sql(f"SELECT * FROM ML.VALIDATE_DATA_SKEW(MODEL {model}, {serving}{struct})"))


def test_skew_of_the_training_data_against_itself_is_zero(flights):
    flights.sql(SKEW_MODEL.format(", data_split_method = 'NO_SPLIT'"))
    got = _skew(flights, "TABLE flights")
    assert list(got) == ["carrier", "origin", "distance", "dep_delay"]  # the inputs; not the label, not the rest
    assert all(row.value == 0.0 and not row.is_anomaly for row in got.values())


def test_skew_compares_with_the_training_split_and_flags_a_shifted_column(flights, random_split):
    flights.sql(SKEW_MODEL.format(""))
    got = _skew(flights, "TABLE flights")
    assert all(row.value < 0.05 and not row.is_anomaly for row in got.values())  # all rows vs the training 80 %
    table = flights.sql("SELECT carrier, dep_delay FROM flights").df()
    train, _ = random_split(len(table))
    p = table.carrier.iloc[train].value_counts(normalize=True)
    q = table.carrier.value_counts(normalize=True)
    assert got["carrier"].value == pytest.approx(max(abs(p.get(c, 0.0) - q[c]) for c in q.index), abs=1e-15)
    delays = table.dep_delay.to_numpy()
    present = ~np.isnan(delays)
    expected = _jsd(*_hand_masses(delays[train][present[train]], delays[present]))
    assert got["dep_delay"].value == pytest.approx(expected, rel=1e-9)
    shifted = _skew(flights, "(SELECT carrier, origin, distance + 3000 AS distance, dep_delay FROM flights)",
                    "[('carrier', 0.0001)] AS thresholds")
    assert shifted["distance"].value > 0.5 and shifted["distance"].is_anomaly
    assert shifted["carrier"].is_anomaly and shifted["carrier"].threshold == 0.0001
    assert not shifted["dep_delay"].is_anomaly


def test_skew_of_a_transform_model_reads_the_raw_columns(flights):
    flights.sql("""CREATE MODEL m TRANSFORM (ML.STANDARD_SCALER(distance) OVER () AS d, carrier, is_late)
                   OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late'])
                   AS SELECT carrier, distance, is_late FROM flights""")
    got = _skew(flights, "TABLE flights")
    assert {name: row.value for name, row in got.items()} == {"carrier": 0.0, "distance": 0.0}
    shifted = _skew(flights, "(SELECT carrier, distance * 3 AS distance FROM flights)")
    assert shifted["distance"].is_anomaly


def test_errors_name_the_problem(tables, flights, monkeypatch):
    conn, _, _ = tables
    cases = [
        ("'KL' AS categorical_metric_type", ParameterError,
         "The 'categorical_metric_type' parameter of ML.VALIDATE_DATA_DRIFT must be one of 'l_infty', "
         "'jensen_shannon_divergence'. Got 'KL'."),
        ("'L_INFTY' AS numerical_metric_type", ParameterError,
         "The 'numerical_metric_type' parameter of ML.VALIDATE_DATA_DRIFT must be one of 'jensen_shannon_divergence'"),
        ("1.0 AS numerical_default_threshold", ParameterError,
         r"must be a number in the range \[0, 1\). Got 1.0."),
        ("-0.1 AS categorical_default_threshold", ParameterError, r"in the range \[0, 1\). Got -0.1."),
        ("[('x', 1.5)] AS thresholds", ParameterError,
         r"must be an array of \(column name, number\) pairs, as \[\('col_a', 0.1\), \('col_b', 0.8\)\], each number "
         r"in the range \[0, 1\)"),
        ("[('nope', 0.1)] AS thresholds", ParameterError,
         "ML.VALIDATE_DATA_DRIFT's thresholds name column\\(s\\) 'nope' that are not compared; the columns compared "
         "are: x, c, same, flag."),
    ]
    for struct, error, message in cases:
        with pytest.raises(error, match=message):
            _drift(conn, struct)
    with pytest.raises(DataError, match="No column is in both the base and the study data: the first has x, c, same, "
                                        "flag; the second has y. Select the same column names on both sides."):
        conn.sql("SELECT * FROM ML.VALIDATE_DATA_DRIFT(TABLE base, (SELECT 1 AS y))")
    with pytest.raises(ParameterError, match=r"ML.VALIDATE_DATA_DRIFT takes two data arguments and no model"):
        conn.sql("SELECT * FROM ML.VALIDATE_DATA_DRIFT(TABLE base)")
    with pytest.raises(ParameterError, match="ML.PREDICT takes one data argument"):
        conn.sql("SELECT * FROM ML.PREDICT(MODEL m, TABLE base, TABLE study)")
    with pytest.raises(DataError, match="Column 'a' is neither a number nor a string, boolean, date or time"):
        conn.sql("SELECT * FROM ML.VALIDATE_DATA_DRIFT((SELECT [1] AS a), (SELECT [2] AS a))")

    from sqlml.train import fit
    monkeypatch.setattr(fit.drift, "statistics", lambda *args, **kwargs: None)  # as a version trained before them
    flights.sql(SKEW_MODEL.format(""))
    with pytest.raises(SqlmlError, match="Model 'm' version 1 has no training statistics: it was trained before sqlml "
                                         r"stored them. Retrain it \(CREATE OR REPLACE MODEL\)"):
        _skew(flights, "TABLE flights")


def test_model_card_with_data_shows_the_drift_table(flights):
    flights.sql(SKEW_MODEL.format(""))
    shifted = "(SELECT carrier, origin, distance + 3000 AS distance, dep_delay, is_late FROM flights)"
    card = flights.sql(f"SELECT model_card FROM ML.MODEL_CARD(MODEL m, {shifted})").fetchall()[0][0]
    skew = _skew(flights, shifted)
    section = card[card.index("## Monitoring"):card.index("## Warnings")]
    for name, row in skew.items():
        value = f"**{row.value:.4f}**" if row.is_anomaly else f"{row.value:.4f}"
        assert f"| {name} | {row.metric} | 0.3000 | {value} | {'yes' if row.is_anomaly else 'no'} |" in section
    assert "The data given drifted from the training data in distance (ML.VALIDATE_DATA_SKEW)." in card
    html = flights.sql(f"SELECT model_card FROM ML.MODEL_CARD(MODEL m, {shifted}, STRUCT('html' AS format))").fetchall()[0][0]
    assert '<table id="drift">' in html and html.count('<tr class="worst"><td class="text">distance</td>') == 1
    assert "## Monitoring" not in flights.sql("SELECT model_card FROM ML.MODEL_CARD(MODEL m)").fetchall()[0][0]


def test_example_runs_and_flags_what_it_says(conn):
    datasets.load(conn.duckdb, "flights")
    datasets.load(conn.duckdb, "weather")
    with open("examples/drift_flights.sql") as f:  # written for `sqlml run --dataset flights --dataset weather`
        assert conn.sql(f.read()).fetchall() == [(["dep_delay"],)]
    december = _skew(conn, "(SELECT * FROM flights_labelled WHERE month = 12)", model="delays")
    assert list(december) == ["sched_dep_time", "dep_delay", "distance", "carrier", "origin"]
    assert not any(row.is_anomaly for row in december.values())


def test_the_reference_examples_run_in_the_bigquery_dialect():
    """The STRUCTs of BigQuery's ML.VALIDATE_DATA_SKEW and ML.VALIDATE_DATA_DRIFT pages, as written there."""
    import sqlml
    with sqlml.connect(progress=lambda message: None, dialect="bigquery") as conn:
        conn.sql("CREATE TABLE serving AS SELECT 1.5 AS fare, 'a' AS company UNION ALL SELECT 2.5, 'b'")
        conn.sql("CREATE MODEL model_linear_reg OPTIONS (model_type = 'linear_reg', input_label_cols = ['label']) "
                 "AS SELECT fare, company, 2 AS label FROM serving")
        skew = conn.sql("""SELECT * FROM ML.VALIDATE_DATA_SKEW(MODEL model_linear_reg, TABLE serving,
            STRUCT(0.3 AS categorical_default_threshold, 0.2 AS numerical_default_threshold,
                   'JENSEN_SHANNON_DIVERGENCE' AS numerical_metric_type,
                   [STRUCT('fare', 0.15), STRUCT('company', 0.25)] AS thresholds))""").fetchall()
        drift = conn.sql("SELECT * FROM ML.VALIDATE_DATA_DRIFT(TABLE `serving`, TABLE `serving`, "
                         "STRUCT(0.2 AS categorical_default_threshold))").fetchall()
    assert skew == [("fare", "JENSEN_SHANNON_DIVERGENCE", 0.15, 0.0, False), ("company", "L_INFTY", 0.25, 0.0, False)]
    assert drift == [("fare", "JENSEN_SHANNON_DIVERGENCE", 0.3, 0.0, False), ("company", "L_INFTY", 0.2, 0.0, False)]
