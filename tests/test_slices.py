"""Sliced ML.EVALUATE: every slice's metrics equal sklearn.metrics on that group's rows of ML.PREDICT."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.dummy import DummyClassifier

from sqlml.errors import SqlmlError
from sqlml.model.loaded import LoadedModel

TRAIN = "SELECT * EXCLUDE (month, day) FROM flights WHERE month <= 9"
TEST = "(SELECT * EXCLUDE (month, day) FROM flights WHERE month > 9)"


@pytest.fixture
def delays(flights):
    flights.sql(f"CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late'], "
                f"data_split_method = 'NO_SPLIT') AS {TRAIN}")
    return flights


def _expected(group: pd.DataFrame, prior: DummyClassifier) -> dict:
    """sklearn.metrics on one group's rows of ML.PREDICT, and the baseline's roc_auc and accuracy."""
    y, predicted = group.is_late, group.predicted_is_late
    prob = group.predicted_is_late_probs.map(lambda ps: next(p["prob"] for p in ps if p["label"]))
    two_classes = y.nunique() == 2
    baseline = prior.predict_proba(np.zeros((len(group), 1)))
    return {
        "row_count": len(group),
        "precision": skm.precision_score(y, predicted, zero_division=0),
        "recall": skm.recall_score(y, predicted, zero_division=0),
        "accuracy": skm.accuracy_score(y, predicted),
        "f1_score": skm.f1_score(y, predicted, zero_division=0),
        "log_loss": skm.log_loss(y, np.column_stack([1 - prob, prob]), labels=[False, True]),
        "roc_auc": skm.roc_auc_score(y, prob) if two_classes else None,
        "baseline_accuracy": skm.accuracy_score(y, np.zeros(len(group), dtype=bool)),
        "baseline_log_loss": skm.log_loss(y, baseline, labels=[False, True]),
    }


def _assert_row(row: pd.Series, expected: dict) -> None:
    for name, value in expected.items():
        if value is None:
            assert pd.isna(row[name]), name
        else:
            assert row[name] == pytest.approx(value, abs=1e-9), (row.slice_column, row.slice_value, name)


def test_slices_by_carrier_and_origin_equal_sklearn_per_group(delays):
    out = delays.sql(f"SELECT * FROM ML.EVALUATE(MODEL m, {TEST}, STRUCT(['carrier', 'origin'] AS slice_by))").df()
    scored = delays.sql(f"SELECT * FROM ML.PREDICT(MODEL m, {TEST})").df()
    train_y = delays.sql(f"SELECT is_late FROM ({TRAIN})").df().is_late
    prior = DummyClassifier(strategy="prior").fit(np.zeros((len(train_y), 1)), train_y)

    overall = out[out.slice_column.isna()]
    assert len(overall) == 1
    _assert_row(overall.iloc[0], _expected(scored, prior))
    for column in ("carrier", "origin"):
        rows = out[out.slice_column == column].set_index("slice_value")
        assert sorted(rows.index) == sorted(scored[column].unique())
        for value, group in scored.groupby(column):
            _assert_row(rows.loc[value], _expected(group, prior))
    assert len(out) == 1 + scored.carrier.nunique() + scored.origin.nunique()

    sliced = out[out.slice_column.notna()]
    assert (sliced.unreliable == (sliced.row_count < 30)).all()
    gap = overall.roc_auc.iloc[0] - sliced.roc_auc
    assert (sliced.worse_than_overall == (gap > 0.05)).all()
    worst = sliced.loc[sliced.roc_auc.idxmin()]
    assert worst.worse_than_overall, f"worst slice {worst.slice_value} has roc_auc {worst.roc_auc}"


def test_slice_combinations_and_settings_in_one_scoring_pass(delays, monkeypatch):
    calls = []
    original = LoadedModel.predict
    monkeypatch.setattr(LoadedModel, "predict", lambda self, data, *a: calls.append(len(data)) or original(self, data, *a))
    out = delays.sql(f"SELECT * FROM ML.EVALUATE(MODEL m, {TEST}, STRUCT(['carrier', 'origin'] AS slice_by, "
                     "TRUE AS slice_combinations, 500 AS min_slice_size, 0.02 AS slice_margin, "
                     "'accuracy' AS primary_metric))").df()
    rows = delays.sql(f"SELECT count(*) FROM {TEST}").fetchall()[0][0]
    assert calls == [rows]  # the model scored every row once, not once per slice
    monkeypatch.undo()

    scored = delays.sql(f"SELECT * FROM ML.PREDICT(MODEL m, {TEST})").df()
    pairs = out[out.slice_column == "carrier, origin"].set_index("slice_value")
    groups = scored.groupby(["carrier", "origin"])
    assert len(pairs) == groups.ngroups
    assert len(out) == 1 + scored.carrier.nunique() + scored.origin.nunique() + groups.ngroups
    overall_accuracy = skm.accuracy_score(scored.is_late, scored.predicted_is_late)
    for (carrier, origin), group in groups:
        row = pairs.loc[f"{carrier}, {origin}"]
        accuracy = skm.accuracy_score(group.is_late, group.predicted_is_late)
        assert row.row_count == len(group)
        assert row.accuracy == pytest.approx(accuracy)
        assert row.unreliable == (len(group) < 500)
        assert row.worse_than_overall == (overall_accuracy - accuracy > 0.02)
    assert (out.primary_metric == "accuracy").all()


def test_undefined_metrics_are_null_not_errors(penguins):
    """Slicing by the label leaves one class per slice: roc_auc is undefined there."""
    penguins.sql("CREATE MODEL c OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex']) AS "
                 "SELECT * FROM penguins")
    out = penguins.sql("SELECT * FROM ML.EVALUATE(MODEL c, TABLE penguins, STRUCT('sex' AS slice_by))").df()
    sliced = out[out.slice_column == "sex"]
    assert sorted(sliced.slice_value) == ["female", "male"]
    assert sliced.roc_auc.isna().all() and sliced.baseline_roc_auc.isna().all() and sliced.beats_baseline.isna().all()
    assert out[out.slice_column.isna()].roc_auc.notna().all()


def test_regression_slice_of_one_row_has_null_r2(penguins):
    penguins.sql("CREATE MODEL r OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g']) AS "
                 "SELECT species, island, flipper_length_mm, body_mass_g FROM penguins")
    data = "(SELECT *, CASE WHEN row_number() OVER () = 1 THEN 'single' ELSE 'rest' END AS part FROM penguins)"
    out = penguins.sql(f"SELECT * FROM ML.EVALUATE(MODEL r, {data}, STRUCT('part' AS slice_by))").df()
    single = out[out.slice_value == "single"].iloc[0]
    assert single.row_count == 1 and single.unreliable
    assert pd.isna(single.r2_score)
    scored = penguins.sql(f"SELECT * FROM ML.PREDICT(MODEL r, {data}) WHERE body_mass_g IS NOT NULL").df()
    rest = scored[scored.part == "rest"]
    assert out[out.slice_value == "rest"].r2_score.iloc[0] == pytest.approx(
        skm.r2_score(rest.body_mass_g, rest.predicted_body_mass_g))


def test_unknown_slice_column_lists_the_columns(penguins):
    penguins.sql("CREATE MODEL c OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex']) AS "
                 "SELECT * FROM penguins")
    with pytest.raises(SqlmlError, match=r"slice_by column\(s\) isle not in the evaluation data.*island"):
        penguins.sql("SELECT * FROM ML.EVALUATE(MODEL c, TABLE penguins, STRUCT(['species', 'isle'] AS slice_by))")


def test_slice_columns_are_typed_columns_of_their_own(delays):
    """Each slice_by column comes back under its own name and DuckDB type, set only on its rows, so
    slices are filtered, joined and sorted in SQL; a row picked that way equals sklearn on those rows."""
    data = "(SELECT * EXCLUDE (day) FROM flights WHERE month > 9)"
    delays.sql(f"CREATE TABLE sliced AS SELECT * FROM ML.EVALUATE(MODEL m, {data}, "
               "STRUCT(['carrier', 'origin', 'month'] AS slice_by, TRUE AS slice_combinations))")
    types = dict(delays.sql("SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_name = 'sliced'").fetchall())
    source = dict(delays.sql("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = 'flights'").fetchall())
    assert (types["carrier"], types["origin"], types["month"]) == ("VARCHAR", "VARCHAR", "BIGINT") \
        == (source["carrier"], source["origin"], source["month"])
    assert delays.sql("SELECT column_name FROM information_schema.columns WHERE table_name = 'sliced' "
                      "ORDER BY ordinal_position LIMIT 5").fetchall() == [
        ("slice_column",), ("slice_value",), ("carrier",), ("origin",), ("month",)]

    # NULL where a row is not sliced by the column, and on the overall row.
    shape = delays.sql("SELECT slice_column, count(*), count(carrier), count(origin), count(month) FROM sliced "
                       "GROUP BY ALL ORDER BY ALL NULLS FIRST").fetchall()
    scored = delays.sql(f"SELECT * FROM ML.PREDICT(MODEL m, {data})").df()
    carriers, origins, months = (scored[c].nunique() for c in ("carrier", "origin", "month"))
    triples = len(scored.groupby(["carrier", "origin", "month"]))
    assert shape == [(None, 1, 0, 0, 0), ("carrier", carriers, carriers, 0, 0),
                     ("carrier, origin, month", triples, triples, triples, triples),
                     ("month", months, 0, 0, months), ("origin", origins, 0, origins, 0)]

    # A slice picked by its typed value has exactly the metrics of those rows.
    row = delays.sql("SELECT row_count, accuracy, recall, roc_auc FROM sliced "
                     "WHERE month = 11 AND carrier IS NULL").fetchall()
    rows = scored[scored.month == 11]
    probability = rows.predicted_is_late_probs.map(lambda ps: next(p["prob"] for p in ps if p["label"]))
    assert row[0] == pytest.approx((len(rows), skm.accuracy_score(rows.is_late, rows.predicted_is_late),
                                    skm.recall_score(rows.is_late, rows.predicted_is_late),
                                    skm.roc_auc_score(rows.is_late, probability)), abs=1e-12)
    pair = delays.sql("SELECT row_count, accuracy FROM sliced WHERE carrier = 'UA' AND origin = 'EWR' "
                      "AND month = 10").fetchall()
    rows = scored[(scored.carrier == "UA") & (scored.origin == "EWR") & (scored.month == 10)]
    assert pair == [(len(rows), pytest.approx(skm.accuracy_score(rows.is_late, rows.predicted_is_late)))]

    # Sorted and joined in SQL: the carriers by accuracy, joined back to the flights they cover.
    worst = delays.sql("SELECT s.carrier, s.row_count, count(*) AS flights FROM sliced AS s "
                       f"JOIN {data} AS f USING (carrier) WHERE s.slice_column = 'carrier' "
                       "GROUP BY ALL ORDER BY min(s.accuracy), s.carrier LIMIT 1").fetchall()[0]
    accuracy = {carrier: skm.accuracy_score(g.is_late, g.predicted_is_late) for carrier, g in scored.groupby("carrier")}
    assert worst[0] == min(accuracy, key=lambda carrier: (accuracy[carrier], carrier))
    assert worst[1] == worst[2] == (scored.carrier == worst[0]).sum()


def test_a_null_slice_value_and_a_name_clash(penguins):
    penguins.sql("CREATE MODEL c OPTIONS (model_type = 'logistic_reg', input_label_cols = ['species']) AS "
                 "SELECT species, bill_length_mm, flipper_length_mm FROM penguins")
    out = penguins.sql("SELECT slice_column, slice_value, sex, row_count FROM ML.EVALUATE(MODEL c, TABLE penguins, "
                       "STRUCT('sex' AS slice_by)) ORDER BY slice_column NULLS FIRST, sex NULLS LAST").fetchall()
    counts = penguins.sql("SELECT sex, count(*) FROM penguins GROUP BY sex ORDER BY sex NULLS LAST").fetchall()
    assert out == [(None, None, None, 344)] + [("sex", s, s, n) for s, n in counts]
    assert out[-1][1:3] == (None, None)  # the slice of NULL sex: told apart from the overall row by slice_column

    with pytest.raises(SqlmlError, match=r"slice_by column\(s\) accuracy have the name of a column ML.EVALUATE "
                                         r"returns; rename them .*accuracy AS accuracy_slice"):
        penguins.sql("SELECT * FROM ML.EVALUATE(MODEL c, (SELECT *, island AS accuracy FROM penguins), "
                     "STRUCT('accuracy' AS slice_by))")
