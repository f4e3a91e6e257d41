"""The evaluation split by a seeded hash of each row's content (sqlml/train/split.py, docs/release.md
"Which rows"), checked against the plain-Python rule in conftest.held_out."""

from __future__ import annotations

import datetime
import decimal
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
from conftest import held_out

from sqlml.train.split import eval_fraction, held_out_by, split_rows


def mixed_types(n: int = 3000) -> pa.Table:
    """Every kind of value the hash treats apart, with NULLs, -0.0, NaN and many identical rows."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=n)
    x[:5] = [-0.0, 0.0, np.nan, np.inf, -np.inf]
    return pa.table({
        "x": pa.array(x, mask=np.arange(n) % 97 == 0),
        "k": pa.array(rng.integers(0, 4, n)),  # with `flag` and `s`: rows repeat
        "flag": pa.array(rng.random(n) < 0.3),
        "s": pa.array(rng.choice(["a", "bb", "çé", ""], n)).dictionary_encode(),
        "d": pa.array([datetime.date(2024, 1, 1) + datetime.timedelta(days=int(i)) for i in rng.integers(0, 9, n)]),
        "m": pa.array([decimal.Decimal(int(i)) / 10 for i in rng.integers(0, 50, n)], pa.decimal128(6, 1)),
    })


def evaluation(table: pa.Table, method: str = "RANDOM", fraction: float | None = None, seed: int | None = None):
    options = {"data_split_method": method, **({} if fraction is None else {"data_split_eval_fraction": fraction})}
    return split_rows(table, options, seed).eval


def test_the_split_is_the_documented_hash_of_each_rows_values():
    table = mixed_types()
    for fraction, seed in ((0.2, None), (0.35, 7)):
        assert np.array_equal(evaluation(table, fraction=fraction, seed=seed), held_out(table, fraction, seed))
    # Neither the order of the columns nor how they are chunked changes a row's side.
    shuffled = pa.Table.from_batches(table.select(["m", "s", "x", "d", "flag", "k"]).to_batches(max_chunksize=700))
    assert np.array_equal(evaluation(shuffled), evaluation(table))
    assert not np.array_equal(evaluation(table, seed=1), evaluation(table, seed=2))


def test_rows_added_to_the_table_keep_every_held_out_row_held_out(flights):
    """Held-out rows compared by content (the positions move: new rows come in between)."""
    query = "SELECT dep_delay, sched_dep_time, distance, carrier, origin, is_late FROM flights"
    before = flights.duckdb.sql(f"{query} WHERE month <= 6").to_arrow_table()
    after = flights.duckdb.sql(f"{query} ORDER BY random()").to_arrow_table()
    held_before = before.take(evaluation(before, "AUTO_SPLIT")).to_pylist()
    held_after = after.take(evaluation(after, "AUTO_SPLIT")).to_pylist()
    remaining = _counts(held_after)
    for row, count in _counts(held_before).items():  # identical rows: as many copies held out as before, or more
        assert remaining.get(row, 0) >= count
    trained_before = _counts(before.take(np.setdiff1d(np.arange(before.num_rows), evaluation(before, "AUTO_SPLIT"))).to_pylist())
    assert sum(min(c, trained_before.get(r, 0)) for r, c in remaining.items()) <= _duplicates(after)


def _counts(rows: list[dict]) -> dict:
    counts: dict = {}
    for row in rows:
        key = tuple(sorted(row.items()))
        counts[key] = counts.get(key, 0) + 1
    return counts


def _duplicates(table: pa.Table) -> int:
    """Rows identical to an earlier row: only these can be on both sides of a content split, as copies."""
    return table.num_rows - len(_counts(table.to_pylist()))


def test_the_held_out_share_is_within_sampling_error(flights):
    for query, fraction in (("SELECT * FROM flights", 0.2), ("SELECT distance, is_late FROM flights", 0.3)):
        table = flights.duckdb.sql(query).to_arrow_table()  # the second: ~400 distinct rows among ~21,000
        count, n = len(evaluation(table, fraction=fraction)), table.num_rows
        assert abs(count - n * fraction) < 4 * np.sqrt(n * fraction * (1 - fraction))


def test_auto_split_above_50000_rows_holds_out_a_subset_of_what_fewer_rows_held_out():
    """AUTO_SPLIT's share shrinks as rows are added above 50,000 (10,000 / n): the rows held out then
    were held out before, so a version trained on fewer rows never trained on them."""
    small = pa.table({"x": np.arange(55_000, dtype=np.float64), "label": np.arange(55_000) % 3})
    large = pa.table({"x": np.arange(80_000, dtype=np.float64), "label": np.arange(80_000) % 3})
    assert eval_fraction("AUTO_SPLIT", None, 80_000) == 10_000 / 80_000
    held_small, held_large = evaluation(small, "AUTO_SPLIT"), evaluation(large, "AUTO_SPLIT")
    assert set(held_large[held_large < 55_000]) <= set(held_small)
    assert abs(len(held_large) - 10_000) < 4 * np.sqrt(10_000)
    # What the deploy gate asks of the smaller version, with the share it recorded.
    recorded = {"data_split_method": "AUTO_SPLIT", "data_split_eval_fraction": 10_000 / 55_000}
    again = held_out_by(recorded, len(held_small), large)
    assert np.array_equal(np.flatnonzero(again[:55_000]), held_small) and again[held_large].all()
    assert held_out_by({"data_split_method": "NO_SPLIT"}, 0, large) is None


def test_the_same_rows_are_split_the_same_way_in_another_process(tmp_path):
    table = mixed_types()
    path = tmp_path / "rows.arrow"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    code = ("import sys, pyarrow as pa; from sqlml.train.split import split_rows; "
            "t = pa.ipc.open_file(pa.memory_map(sys.argv[1])).read_all(); "
            "print(','.join(map(str, split_rows(t, {'data_split_method': 'RANDOM'}, None).eval)))")
    seen = {subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip() for seed in ("1", "2")}
    assert seen == {",".join(map(str, evaluation(table)))}
