"""The Engine protocol: exactly the surface sqlml's other layers use to run SQL and move Arrow data.

An engine knows SQL and Arrow, nothing of models. DuckDB is :mod:`sqlml.engines.duckdb`; a second
engine (Spark) implements the same methods in a module of its own.
"""

from __future__ import annotations

import typing as t

import pyarrow as pa

#: A scoring function: an Arrow struct array of feature columns and the other arguments' arrays in,
#: one Arrow struct array out.
ScoringFunction = t.Callable[..., pa.StructArray]


class Engine(t.Protocol):
    #: The sqlglot dialect the planner writes this engine's SQL in.
    dialect: str

    def execute(self, sql: str, params: list | None = None) -> t.Any:
        """Run one statement; a query's result comes back in the engine's own lazy form (shown to users)."""

    def bound(self, parameters: dict) -> t.ContextManager[None]:
        """Bind ``$name`` values to every query run inside the block (a statement and the queries derived
        from it, each given the values it names); ``{}`` when the statement has none."""

    def fetch(self, sql: str, params: list | None = None) -> list[tuple]:
        """Run a small query (the registry's), its rows as tuples."""

    def read_arrow(self, sql: str) -> pa.Table:
        """The whole result of a query as an Arrow table."""

    def read_batches(self, sql: str) -> t.Iterator[pa.RecordBatch]:
        """The result of a query as a stream of record batches."""

    def stream_batches(self, sql: str) -> t.Iterator[pa.RecordBatch]:
        """The result of a query as record batches that may still be read while a later statement runs on
        this engine (one that reads a stream registered with :meth:`register_stream`). The rows are those
        the query returns when this is called."""

    def schema(self, sql: str) -> pa.Schema:
        """Column names and types of a query, without running it."""

    def temp_name(self, prefix: str = "sqlml") -> str:
        """A name no user table has, for a table registered for one statement."""

    def register_table(self, name: str, table: pa.Table) -> None:
        """Expose an Arrow table to SQL under ``name``."""

    def register_stream(self, name: str, schema: pa.Schema, batches: t.Iterator[pa.RecordBatch]) -> None:
        """Expose a stream of record batches to SQL under ``name``, for one statement that reads it once,
        pulling batches as it runs (so they are never all in memory). Dropped with :meth:`unregister_table`."""

    def unregister_table(self, name: str) -> None: ...

    def result(self, table: pa.Table) -> t.Any:
        """An Arrow table in the same form :meth:`execute` returns query results in."""

    def transaction(self) -> t.ContextManager[None]:
        """One short write transaction, rolled back on any failure."""

    def in_transaction(self) -> bool:
        """Whether the caller has a transaction open on this engine's connection."""

    def define_scoring_function(self, name: str, function: ScoringFunction, features: list[tuple[str, str]],
                                extra: list[str], output: pa.Schema) -> None:
        """Make ``name(struct of features, extra…)`` callable from SQL, for views; ``features`` are (name,
        'DOUBLE' | 'VARCHAR'), ``extra`` the SQL types of the other arguments. Idempotent."""

    def drop_scoring_function(self, name: str) -> None: ...

    def scoring_sql(self, name: str, features: list[tuple[str, str]], extra_sql: list[str], input_sql: str) -> str:
        """``SELECT <output columns>, <input columns> FROM (input_sql)`` through the scoring function ``name``."""

    def view_definitions(self) -> list[tuple[str, str, str]]:
        """(database, view, SQL text) of every view the engine can see."""

    def current_database(self) -> str: ...
