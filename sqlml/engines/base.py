"""The Engine protocol: exactly the surface sqlml's other layers use to run SQL and move Arrow data.

An engine knows SQL and Arrow, nothing of models. DuckDB is :mod:`sqlml.engines.duckdb`, Spark
:mod:`sqlml.engines.spark`; each writes its SQL in a sqlglot dialect of its own (``dialect``), which
also writes sqlml's own nodes (:mod:`sqlml.sql.nodes`).
"""

from __future__ import annotations

import itertools
import typing as t

import pyarrow as pa

#: A scoring function: an Arrow struct array of feature columns and the other arguments' arrays in,
#: one Arrow struct array out.
ScoringFunction = t.Callable[..., pa.StructArray]

#: Row-level work (:meth:`Engine.apply`): one batch of input rows in, its output rows out. It must not
#: hold the engine (Spark ships it to its executors): a module-level function, or a partial of one.
BatchFunction = t.Callable[[pa.Table], pa.Table]


class Stream:
    """Rows computed batch by batch when the statement reading them asks for them (a row-level
    handler's output on an engine that runs Python in this process), so they are never all in memory."""

    def __init__(self, pieces: t.Iterator[pa.Table], empty: t.Callable[[], pa.Table]):
        """The rows of ``pieces`` (one table per input batch), typed like the first; with no pieces at
        all, ``empty()``'s (no rows). The first piece is computed now: a bad input fails here, early."""
        self._pieces = pieces
        self.error: Exception | None = None  # what computing a later batch raised, as it was raised
        first = next(pieces, None)
        self.schema = (first if first is not None else empty()).schema
        self.batches = self._batches(itertools.chain([first] if first is not None else [], pieces))

    def _batches(self, pieces: t.Iterator[pa.Table]) -> t.Iterator[pa.RecordBatch]:
        try:
            for piece in pieces:
                yield from (piece if piece.schema == self.schema else piece.cast(self.schema)).to_batches()
        except Exception as e:  # an engine reading the stream reports only that reading it failed
            self.error = e
            raise

    def table(self) -> pa.Table:
        """All the rows, in memory: for a statement that reads them more than once."""
        return pa.Table.from_batches(list(self.batches), self.schema)

    def close(self) -> None:
        """Stop reading the input (a statement with LIMIT may not read every batch)."""
        self.batches.close()
        if hasattr(self._pieces, "close"):
            self._pieces.close()


class Output(t.Protocol):
    """Rows an engine computes with :meth:`Engine.apply`, not yet read: a :class:`Stream`, or the
    engine's own lazy table (a Spark DataFrame)."""

    schema: pa.Schema
    error: Exception | None

    def table(self) -> pa.Table:
        """All the rows, in memory."""

    def close(self) -> None: ...


class ColumnAggregates(t.Protocol):
    """Aggregates of a query's columns, computed where the rows are (Spark's executors), so that only
    they reach this process (:func:`sqlml.model.drift.aggregated`)."""

    def ranges(self, columns: list[str]) -> dict[str, list]:
        """Each column as DOUBLE: [finite minimum, finite maximum (None without finite values), NaN, -inf, +inf]."""

    def top_values(self, column: str, rank: int) -> pa.Table:
        """The ``rank`` most frequent non-NULL values (column ``value``, of the column's type) with their
        ``count``, most frequent first, ties in value order."""

    def bucket_counts(self, edges: dict[str, list[float]]) -> dict[str, list[int]]:
        """Each column's finite values as DOUBLE counted in the buckets [edges[i], edges[i+1]), the last
        one closed (``numpy.histogram``'s)."""


