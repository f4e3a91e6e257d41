"""CREATE MODEL builds its matrix once (sqlml/train/matrix.py, reading.py) and samples before reading."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp
from conftest import held_out

from sqlml.model.kinds import MODEL_KINDS
from sqlml.model.preprocess import Preprocessor, encode_categories
from sqlml.train import matrix, reading
from sqlml.train.split import rows_at

KINDS = ["logistic_reg", "linear_reg", "boosted_tree_classifier", "random_forest_regressor", "dnn_classifier", "kmeans"]


def _whole_table_matrix(table: pa.Table, features: list[str], train: np.ndarray, kind):
    """The encoding before this change: the training rows copied as a table, then preprocessed at once."""
    rows = rows_at(encode_categories(table, features), train)
    prep = Preprocessor.fit(rows, features, kind.encoding, kind.standardize)
    return prep, matrix.training_matrix(prep, kind, rows)


@pytest.mark.parametrize("dataset, label", [("penguins", "species"), ("flights", "is_late")])
@pytest.mark.parametrize("model_type", KINDS)
def test_matrix_equals_the_whole_table_encoding(request, dataset, label, model_type):
    conn = request.getfixturevalue(dataset)
    kind = MODEL_KINDS[model_type]
    sql = f"SELECT * FROM {dataset}"
    rows = reading.read(conn.executor.engine.read_batches(sql), conn.executor.engine.schema(sql), [label])
    table = rows.take()
    features = [c for c in table.column_names if c != label]
    train = np.flatnonzero(np.random.default_rng(1).random(table.num_rows) < 0.8)
    expected_prep, expected = _whole_table_matrix(conn.duckdb.sql(sql).to_arrow_table(), features, train, kind)
    prep = matrix.fit_preprocessor(table, train, features, kind)
    batches = table.select(features).to_batches(max_chunksize=5000)  # several batches, as from a big query
    X = matrix.build(prep, kind, batches, train, kind.matrix_dtype)
    assert prep.to_dict() == expected_prep.to_dict()
    assert batches == []  # every batch was handed over to be freed
    assert type(X) is type(expected) and X.shape == expected.shape
    if sp.issparse(X):
        assert model_type == "logistic_reg" and X.has_canonical_format == expected.has_canonical_format
        for part in ("data", "indices", "indptr"):
            np.testing.assert_array_equal(getattr(X, part), getattr(expected, part))
    else:
        assert X.dtype == (np.float32 if model_type.startswith("random_forest") else np.float64)
        np.testing.assert_array_equal(X, expected.astype(X.dtype))  # NaN (unseen, for trees) equals NaN here
        assert X.flags.f_contiguous == (kind.matrix_order == "F") and X.flags.c_contiguous == (kind.matrix_order == "C")
    if kind.xgboost:  # XGBoost reads the same rows a block at a time, as often as it makes a pass
        batches = table.select(features).to_batches(max_chunksize=5000)
        blocks = matrix.blocks(prep, batches, train)
        for _ in range(2):
            np.testing.assert_array_equal(np.concatenate(list(blocks())), expected)


def test_reading_encodes_text_features_and_keeps_the_label(flights):
    engine = flights.executor.engine
    sql = "SELECT carrier, origin, distance, CAST(is_late AS VARCHAR) AS late FROM flights"
    rows = reading.read(engine.read_batches(sql), engine.schema(sql), ["LATE"])  # names match in any case
    table = rows.take()
    assert [str(f.type) for f in rows.schema] == ["string", "string", "int64", "string"]
    assert [str(f.type) for f in table.schema] == ["dictionary<values=string, indices=int32, ordered=0>"] * 2 + [
        "int64", "string"]
    assert table.cast(rows.schema).equals(flights.duckdb.sql(sql).to_arrow_table())
    with pytest.raises(RuntimeError, match="already taken"):
        rows.take()


def test_feature_columns_are_freed_once_encoded(flights, monkeypatch):
    """Arrow's allocation falls by the bytes of the feature columns while the matrix is built."""
    seen = {}
    build = matrix.build

    def measured(prep, kind, batches, train, dtype):
        seen["columns"] = sum(b.nbytes for b in batches)
        seen["before"] = pa.total_allocated_bytes()
        X = build(prep, kind, batches, train, dtype)
        seen["after"] = pa.total_allocated_bytes()
        return X

    monkeypatch.setattr(matrix, "build", measured)
    flights.sql("""CREATE MODEL m OPTIONS (model_type = 'dnn_classifier', input_label_cols = ['is_late'],
        max_iterations = 2, data_split_method = 'NO_SPLIT') AS SELECT * EXCLUDE (dest) FROM flights""")
    assert seen["columns"] > 1_000_000  # 21,000 rows × 8 columns
    assert seen["before"] - seen["after"] <= seen["columns"] * 0.05  # NO_SPLIT: the evaluation rows hold them
    flights.sql("""CREATE OR REPLACE MODEL m OPTIONS (model_type = 'dnn_classifier',
        input_label_cols = ['is_late'], max_iterations = 2, deploy = 'always') AS SELECT * EXCLUDE (dest) FROM flights""")
    assert seen["before"] - seen["after"] >= seen["columns"] * 0.95


