"""ML.FAIRNESS against fairlearn computed directly on the model's own ML.PREDICT output."""

from __future__ import annotations

import pandas as pd
import pytest
from fairlearn import metrics as fm

from sqlml.errors import SqlmlError


def _check(out: pd.DataFrame, scored: pd.DataFrame, label: str, positive, column: str) -> None:
    """Per-group rates by hand (pandas) and summary figures from fairlearn, on ML.PREDICT's rows."""
    y_true = scored[label] == positive
    y_pred = scored[f"predicted_{label}"] == positive
    groups = scored[column]
    rows = out[out.sensitive_column == column].set_index("group_value")
    assert sorted(rows.index) == sorted(groups.unique())
    for value, index in scored.groupby(column).groups.items():
        t, p = y_true[index], y_pred[index]
        row = rows.loc[value]
        assert row.row_count == len(index)
        assert row.selection_rate == pytest.approx(p.mean())
        assert row.true_positive_rate == pytest.approx((p & t).sum() / t.sum())
        assert row.false_positive_rate == pytest.approx((p & ~t).sum() / (~t).sum())
        assert row.precision == pytest.approx((p & t).sum() / p.sum() if p.sum() else 0.0)
    expected = {
        "demographic_parity_difference": fm.demographic_parity_difference(y_true, y_pred, sensitive_features=groups),
        "demographic_parity_ratio": fm.demographic_parity_ratio(y_true, y_pred, sensitive_features=groups),
        "equalized_odds_difference": fm.equalized_odds_difference(y_true, y_pred, sensitive_features=groups),
        "equalized_odds_ratio": fm.equalized_odds_ratio(y_true, y_pred, sensitive_features=groups),
    }
    for name, value in expected.items():
        assert rows[name].to_numpy() == pytest.approx(value), name


@pytest.fixture
def sex_model(penguins):
    penguins.sql("CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex']) AS "
                 "SELECT species, bill_length_mm, bill_depth_mm, flipper_length_mm, sex FROM penguins")
    return penguins


def test_penguins_sex_by_island_and_species_equal_fairlearn(sex_model):
    out = sex_model.sql("SELECT * FROM ML.FAIRNESS(MODEL m, TABLE penguins, "
                        "STRUCT(['island', 'species'] AS sensitive_col))").df()
    scored = sex_model.sql("SELECT * FROM ML.PREDICT(MODEL m, TABLE penguins) WHERE sex IS NOT NULL").df()
    for column in ("island", "species"):
        _check(out, scored, "sex", "male", column)
    assert list(out.columns[:3]) == ["sensitive_column", "group_value", "row_count"]


def test_threshold_changes_the_decisions_judged(sex_model):
    out = sex_model.sql("SELECT * FROM ML.FAIRNESS(MODEL m, TABLE penguins, "
                        "STRUCT('island' AS sensitive_col, 0.9 AS threshold))").df()
    scored = sex_model.sql("SELECT * FROM ML.PREDICT(MODEL m, TABLE penguins, STRUCT(0.9 AS threshold)) "
                           "WHERE sex IS NOT NULL").df()
    _check(out, scored, "sex", "male", "island")


def test_flights_lateness_by_origin_equals_fairlearn(flights):
    flights.sql("CREATE MODEL late OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late']) AS "
                "SELECT * EXCLUDE (month, day) FROM flights WHERE month <= 9")
    data = "(SELECT * FROM flights WHERE month > 9)"
    out = flights.sql(f"SELECT * FROM ML.FAIRNESS(MODEL late, {data}, STRUCT('origin' AS sensitive_col))").df()
    scored = flights.sql(f"SELECT * FROM ML.PREDICT(MODEL late, {data})").df()
    _check(out, scored, "is_late", True, "origin")


def test_fairness_needs_a_binary_classifier_and_a_known_column(sex_model):
    with pytest.raises(SqlmlError, match="sensitive_col region not in the evaluation data.*island"):
        sex_model.sql("SELECT * FROM ML.FAIRNESS(MODEL m, TABLE penguins, STRUCT('region' AS sensitive_col))")
    with pytest.raises(SqlmlError, match="needs the sensitive column"):
        sex_model.sql("SELECT * FROM ML.FAIRNESS(MODEL m, TABLE penguins)")
    sex_model.sql("CREATE MODEL s OPTIONS (model_type = 'logistic_reg', input_label_cols = ['species']) AS "
                  "SELECT * FROM penguins")
    with pytest.raises(SqlmlError, match="ML.FAIRNESS needs a binary classifier; 's' has 3 classes"):
        sex_model.sql("SELECT * FROM ML.FAIRNESS(MODEL s, TABLE penguins, STRUCT('island' AS sensitive_col))")


def test_docs_and_example_run_on_flights():
    """docs/evaluation.md's SQL blocks, in order, and the example file, on the packaged flights data."""
    import re
    from pathlib import Path

    import sqlml
    from sqlml import datasets
    root = Path(__file__).resolve().parent.parent
    with sqlml.connect(progress=lambda message: None) as connection:
        datasets.load(connection.duckdb, "flights")
        blocks = re.findall(r"```sql\n(.*?)```", (root / "docs" / "evaluation.md").read_text(), re.S)
        assert len(blocks) >= 8
        for block in blocks:
            connection.sql(block)
        last = connection.sql((root / "examples" / "evaluate_baselines_slices.sql").read_text()).df()
    assert sorted(last.origin) == ["EWR", "JFK", "LGA"]
    assert last.demographic_parity_difference.nunique() == 1
