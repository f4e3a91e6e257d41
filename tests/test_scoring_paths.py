"""Scoring paths: an input spread over several DuckDB record batches, empty inputs, views over ML.PREDICT
across CREATE OR REPLACE MODEL and DROP MODEL, and two sessions storing versions of one model at once."""

from __future__ import annotations

import threading

import duckdb
import numpy as np
import pytest

import sqlml
from conftest import same_predictions
from sqlml.engines.duckdb import BATCH_ROWS
from sqlml.model import loaded
from sqlml.registry import versions

ROWS = 250_000  # three record batches of DuckDB's 122,880 rows
TRAINING_ROWS = 3_000


def silent(message: str) -> None:
    pass


@pytest.fixture(scope="module")
def big():
    """``big``: ids 0…249,999 with two numbers (x2 NULL on every 17th row), a string of five levels (NULL on
    every 23rd row, and a level never seen in training beyond id 100,000) and a label; the models train
    on the first 3,000 rows."""
    conn = sqlml.connect(progress=silent)
    conn.sql(f"""CREATE TABLE big AS
        SELECT range AS id, (hash(range) % 10000) / 100.0 AS x1,
               CASE WHEN range % 17 = 0 THEN NULL ELSE (hash(range * 3 + 1) % 1000) / 10.0 END AS x2,
               CASE WHEN range % 23 = 0 THEN NULL WHEN range > 100000 AND range % 29 = 0 THEN 'unseen'
                    ELSE chr(97 + (range % 5)::INTEGER) END AS c,
               (hash(range * 7 + 2) % 100) + (hash(range) % 10000) / 100.0 > 100 AS y
        FROM range({ROWS}) ORDER BY range""")
    for model_type, size in (("logistic_reg", ""), ("boosted_tree_classifier", ", max_iterations = 5")):
        conn.sql(f"""CREATE MODEL {model_type} OPTIONS (model_type = '{model_type}', input_label_cols = ['y'],
                     data_split_method = 'NO_SPLIT', random_seed = 1{size})
                     AS SELECT x1, x2, c, y FROM big WHERE id < {TRAINING_ROWS}""")
    yield conn
    conn.close()


def hand_built_matrix(columns: dict, onehot: bool) -> np.ndarray:
    """README's preprocessing with NumPy, fitted on the first TRAINING_ROWS rows: NULL numbers → the
    training mean, standardized for one-hot models; the string one-hot over its sorted training levels
    with NULL last (an unseen level: all zeros), or one ordinal code (unseen: NaN) for trees."""
    blocks = []
    for name in ("x1", "x2"):
        values = np.array([np.nan if v is None else v for v in columns[name]], dtype=np.float64)
        seen = values[:TRAINING_ROWS]
        mean = np.nanmean(seen)
        values = np.where(np.isnan(values), mean, values)
        if onehot:
            values = (values - mean) / np.where(np.isnan(seen), mean, seen).std()
        blocks.append(values[:, None])
    levels = sorted({v for v in columns["c"][:TRAINING_ROWS] if v is not None}) + [None]
    assert None in columns["c"][:TRAINING_ROWS] and levels == ["a", "b", "c", "d", "e", None]
    index = {level: i for i, level in enumerate(levels)}
    codes = np.array([index.get(v, -1) for v in columns["c"]])
    blocks.append((codes[:, None] == np.arange(len(levels))).astype(np.float64) if onehot
                  else np.where(codes >= 0, codes, np.nan)[:, None])
    return np.hstack(blocks)


