"""Out of core: CREATE TABLE … AS SELECT * FROM ML.PREDICT over a file-backed table several times larger
than DuckDB's memory_limit, in a child process whose address space is capped — it completes only because
ML.PREDICT streams (materializing its output, as sqlml did before, needs ~100 MB more than the cap allows).

The cap is calibrated on this machine: a first child scores a small table with no cap and reports its
peak address space (Python, scikit-learn, DuckDB and Arrow map ~1–2 GB whatever the rows); the big run
gets that plus HEADROOM. The figures are checked against scoring the same table in pieces of 100,000
rows with the model's estimator on NumPy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import sqlml

ROWS, SMALL_ROWS, PIECE = 1_500_000, 500_000, 100_000
HEADROOM_MB = 150  # streaming grew the peak ~60 MB from 500,000 to 1.5 M rows; materializing needs ~260 MB
MEMORY_LIMIT = "48MB"  # the table is ~270 MB on disk (~390 MB as Arrow)
TEXT = " || ".join(f"md5((range * 4 + {i})::VARCHAR)" for i in range(4))  # 128 random characters a row

CHILD = textwrap.dedent("""
    import json, os, resource, sys
    path, spill, cap_mb, table, limit = sys.argv[1:6]
    if int(cap_mb):
        resource.setrlimit(resource.RLIMIT_AS, (int(cap_mb) * 2**20, int(cap_mb) * 2**20))
    import sqlml
    with sqlml.connect(path, progress=lambda message: None) as conn:
        conn.sql(f"SET memory_limit = '{limit}'")
        conn.sql("SET threads = 2")
        conn.sql(f"SET temp_directory = '{spill}'")
        conn.sql(f"CREATE TABLE scored AS SELECT * FROM ML.PREDICT(MODEL m, TABLE {table})")
        count, checksum, positives = conn.sql(
            "SELECT count(*), sum(id * predicted_label_probs[2].prob), count(*) FILTER (WHERE predicted_label) "
            "FROM scored").fetchall()[0]
        conn.sql("DROP TABLE scored")
    status = {l.split(":")[0]: int(l.split()[1]) // 1024 for l in open("/proc/self/status") if l.startswith("Vm")}
    print(json.dumps({"count": count, "checksum": checksum, "positives": positives,
                      "peak_mb": status["VmPeak"], "hwm_mb": status["VmHWM"]}))
""")


def _make_database(path: str) -> None:
    numbers = ", ".join(f"random() * {i + 1} AS x{i}" for i in range(10))
    with sqlml.connect(path, progress=lambda message: None) as conn:
        conn.sql("SELECT setseed(0.25)")
        for name, rows in (("big", ROWS), ("small", SMALL_ROWS)):
            conn.sql(f"CREATE TABLE {name} AS SELECT range AS id, {numbers}, 'c' || (range % 20)::VARCHAR AS s1, "
                     f"{TEXT} AS note FROM range({rows})")
        conn.sql("CREATE TABLE train AS SELECT * EXCLUDE (id, note), x0 + x3 / 4 + (s1 = 'c1')::INT > 0.9 AS label "
                 "FROM small LIMIT 5000")
        conn.sql("CREATE MODEL m OPTIONS (model_type = 'logistic_reg') AS SELECT * FROM train")


def _child(path: str, spill: str, cap_mb: int, table: str) -> dict:
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "ARROW_DEFAULT_MEMORY_POOL": "system"}
    done = subprocess.run([sys.executable, "-c", CHILD, path, spill, str(cap_mb), table, MEMORY_LIMIT], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _in_pieces(path: str) -> tuple[int, float, int]:
    """Row count, checksum and positive predictions of ``big`` scored 100,000 rows at a time by the
    estimator itself (predict_proba on the model's feature matrix), without ML.PREDICT."""
    with sqlml.connect(path, read_only=True, progress=lambda message: None) as conn:
        model = conn.executor.load("m")
        positive = list(model.classes).index(True)
        count, checksum, positives = 0, 0.0, 0
        for start in range(0, ROWS, PIECE):
            piece = conn.duckdb.sql(f"SELECT * FROM big WHERE id >= {start} AND id < {start + PIECE}").to_arrow_table()
            probs = model.estimator.predict_proba(model.features(piece))[:, positive]
            count += piece.num_rows
            checksum += float(np.dot(piece["id"].to_numpy().astype(np.float64), probs))
            positives += int((probs > 0.5).sum())
    return count, checksum, positives


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc and RLIMIT_AS")
def test_scoring_a_table_larger_than_memory_completes_under_an_address_space_cap(tmp_path):
    path, spill = str(tmp_path / "big.duckdb"), str(tmp_path / "spill")
    _make_database(path)
    on_disk = os.path.getsize(path) / 2**20
    assert on_disk > 4 * int(MEMORY_LIMIT[:-2]), on_disk  # several times DuckDB's memory limit

    calibration = _child(path, spill, 0, "small")
    assert calibration["count"] == SMALL_ROWS
    cap = calibration["peak_mb"] + HEADROOM_MB
    scored = _child(path, spill, cap, "big")

    count, checksum, positives = _in_pieces(path)
    assert scored["count"] == count == ROWS
    assert scored["checksum"] == pytest.approx(checksum, rel=1e-10)
    assert scored["positives"] == positives
    assert 0 < positives < ROWS
