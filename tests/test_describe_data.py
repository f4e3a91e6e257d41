"""ML.DESCRIBE_DATA, CREATE MODEL's data-check warnings, and max_training_rows / sample_fraction."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import held_out

from sqlml.errors import SqlmlError


@pytest.fixture
def planted(flights):
    """flights with a leaky arr_delay (is_late = arr_delay > 15), an identifier, a constant and a
    nearly-all-NULL column."""
    flights.sql("""CREATE TABLE planted AS
        SELECT *, 'JFK-2013' AS dataset, CASE WHEN flight_id % 50 = 0 THEN distance END AS rare
        FROM (SELECT row_number() OVER () AS flight_id, month, day, dep_delay, sched_dep_time, distance, hour, carrier,
                     origin, dest, arr_delay, arr_delay > 15 AS is_late
              FROM all_flights WHERE arr_delay IS NOT NULL AND day IN (1, 15))""")
    return flights


def _findings(conn, sql: str) -> dict[str, set[str]]:
    rows = conn.sql(sql).fetchall()
    return {name: {f["check"] for f in findings} for name, findings in rows}


def test_flags_leak_identifier_constant_and_nulls(planted):
    # Sanity: the planted arr_delay really is the label's source on every row.
    assert planted.sql("SELECT bool_and((arr_delay > 15) = is_late) FROM planted").fetchall()[0][0]
    found = _findings(planted, """SELECT name, findings FROM ML.DESCRIBE_DATA(
        (SELECT * FROM planted), STRUCT('is_late' AS label_col))""")
    assert "label_leakage" in found["arr_delay"]
    assert "identifier" in found["flight_id"]
    assert "constant" in found["dataset"]
    assert "mostly_null" in found["rare"]
    # Honest predictors are not flagged: dep_delay is strong but far from a perfect predictor.
    assert found["dep_delay"] == set() and found["carrier"] == set() and found["distance"] == set()


def test_finding_messages_say_why_and_what_to_do(planted):
    rows = planted.sql("""SELECT name, findings FROM ML.DESCRIBE_DATA(
        (SELECT * FROM planted), STRUCT('is_late' AS label_col))""").fetchall()
    leak = dict(rows)["arr_delay"][0]["message"]
    assert "predicts the label 'is_late'" in leak and "Remove it" in leak


def test_label_under_another_name(penguins):
    found = _findings(penguins, """SELECT name, findings FROM ML.DESCRIBE_DATA(
        (SELECT species, upper(species) AS kind, island, bill_length_mm FROM penguins), STRUCT('species' AS label_col))""")
    assert "label_leakage" in found["kind"]
    assert found["bill_length_mm"] == set()


def test_leaks_through_numbers_in_regression_and_multiclass(penguins):
    regression = _findings(penguins, """SELECT name, findings FROM ML.DESCRIBE_DATA(
        (SELECT body_mass_g, body_mass_g / 1000.0 AS kilograms, ln(body_mass_g) AS log_mass, flipper_length_mm
         FROM penguins WHERE body_mass_g IS NOT NULL), STRUCT('body_mass_g' AS label_col))""")
    assert "label_leakage" in regression["kilograms"] and "label_leakage" in regression["log_mass"]
    assert regression["flipper_length_mm"] == set()  # R² ≈ 0.76: a strong, honest predictor
    multiclass = _findings(penguins, """SELECT name, findings FROM ML.DESCRIBE_DATA(
        (SELECT species, CASE species WHEN 'Adelie' THEN 1.5 WHEN 'Gentoo' THEN 7.2 ELSE 3.3 END + random() / 10 AS code,
                bill_length_mm FROM penguins), STRUCT('species' AS label_col))""")
    assert "label_leakage" in multiclass["code"] and multiclass["bill_length_mm"] == set()


def test_imbalance_finding_on_label(conn):
    conn.sql("CREATE TABLE rare AS SELECT i, i % 40 = 0 AS fraud, random() AS noise FROM range(2000) t(i)")
    found = _findings(conn, """SELECT name, findings FROM ML.DESCRIBE_DATA((SELECT fraud, noise FROM rare),
        STRUCT('fraud' AS label_col))""")
    assert found["fraud"] == {"label_imbalance"}


def test_statistics_equal_pandas(flights):
    """BigQuery's columns (the ML.DESCRIBE_DATA reference, tests/test_bigquery_outputs.py checks them all)
    against pandas on the same rows, at the defaults: 2 quantiles, top 1 value."""
    frame = flights.sql("SELECT dep_delay, carrier, distance FROM flights").df()
    stats = flights.sql("""SELECT * FROM ML.DESCRIBE_DATA((SELECT dep_delay, carrier, distance FROM flights))""").df()
    stats = stats.set_index("name")
    for column in ("dep_delay", "distance"):
        row, values = stats.loc[column], frame[column].dropna()
        assert row["num_rows"] == len(frame)
        assert row["num_nulls"] == frame[column].isna().sum()
        assert row["num_zeros"] == (values == 0).sum()
        assert float(row["min"]) == values.min() and float(row["max"]) == values.max()
        assert row["mean"] == pytest.approx(values.mean(), rel=1e-12)
        assert row["stdev"] == pytest.approx(values.std(), rel=1e-12)
        assert row["median"] == values.median()
        assert list(row["quantiles"]) == [values.min(), values.sort_values().iloc[(len(values) + 1) // 2 - 1], values.max()]
    top = stats.loc["carrier", "top_values"]
    counts = frame["carrier"].value_counts()
    assert [(t["value"], t["count"]) for t in top] == sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:1]
    assert stats.loc["carrier", "unique"] == frame["carrier"].nunique()
    assert stats.loc["carrier", "avg_string_length"] == pytest.approx(frame["carrier"].str.len().mean(), rel=1e-12)


def test_describe_data_errors(flights):
    with pytest.raises(SqlmlError, match="label_col 'nope' is not a column"):
        flights.sql("SELECT * FROM ML.DESCRIBE_DATA((SELECT * FROM flights), STRUCT('nope' AS label_col))")
    with pytest.raises(SqlmlError, match="ML.DESCRIBE_DATA has no parameter 'target'. It takes: label_col, num_array_length_quantiles, num_quantiles, top_k."):
        flights.sql("SELECT * FROM ML.DESCRIBE_DATA((SELECT * FROM flights), STRUCT('x' AS target))")


def test_create_model_warns_and_records(planted):
    messages = []
    planted.executor.progress = messages.append
    planted.sql("""CREATE MODEL leaky OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late'], random_seed = 1)
        AS SELECT * EXCLUDE (rare, dataset) FROM planted""")
    warnings = [m for m in messages if m.startswith("Data check:")]
    assert any("'arr_delay'" in m and "predicts the label" in m for m in warnings)
    assert any("'flight_id'" in m and "identifier" in m for m in warnings)
    identifier = next(m for m in warnings if "identifier" in m)
    assert "SELECT * EXCLUDE (flight_id)" in identifier and "{name}" not in identifier
    notes = planted.sql("SELECT notes FROM ML.TRAINING_INFO(MODEL leaky)").fetchall()[0][0]
    assert "'arr_delay' alone predicts" in notes


def _class_shares(conn, sql: str) -> dict:
    rows = conn.sql(sql).fetchall()
    total = sum(n for _, n in rows)
    return {k: n / total for k, n in rows}


def test_max_training_rows_is_stratified(flights):
    flights.sql("""CREATE MODEL small OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late'],
        max_training_rows = 3000, random_seed = 7) AS SELECT * FROM flights""")
    (training_rows, eval_rows), = flights.sql("SELECT training_rows, eval_rows FROM sqlml.models WHERE name = 'small'").fetchall()
    total = flights.sql("SELECT count(*) FROM flights").fetchall()[0][0]
    assert training_rows == 3000
    assert eval_rows == len(held_out(flights.sql("SELECT * FROM flights").to_arrow_table(), seed=7))  # not sampled
    notes = flights.sql("SELECT notes FROM ML.TRAINING_INFO(MODEL small)").fetchall()[0][0]
    assert f"Training on 3,000 of {total - eval_rows:,} training rows (stratified by label" in notes


def test_stratified_sample_keeps_class_shares(flights):
    from sqlml.train import sample as sampling
    codes = flights.sql("SELECT is_late::INT FROM flights").fetchnumpy()["CAST(is_late AS INTEGER)"]
    rows = np.arange(len(codes))
    chosen = sampling.stratified(rows, codes, 2000, np.random.default_rng(3))
    assert len(chosen) == 2000 and len(set(chosen)) == 2000
    assert abs(codes[chosen].mean() - codes.mean()) < 0.01
    again = sampling.stratified(rows, codes, 2000, np.random.default_rng(3))
    assert (chosen == again).all()  # seeded


def test_sample_fraction_and_seed(flights):
    for name in ("a", "b"):
        flights.sql(f"""CREATE MODEL {name} OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late'],
            sample_fraction = 0.25, random_seed = 3) AS SELECT * FROM flights""")
    rows = flights.sql("SELECT training_rows, metrics->>'roc_auc' FROM sqlml.models ORDER BY name").fetchall()
    table = flights.sql("SELECT * FROM flights").to_arrow_table()
    assert rows[0] == rows[1]  # same seed, same sample, same model
    assert rows[0][0] == round((table.num_rows - len(held_out(table, seed=3))) * 0.25)


@pytest.mark.parametrize("option, message", [
    ("max_training_rows = 0", "'max_training_rows' option must be an integer in the range \\[1, 1,000,000,000,000\\]"),
    ("sample_fraction = 1.5", "'sample_fraction' option must be a number in the range \\(0, 1\\]"),
    ("sample_fraction = 0", "'sample_fraction' option must be a number in the range \\(0, 1\\]"),
    ("max_training_rows = 1", "keep 1 training row\\(s\\), fewer than the 2 classes"),
])
def test_sampling_option_errors(flights, option, message):
    with pytest.raises(SqlmlError, match=message):
        flights.sql(f"""CREATE MODEL bad OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late'], {option})
            AS SELECT * FROM flights""")


def test_example_runs(flights):
    with open("examples/describe_flights.sql") as f:  # written for `sqlml run --dataset flights` (the raw table)
        result = flights.sql(f.read().replace("FROM flights WHERE", "FROM all_flights WHERE"))
    rows = flights.sql("SELECT * EXCLUDE (flight_id, arr_delay) FROM late_flights").to_arrow_table()
    assert result.fetchall() == [(5000, len(held_out(rows, seed=1)))]
