"""The shortcuts CREATE MODEL takes over dictionary-encoded columns (training encodes its categorical
columns once) give what the plain columns give: drift statistics counted from dictionary indices equal
Python's count of the text values, and row hashes of encoded columns equal the hashes of the plain ones
(the hashes themselves are checked against a pure-Python FNV-1a/fmix64 in test_split.py)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from sqlml.model import drift
from sqlml.train.split import row_hashes

CATEGORIES = ["carrier", "origin", "dest"]


def _encoded(table: pa.Table) -> pa.Table:
    for name in CATEGORIES:
        table = table.set_column(table.schema.get_field_index(name), name, table[name].dictionary_encode())
    return table


@pytest.fixture
def flight_rows(flights) -> pa.Table:
    """The flights, with some carriers NULL so that NULL handling is exercised too."""
    table = flights.duckdb.sql("SELECT month, dep_delay, distance, CASE WHEN day = 1 AND month < 4 THEN NULL "
                               "ELSE carrier END AS carrier, origin, dest FROM flights").to_arrow_table()
    assert table["carrier"].null_count > 0
    return table


def test_categorical_statistics_of_encoded_batches_are_python_counts(flight_rows):
    encoded = _encoded(flight_rows)
    stats = drift.statistics(lambda: iter(encoded.to_batches(max_chunksize=4096)),
                             {name: "categorical" for name in CATEGORIES}, rank=10)
    for name in CATEGORIES:
        counted = Counter(v for v in flight_rows[name].to_pylist() if v is not None)
        top = sorted(counted.items(), key=lambda vc: (-vc[1], vc[0]))[:10]
        assert stats[name] == {"kind": "categorical", "values": [v for v, _ in top], "counts": [c for _, c in top]}


def test_row_hashes_of_encoded_columns_equal_the_plain_ones(flight_rows):
    for seed in (None, 3):
        plain, encoded = row_hashes(flight_rows, seed), row_hashes(_encoded(flight_rows), seed)
        assert encoded.dtype == np.uint64
        np.testing.assert_array_equal(encoded, plain)
    distinct = flight_rows.group_by(flight_rows.column_names).aggregate([]).num_rows
    assert len(np.unique(plain)) == distinct  # equal rows hash alike, distinct rows apart
