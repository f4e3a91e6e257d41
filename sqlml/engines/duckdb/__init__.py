"""The DuckDB engine (:mod:`.engine`) and the dialect it writes its SQL in (:mod:`.dialect`)."""

from .engine import (
    BATCH_ROWS,
    DuckDBEngine,
    Result,
    connect_duckdb,
    identifiers,
    translate,
    wrap_errors,
)

__all__ = ["BATCH_ROWS", "DuckDBEngine", "Result", "connect_duckdb", "identifiers", "translate", "wrap_errors"]
