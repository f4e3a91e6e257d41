"""sqlml: BigQuery-ML-style machine learning in SQL, on DuckDB and scikit-learn.

    >>> import sqlml
    >>> conn = sqlml.connect()
    >>> conn.sql("CREATE TABLE t AS SELECT range::DOUBLE AS x, 2 * range + 1 AS y FROM range(50)")
    >>> conn.sql("CREATE MODEL m OPTIONS (model_type = 'linear_reg', input_label_cols = ['y']) AS SELECT * FROM t")
    >>> round(conn.sql("SELECT predicted_y FROM ML.PREDICT(MODEL m, (SELECT 10.0 AS x))").fetchall()[0][0], 6)
    21.0

Importing sqlml is cheap: the engine, scikit-learn and the other heavy libraries load on first use.
"""

from __future__ import annotations

import importlib
import os
import typing as t

from .errors import (
    DatabaseBusyError,
    DataError,
    ModelIntegrityError,
    ModelNotFoundError,
    OptionError,
    SqlmlError,
    SqlmlParseError,
)

# OpenMP threads (scikit-learn's, XGBoost's) spin while they wait for each other. On a busy machine a
# spinning thread holds the core that the thread it waits for needs: at load 10 on 2 cores, 20 XGBoost
# iterations on 20,000 rows took 2.3–6.2 s spinning, 0.13 s waiting passively (benchmarks/boosted.py).
# Read by the OpenMP runtime when it loads (with the first model statement); a value set by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if t.TYPE_CHECKING:
    from . import datasets
    from .connection import Connection, connect, register
    from .sql.parse import parse

__all__ = ["Connection", "connect", "register", "parse", "datasets", "SqlmlError", "SqlmlParseError", "OptionError",
           "DataError", "ModelNotFoundError", "ModelIntegrityError", "DatabaseBusyError"]

#: Public names loaded on first access (PEP 562), so ``import sqlml`` stays fast.
_LAZY = {"Connection": "connection", "connect": "connection", "register": "connection", "parse": "sql.parse"}


def load_ipython_extension(ipython: t.Any) -> None:
    """``%load_ext sqlml``: the ``%sqlml`` / ``%%sqlml`` magic (sqlml.magic, imported only now)."""
    importlib.import_module(".magic", __name__).load_ipython_extension(ipython)


def __getattr__(name: str) -> t.Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name == "datasets":
        return importlib.import_module(".datasets", __name__)
    raise AttributeError(f"module 'sqlml' has no attribute {name!r}")
