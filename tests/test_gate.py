"""The deploy gate on every retrain (docs/release.md): a worse retrain is stored but not deployed, a
better or equal one is deployed, and the gate's figures are ML.EVALUATE's on the rows it names."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import held_out
from sklearn import metrics as skm

from sqlml.errors import OptionError

GOOD = "SELECT dep_delay, sched_dep_time, distance, carrier, origin, is_late FROM flights"
POOR = "SELECT distance, is_late FROM flights"  # without the departure delay, far less informative
TRAIN = ("CREATE OR REPLACE MODEL late OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late']{extra}) "
         "AS {query}")


def train(conn, query: str, extra: str = "") -> list[str]:
    said: list[str] = []
    conn.executor.progress = said.append
    conn.sql(TRAIN.format(extra=extra, query=query))
    return said


def log(conn) -> list[tuple]:
    return conn.sql("SELECT version, previous_version, action, metric, new_value, old_value, eval_rows "
                    "FROM sqlml.deployments WHERE model = 'late' AND action <> 'create' ORDER BY seq").fetchall()


def probabilities(conn, model: str) -> list:
    return conn.sql(f"SELECT predicted_is_late_probs[2].prob FROM ML.PREDICT(MODEL {model}, TABLE flights)").fetchall()


def test_a_worse_retrain_is_stored_but_not_deployed(flights):
    train(flights, GOOD)
    first = probabilities(flights, "late")
    said = train(flights, POOR)
    assert flights.sql("SELECT max(version) FROM sqlml.models WHERE name = 'late'").fetchall() == [(2,)]
    assert probabilities(flights, "late") == first  # MODEL late still serves version 1, row by row
    assert probabilities(flights, "late VERSION 2") != first
    verdict = next(m for m in said if "NOT deployed" in m)
    assert "roc_auc" in verdict and "ALTER MODEL late DEPLOY VERSION 2" in verdict
    (v1, _, a1, *_), (v2, previous, action, metric, new_value, old_value, rows) = log(flights)
    assert (v1, a1, v2, previous, action, metric) == (1, "trained_deployed", 2, 1, "trained_not_deployed", "roc_auc")
    # The two figures are ML.EVALUATE's, and sklearn's, on exactly the rows the gate names: the two
    # queries select different columns, so their rows hash differently; the rows both held out are used.
    table = flights.sql(POOR).to_arrow_table()
    rows_out = np.intersect1d(held_out(table), held_out(flights.sql(GOOD).to_arrow_table()))
    assert rows == len(rows_out) and f"same {rows:,} held-out rows" in verdict
    truth = table.take(rows_out)["is_late"].to_numpy(zero_copy_only=False)
    good = flights.sql(GOOD).to_arrow_table().take(rows_out)
    flights.duckdb.register("held_good", good)
    p1 = np.array([r[0] for r in flights.sql("SELECT predicted_is_late_probs[2].prob FROM "
                                             "ML.PREDICT(MODEL late VERSION 1, TABLE held_good)").fetchall()])
    flights.duckdb.register("held_poor", table.take(rows_out))
    p2 = np.array([r[0] for r in flights.sql("SELECT predicted_is_late_probs[2].prob FROM "
                                             "ML.PREDICT(MODEL late VERSION 2, TABLE held_poor)").fetchall()])
    assert old_value == pytest.approx(skm.roc_auc_score(truth, p1), abs=1e-12)
    assert new_value == pytest.approx(skm.roc_auc_score(truth, p2), abs=1e-12)
    assert new_value < old_value
    for version, value, rows_table in ((1, old_value, "held_good"), (2, new_value, "held_poor")):
        evaluated = flights.sql(f"SELECT roc_auc FROM ML.EVALUATE(MODEL late VERSION {version}, TABLE {rows_table})")
        assert value == pytest.approx(evaluated.fetchall()[0][0], abs=1e-12)


def test_an_equal_or_better_retrain_is_deployed(flights):
    train(flights, POOR)
    said = train(flights, GOOD)
    assert any("version 2 deployed" in m for m in said)
    assert log(flights)[-1][2] == "trained_deployed"
    assert probabilities(flights, "late") == probabilities(flights, "late VERSION 2")
    said = train(flights, GOOD)  # the same query again: equal quality, so deployed
    assert any("version 3 deployed" in m for m in said)


def test_a_retrain_on_a_grown_table_is_judged_on_all_its_held_out_rows(flights):
    """The split hashes row content: the rows the new version holds out were held out by the deployed
    version too, or added since, so the gate uses every one of them — and the figures are on them."""
    train(flights, GOOD + " WHERE month <= 6")
    said = train(flights, GOOD)
    table = flights.sql(GOOD).to_arrow_table()
    rows_out = held_out(table)
    (*_, rows), = [entry for entry in log(flights) if entry[0] == 2]
    assert rows == len(rows_out) == flights.sql("SELECT eval_rows FROM sqlml.models WHERE version = 2").fetchall()[0][0]
    earlier = flights.sql(GOOD + " WHERE month <= 6").to_arrow_table()
    held_earlier = {tuple(r.values()) for r in earlier.take(held_out(earlier)).to_pylist()}
    held_now = {tuple(r.values()) for r in table.take(rows_out).to_pylist()}
    assert held_earlier <= held_now  # no row held out then went to training
    flights.duckdb.register("held", table.take(rows_out))
    old_value = flights.sql("SELECT roc_auc FROM ML.EVALUATE(MODEL late VERSION 1, TABLE held)").fetchall()[0][0]
    assert any(f"vs {old_value:.4g} for the deployed version on the same {rows:,} held-out rows" in m for m in said)


def test_always_never_and_tolerance(flights):
    train(flights, GOOD)
    train(flights, POOR, ", deploy = 'always'")
    assert log(flights)[-1][:3] == (2, 1, "trained_deployed")
    train(flights, GOOD, ", deploy = 'never'")
    assert log(flights)[-1][:3] == (3, 2, "trained_not_deployed")
    train(flights, GOOD, ", deploy = 'always'")
    train(flights, POOR)  # worse than the deployed version 4 …
    assert log(flights)[-1][2] == "trained_not_deployed"
    train(flights, POOR, ", deploy_tolerance = 0.5")  # … but within a tolerance of 0.5 roc_auc
    assert log(flights)[-1][2] == "trained_deployed"
    with pytest.raises(OptionError, match="deploy"):
        train(flights, GOOD, ", deploy = 'sometimes'")
    with pytest.raises(OptionError, match="primary_metric 'r2_score' is not a metric of a classification model"):
        train(flights, GOOD, ", primary_metric = 'r2_score'")
    assert flights.sql("SELECT count(*) FROM sqlml.models WHERE name = 'late'").fetchall() == [(6,)]


def test_the_gate_uses_the_primary_metric_asked_for(flights):
    train(flights, GOOD)
    said = train(flights, POOR, ", primary_metric = 'log_loss'")
    assert any("log_loss" in m and "NOT deployed" in m for m in said)
    assert log(flights)[-1][3] == "log_loss"


def test_deploy_significance_deploys_only_a_significantly_better_version(flights):
    """The gate's interval and p-value are a paired bootstrap (seed 0, 1,000 resamples) of the
    roc_auc difference new − deployed on the rows the gate names, here recomputed with NumPy."""
    train(flights, POOR)
    said = train(flights, GOOD, ", deploy_significance = 0.05")
    verdict = next(m for m in said if "version 2" in m and "deployed" in m)
    assert "version 2 deployed" in verdict and "significantly better (deploy_significance 0.05)" in verdict
    good, poor = flights.sql(GOOD).to_arrow_table(), flights.sql(POOR).to_arrow_table()
    rows_out = np.intersect1d(held_out(good), held_out(poor))
    flights.duckdb.register("held_good", good.take(rows_out))
    flights.duckdb.register("held_poor", poor.take(rows_out))
    p_new = np.array(flights.sql("SELECT predicted_is_late_probs[2].prob AS p FROM ML.PREDICT(MODEL late VERSION 2, "
                                 "TABLE held_good)").fetchnumpy()["p"])
    p_old = np.array(flights.sql("SELECT predicted_is_late_probs[2].prob AS p FROM ML.PREDICT(MODEL late VERSION 1, "
                                 "TABLE held_poor)").fetchnumpy()["p"])
    y = good.take(rows_out)["is_late"].to_numpy(zero_copy_only=False)
    rng, n, differences = np.random.default_rng(0), len(y), []
    for _ in range(1000):
        drawn = rng.integers(0, n, size=n)
        differences.append(skm.roc_auc_score(y[drawn], p_new[drawn]) - skm.roc_auc_score(y[drawn], p_old[drawn]))
    low, high = np.quantile(differences, [0.025, 0.975])
    p_value = min(1.0, 2 * min(np.mean(np.array(differences) <= 0), np.mean(np.array(differences) >= 0)))
    assert f"95 % interval [{low:.4g}, {high:.4g}], p = {p_value:.3g}" in verdict and low > 0
    # The same query again is not worse, but not significantly better either: stored, not deployed.
    said = train(flights, GOOD, ", deploy_significance = 0.05")
    verdict = next(m for m in said if "NOT deployed" in m)
    assert "95 % interval [0, 0], p = 1: not significantly better" in verdict
    assert log(flights)[-1][2] == "trained_not_deployed"
    with pytest.raises(OptionError, match="deploy_significance"):
        train(flights, GOOD, ", deploy_significance = 0")


# --- retrains the gate cannot compare (docs/release.md: CREATE OR REPLACE always stores the new version) ---

HEAVY = "CREATE OR REPLACE MODEL g OPTIONS (model_type = {kind}, input_label_cols = ['heavy']{extra}) AS " \
        "SELECT island, {bill} AS bill_length_mm, {label} AS heavy FROM penguins WHERE body_mass_g IS NOT NULL"
HEAVY_PREDICTIONS = ("SELECT predicted_heavy FROM ML.PREDICT(MODEL g{version}, (SELECT island, {bill} AS bill_length_mm "
                     "FROM penguins)) ORDER BY ALL")


def retrain(conn, kind="'logistic_reg'", label="body_mass_g > 4000", bill="bill_length_mm", extra="") -> str:
    said: list[str] = []
    conn.executor.progress = said.append
    conn.sql(HEAVY.format(kind=kind, label=label, bill=bill, extra=extra))
    return next(m for m in said if "deployed" in m)


@pytest.mark.parametrize("kind, label, bill, why", [
    ("'linear_reg'", "body_mass_g / 1000", "bill_length_mm",
     "it is a regression model (linear_reg) and the deployed version a classification model (logistic_reg): a "
     "different task cannot be compared"),
    ("'boosted_tree_regressor', max_iterations = 10", "(body_mass_g > 4000)::INT", "bill_length_mm",
     "it is a regression model (boosted_tree_regressor) and the deployed version a classification model "
     "(logistic_reg): a different task cannot be compared"),
    ("'logistic_reg'", "(body_mass_g > 4000)::INT", "bill_length_mm",
     "its label 'heavy' is int64 and the deployed version's bool: labels of another type cannot be compared"),
    ("'logistic_reg'", "body_mass_g > 4000", "bill_length_mm::VARCHAR",
     "the deployed version cannot be scored on the current rows (DataError: Column 'bill_length_mm' must be a "
     "number, as in training"),
])
def test_a_retrain_of_another_task_or_type_is_stored_and_gated_by_what_deploy_says(penguins, kind, label, bill, why):
    retrain(penguins)
    first = penguins.sql(HEAVY_PREDICTIONS.format(version="", bill="bill_length_mm")).fetchall()
    said = retrain(penguins, kind, label, bill)
    assert said.startswith(f"Model 'g' version 2 stored but NOT deployed: {why}")
    assert "To deploy it anyway: ALTER MODEL g DEPLOY VERSION 2." in said
    assert penguins.sql(HEAVY_PREDICTIONS.format(version="", bill="bill_length_mm")).fetchall() == first  # nothing lost
    stored = penguins.sql(HEAVY_PREDICTIONS.format(version=" VERSION 2", bill=bill)).fetchall()
    assert len(stored) == 344 and [repr(r) for r in stored] != [repr(r) for r in first]  # 0 == False in Python
    assert retrain(penguins, kind, label, bill, ", deploy = 'always'") == "Model 'g' version 3 deployed: deploy = 'always'."
    assert penguins.sql(HEAVY_PREDICTIONS.format(version="", bill=bill)).fetchall() == \
        penguins.sql(HEAVY_PREDICTIONS.format(version=" VERSION 3", bill=bill)).fetchall()
    assert penguins.sql("SELECT action FROM sqlml.deployments WHERE model = 'g' ORDER BY seq").fetchall() == [
        ("create",), ("trained_deployed",), ("trained_not_deployed",), ("trained_deployed",)]


def test_a_retrain_predicting_another_label_says_how_to_replace_the_model(penguins):
    retrain(penguins)
    said: list[str] = []
    penguins.executor.progress = said.append
    penguins.sql("CREATE OR REPLACE MODEL g OPTIONS (model_type = 'logistic_reg', input_label_cols = ['island']) AS "
                 "SELECT bill_length_mm, island FROM penguins")
    assert ("Model 'g' version 2 stored but NOT deployed: it predicts 'island' and the deployed version 'heavy': other "
            "labels cannot be compared, so deploy = 'if_not_worse' does not deploy it. To deploy it anyway: retrain it "
            "with deploy = 'always' to replace the model (as BigQuery does), or train it as another model.") in said