class Engine(t.Protocol):
    #: The sqlglot dialect the planner writes this engine's SQL in.
    dialect: str
    #: Whether a view can call a scoring function, so that a view over ML.PREDICT is kept in the database
    #: and serves what is deployed when it runs (DuckDB). Where it cannot (a Spark view cannot call a
    #: temporary function), such a view is a temporary view of the session (:meth:`temporary_view`).
    scoring_views: bool
    #: Whether row-level work (:meth:`apply`) runs in this process, so its rows can be counted for a
    #: progress bar (DuckDB); on Spark it runs on the executors.
    rows_in_process: bool

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
        """The result of a query as a stream of record batches, read in this process."""

    def input_batches(self, sql: str) -> t.Iterator[pa.RecordBatch]:
        """The rows of a query an ML.* function reads in this process, as record batches that may still be
        read while the statement around the call runs. The rows are those the query returns when this is
        called."""

    def apply(self, input_sql: str, function: BatchFunction, empty: t.Callable[[], pa.Table]) -> Output:
        """``function`` over the rows of ``input_sql``, batch by batch, where the engine runs row-level
        work: DuckDB in this process, as the statement reading the output pulls it; Spark on its
        executors. ``empty()`` is the output of no rows (its schema, for an input without rows)."""

    def counted(self, input_sql: str, function: BatchFunction, empty: t.Callable[[], pa.Table]) -> pa.Table | None:
        """The distinct rows of ``function``'s output over the rows of ``input_sql``, each with its number
        (column ``count``), computed where the engine runs row-level work; None on an engine that reads
        the rows into this process anyway (DuckDB)."""

    def column_aggregates(self, input_sql: str) -> ColumnAggregates | None:
        """Aggregates of the columns of ``input_sql`` computed by the engine where the rows are; None on an
        engine that reads the rows into this process anyway (DuckDB)."""

    def expose(self, name: str, output: Output, read_once: bool) -> None:
        """Make ``output`` readable by the next statement under ``name`` (``read_once``: the statement
        reads it at most once, so it need not be kept). Dropped with :meth:`unregister_table`."""

    def detached(self, sql: str) -> t.Any:
        """The result of a query that reads names registered for this statement, in the form
        :meth:`execute` returns, still readable once they are dropped."""

    def schema(self, sql: str) -> pa.Schema:
        """Column names and types of a query, without running it."""

    def temp_name(self, prefix: str = "sqlml") -> str:
        """A name no user table has, for a table registered for one statement."""

    def register_table(self, name: str, table: pa.Table) -> None:
        """Expose an Arrow table to SQL under ``name``."""

    def unregister_table(self, name: str) -> None: ...

    def training_sample(self, sql: str, size: int | None, seed: int, stratify: str | None) -> tuple[pa.Table, str] | None:
        """The rows CREATE MODEL trains on, when the engine keeps them elsewhere and the query has more than
        ``size`` (None: the engine's own limit): a sample the engine draws, seeded by ``seed`` (each value of
        column ``stratify`` keeping its share), and a note saying so for the training output and
        ML.TRAINING_INFO. None when every row is read into this process (DuckDB)."""

    def create_table(self, name: str, table: pa.Table) -> None:
        """A table ``name`` of the current database holding ``table``'s rows, replacing one of that name."""

    def result(self, rows: pa.Table | Output) -> t.Any:
        """Rows in the form :meth:`execute` returns query results in."""

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

    def temporary_view(self, name: str, sql: str, existing: str) -> bool:
        """A view ``name`` of this session over the query ``sql``, bound now (it outlives the names
        registered for the statement); a view of that name is replaced, kept or an error (``existing``:
        'replace', 'ignore', 'error'). Whether it was made. Only on engines without :attr:`scoring_views`."""

    def view_definitions(self) -> list[tuple[str, str, str]]:
        """(database, view, SQL text) of every view the engine can see."""

    def stored_views(self) -> dict[tuple[str, str], str]:
        """The persistent views of the current database by (schema, name), with their text as the engine
        stores it (sqlml checks its own views' text against their signed records: sqlml/compiled_views.py)."""

    def current_database(self) -> str:
        """The catalog the registry's tables are named in (:class:`sqlml.registry.schema.Tables`)."""

    def has_table(self, schema: str, table: str) -> bool:
        """Whether the current database has the table ``schema.table``."""

    def read_only(self) -> bool:
        """Whether the current database cannot be written (it is then read as it is, not migrated)."""