def test_boosted_trees_free_the_feature_columns_once_xgboost_holds_its_own_copy(flights, monkeypatch):
    """No matrix is built: XGBoost's quantile matrix is filled from the batches, which are then freed
    before the trees grow."""
    seen = {}
    blocks, release = matrix.blocks, matrix.release

    def watched(prep, batches, train, order="C"):
        seen.update(batches=batches, columns=sum(b.nbytes for b in batches), before=pa.total_allocated_bytes())
        return blocks(prep, batches, train, order)

    def released():
        release()
        seen["after"] = pa.total_allocated_bytes()  # the last call: once XGBoost holds the rows

    monkeypatch.setattr(matrix, "blocks", watched)
    monkeypatch.setattr(matrix, "release", released)
    monkeypatch.setattr(matrix, "build", lambda *args: pytest.fail("boosted trees built the whole matrix"))
    flights.sql("""CREATE MODEL m OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['is_late'],
        max_iterations = 2) AS SELECT * EXCLUDE (dest) FROM flights""")
    assert seen["batches"] == [] and seen["columns"] > 1_000_000
    assert seen["before"] - seen["after"] >= seen["columns"] * 0.95


def _count_reads(conn, monkeypatch) -> list[int]:
    """Rows of every batched read of the engine, one entry per query."""
    engine, counts = conn.executor.engine, []
    read_batches = engine.read_batches

    def counting(sql, *args):
        counts.append(0)
        for batch in read_batches(sql, *args):
            counts[-1] += batch.num_rows
            yield batch

    monkeypatch.setattr(engine, "read_batches", counting)
    return counts


SAMPLED = """CREATE OR REPLACE MODEL {name} OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late'],
    {option}, random_seed = 7, deploy = 'always') AS SELECT * FROM {source}"""
#: flights with the label NULL on a month's rows, and a custom split column holding out another month.
HOLED = "(SELECT * REPLACE (CASE WHEN month = 3 THEN NULL ELSE is_late END AS is_late), month = 5 AS held FROM flights)"


@pytest.mark.parametrize("option, source, eval_rows", [
    ("max_training_rows = 3000", "flights", None),  # None: the row-hash split (conftest.held_out)
    ("sample_fraction = 0.1", "flights", None),
    ("sample_fraction = 0.1, data_split_method = 'NO_SPLIT'", "flights", "0"),
    ("max_training_rows = 2000, data_split_method = 'CUSTOM', data_split_col = 'HELD'", HOLED,
     "count(is_late) FILTER (WHERE held)"),
])
def test_sampling_reads_only_the_rows_it_keeps_and_trains_the_same_model(flights, monkeypatch, option, source,
                                                                         eval_rows):
    if eval_rows is None:
        labelled_rows = flights.sql(f"SELECT * FROM {source} WHERE is_late IS NOT NULL").to_arrow_table()
        labelled, expected_eval = labelled_rows.num_rows, len(held_out(labelled_rows, seed=7))
    else:
        (labelled, expected_eval), = flights.sql(f"SELECT count(is_late), {eval_rows} FROM {source}").fetchall()
    counts = _count_reads(flights, monkeypatch)
    flights.sql(SAMPLED.format(name="pushed", option=option, source=source))
    (training_rows, stored_eval), = flights.sql(
        "SELECT training_rows, eval_rows FROM sqlml.models WHERE name = 'pushed'").fetchall()
    assert training_rows < labelled - expected_eval
    assert stored_eval == (expected_eval or training_rows)  # NO_SPLIT evaluates on the training rows
    # Only the rows used are read into Python; a hash split first streams every row for its hash alone.
    total = flights.sql(f"SELECT count(*) FROM {source}").fetchall()[0][0]
    assert counts == ([total] if eval_rows is None else []) + [training_rows + expected_eval]

    monkeypatch.setattr(reading, "read_sample", lambda *args: None)  # the whole query, sampled in Python
    flights.sql(SAMPLED.format(name="whole", option=option, source=source))
    assert counts[-1] == flights.sql(f"SELECT count(*) FROM {source}").fetchall()[0][0]
    models = flights.sql("SELECT name, training_rows, eval_rows, metrics FROM sqlml.models ORDER BY name").fetchall()
    assert models[0][1:] == models[1][1:]
    predictions = {name: flights.sql(f"SELECT predicted_is_late_probs[1].prob FROM ML.PREDICT(MODEL {name}, "
                                     "TABLE flights)").fetchnumpy() for name in ("pushed", "whole")}
    np.testing.assert_array_equal(*(next(iter(p.values())) for p in predictions.values()))


def test_sampling_falls_back_to_the_whole_query_when_its_order_is_not_stable(flights, monkeypatch):
    total = flights.sql("SELECT count(*) FROM flights").fetchall()[0][0]
    counts = _count_reads(flights, monkeypatch)
    flights.sql(SAMPLED.format(name="shuffled", option="max_training_rows = 3000",
                               source="flights ORDER BY random()"))
    (training_rows,), = flights.sql("SELECT training_rows FROM sqlml.models").fetchall()
    assert training_rows == 3000
    # The hash pass, the chosen rows (which came back with other labels), then the whole query.
    assert counts[0] == counts[-1] == total and len(counts) == 3