@pytest.mark.parametrize("model_type", ["logistic_reg", "boosted_tree_classifier"])
def test_predict_over_several_record_batches_equals_sklearn_row_by_row(big, model_type, monkeypatch):
    scored_batches = []
    predict = loaded.LoadedModel.predict

    def spy(self, data, threshold=None):  # counts the batches scored; the scoring itself is untouched
        scored_batches.append(data.num_rows)
        return predict(self, data, threshold)

    monkeypatch.setattr(loaded.LoadedModel, "predict", spy)
    out = big.sql(f"SELECT id, predicted_y, predicted_y_probs FROM ML.PREDICT(MODEL {model_type}, TABLE big)").to_arrow_table()
    assert ROWS > 2 * BATCH_ROWS and len(scored_batches) >= 3 and sum(scored_batches) == ROWS
    assert out["id"].to_numpy().tolist() == list(range(ROWS))  # every row, in the input's order

    data = big.duckdb.sql("SELECT x1, x2, c FROM big ORDER BY id").to_arrow_table().to_pydict()
    assert data["c"].count("unseen") > 1000 and data["x2"].count(None) > 10_000
    estimator = big.executor.load(model_type).estimator
    expected = estimator.predict_proba(hand_built_matrix(data, onehot=model_type == "logistic_reg"))
    probs = out["predicted_y_probs"].combine_chunks()
    assert probs.value_lengths().to_numpy().tolist() == [2] * ROWS
    labels = probs.flatten().field("label").to_numpy(zero_copy_only=False).reshape(ROWS, 2)
    assert (labels == [False, True]).all()
    got = probs.flatten().field("prob").to_numpy().reshape(ROWS, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(out["predicted_y"].to_numpy(zero_copy_only=False), expected[:, 1] >= 0.5)


@pytest.mark.parametrize("function", ["PREDICT", "EXPLAIN_PREDICT"])
@pytest.mark.parametrize("model_type", ["logistic_reg", "boosted_tree_classifier"])
def test_empty_input_gives_zero_rows_with_the_columns_and_types_of_a_full_one(big, function, model_type):
    empty = big.sql(f"SELECT * FROM ML.{function}(MODEL {model_type}, (SELECT * FROM big WHERE false))")
    full = big.sql(f"SELECT * FROM ML.{function}(MODEL {model_type}, (SELECT * FROM big WHERE id < 5))")
    assert empty.fetchall() == [] and len(full.fetchall()) == 5
    assert empty.columns == full.columns
    assert [str(t) for t in empty.types] == [str(t) for t in full.types]
    front = ["predicted_y", "predicted_y_probs"] if function == "PREDICT" else [
        "predicted_y", "probability", "top_feature_attributions", "baseline_prediction_value", "prediction_value",
        "approximation_error"]
    assert empty.columns == front + ["id", "x1", "x2", "c", "y"]


# ---------------------------------------------------------------------------------------------------
# Views over ML.PREDICT

VIEW_TRAIN = ("CREATE OR REPLACE MODEL m OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g']{}) "
              "AS SELECT * EXCLUDE (year) FROM penguins")


def predictions(conn, source: str) -> list:
    """Rows in the order of their input columns (after the two prediction columns)."""
    return sorted(conn.sql(f"SELECT * FROM {source}").fetchall(), key=lambda row: (repr(row[2:]), repr(row)))


@pytest.fixture
def viewed(penguins):
    """``v``, a view over ML.PREDICT of model ``m`` created while version 1 was current."""
    penguins.sql(VIEW_TRAIN.format(""))
    penguins.sql("CREATE VIEW v AS SELECT * FROM ML.PREDICT(MODEL m, TABLE penguins)")
    return penguins


def test_a_view_serves_the_deployed_version_and_a_pinned_view_its_own(viewed):
    """docs/release.md: MODEL m in a view means the deployed version when the view runs; MODEL m VERSION n
    always serves version n."""
    first = predictions(viewed, "ML.PREDICT(MODEL m VERSION 1, TABLE penguins)")
    assert same_predictions(predictions(viewed, "v"), first)
    viewed.sql("CREATE VIEW pinned AS SELECT * FROM ML.PREDICT(MODEL m VERSION 1, TABLE penguins)")
    viewed.sql(VIEW_TRAIN.format(", l2_reg = 50, deploy = 'always'"))  # version 2: a ridge, other predictions
    assert viewed.sql("SELECT max(version) FROM sqlml.models WHERE name = 'm'").fetchall() == [(2,)]
    latest = predictions(viewed, "ML.PREDICT(MODEL m, TABLE penguins)")
    assert latest != first
    assert latest == predictions(viewed, "ML.PREDICT(MODEL m VERSION 2, TABLE penguins)")
    assert same_predictions(predictions(viewed, "v"), latest)
    assert same_predictions(predictions(viewed, "pinned"), first)


def _read_after_drop(conn, fresh_cache: bool, monkeypatch) -> Exception:
    assert len(conn.sql("SELECT * FROM v").fetchall()) == 344  # scored (and cached) before the DROP
    conn.sql("DROP MODEL m")
    if fresh_cache:  # as a later process would: nothing loaded yet
        monkeypatch.setattr(loaded, "CACHE", loaded.ModelCache())
    with pytest.raises((sqlml.SqlmlError, duckdb.Error)) as failure:
        conn.sql("SELECT * FROM v").fetchall()
    return failure.value


@pytest.mark.parametrize("fresh_cache", [False, True], ids=["same-session", "fresh-cache"])
def test_a_view_over_a_dropped_model_fails_naming_the_model(viewed, fresh_cache, monkeypatch):
    error = _read_after_drop(viewed, fresh_cache, monkeypatch)
    assert "Model 'm' was dropped" in str(error)


def test_a_view_over_a_dropped_model_fails_naming_the_view(viewed, monkeypatch):
    error = _read_after_drop(viewed, False, monkeypatch)
    assert "Model 'm'" in str(error) and "view 'v'" in str(error)


# ---------------------------------------------------------------------------------------------------
# Two sessions storing versions of one model at once

STORED_CONCURRENTLY = ("Model 'k' was not stored: another session stored a version of it at the same moment (its "
                       "versions are intact). Run the statement again to store this one.")


@pytest.mark.parametrize("overlap", [False, True], ids=["as-it-comes", "transactions-overlap"])
def test_concurrent_create_or_replace_leaves_consecutive_versions_that_all_load(penguins, overlap, monkeypatch):
    """Two threads, each on a cursor of its own with sqlml attached, replace one model at once. With
    ``overlap``, both store only after both have read the latest version number (a barrier in front of
    the insert changes the timing, nothing else), so they reach for the same number."""
    penguins.sql("CREATE MODEL k OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex']) "
                 "AS SELECT * EXCLUDE (year) FROM penguins")
    if overlap:
        barrier = threading.Barrier(2, timeout=30)
        insert = versions.Registry._insert

        def insert_together(self, table, values):
            if table == self.tables().models:
                try:
                    barrier.wait()
                except threading.BrokenBarrierError:
                    pass
            return insert(self, table, values)

        monkeypatch.setattr(versions.Registry, "_insert", insert_together)
    sessions = [sqlml.register(penguins.duckdb.cursor()) for _ in range(2)]
    outcomes: dict[int, object] = {}

    def replace(i: int) -> None:
        sessions[i].executor.progress = silent
        try:
            sessions[i].sql(f"CREATE OR REPLACE MODEL k OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex'], "
                            f"l2_reg = {i + 1}) AS SELECT * EXCLUDE (year) FROM penguins")
            outcomes[i] = "stored"
        except Exception as error:  # noqa: BLE001 - the class is asserted below
            outcomes[i] = error

    threads = [threading.Thread(target=replace, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == [0, 1]
    failed = [e for e in outcomes.values() if e != "stored"]
    assert all(type(e) is sqlml.SqlmlError and str(e) == STORED_CONCURRENTLY for e in failed), failed
    if overlap:
        assert len(failed) == 1
        again = [i for i, e in outcomes.items() if e != "stored"][0]
        monkeypatch.undo()
        sessions[again].sql("CREATE OR REPLACE MODEL k OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex'], "
                            f"l2_reg = {again + 1}) AS SELECT * EXCLUDE (year) FROM penguins")  # as the message says
        failed = []

    stored = penguins.sql("SELECT version, options->>'l2_reg' FROM sqlml.models WHERE name = 'k' ORDER BY version").fetchall()
    assert [v for v, _ in stored] == list(range(1, 4 - len(failed)))
    assert sorted(l2 for _, l2 in stored[1:]) == sorted(str(float(i + 1)) for i, e in outcomes.items()
                                                        if e == "stored" or overlap)
    data = penguins.duckdb.sql("SELECT * EXCLUDE (year) FROM penguins").to_arrow_table()
    for version, _ in stored:
        model = penguins.executor.load("k", version)
        out = penguins.sql(f"SELECT predicted_sex_probs FROM ML.PREDICT(MODEL k VERSION {version}, TABLE penguins)").fetchall()
        np.testing.assert_allclose([[p["prob"] for p in probs] for (probs,) in out],
                                   model.estimator.predict_proba(model.features(data)), rtol=1e-9, atol=1e-12)
    fingerprints = penguins.sql("SELECT count(DISTINCT fingerprint) FROM sqlml.models WHERE name = 'k'").fetchall()
    assert fingerprints == [(len(stored),)]
    for session in sessions:
        session.close()
