"""The Spark engine: Spark SQL over temporary views, row-level work on the executors (``mapInArrow``),
results as lazy Spark DataFrames, and the registry in Parquet files (:mod:`.store`).

Only small results reach this (the driver's) process: registry rows, statistics, training rows (a
sample of at most ``max_training_rows``), and what the handlers that read every row in this process
need (:meth:`SparkEngine.input_batches`, docs/scale_out.md lists them).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import typing as t

import pyarrow as pa
from sqlglot import exp

from ...errors import UnsupportedError
from ..base import BatchFunction, Stream
from . import batches as shipped
from .dialect import NAME as DIALECT
from .errors import guarded
from .store import CATALOG, SCHEMA, Store

#: Rows read on the driver to learn an output's columns, and to fail there (with sqlml's own error)
#: on input the row-level work refuses.
PROBE_ROWS = 16
#: Rows CREATE MODEL collects to the driver when the options set no max_training_rows.
MAX_TRAINING_ROWS = 1_000_000


class SparkRows:
    """Row-level output computed by Spark's executors: a DataFrame, not read yet."""

    def __init__(self, frame: t.Any, schema: pa.Schema):
        self.frame, self.schema = frame, schema
        self.error: Exception | None = None  # raised on the executors, and reported by Spark (translated there)

    def table(self) -> pa.Table:
        return shipped.normalized(guarded(self.frame.toArrow))

    def close(self) -> None:
        """Nothing runs until the DataFrame is read."""


class SparkAggregates:
    """Column aggregates of one query computed by Spark (:class:`sqlml.engines.base.ColumnAggregates`):
    the driver receives one row of ranges, ``rank`` values per column, or one row of bucket counts."""

    def __init__(self, frame: t.Any, dialect: str):
        self.frame, self.dialect = frame, dialect

    def _double(self, name: str) -> t.Any:
        return self.frame[exp.to_identifier(name, quoted=True).sql(self.dialect)].cast("double")

    def _finite(self, x: t.Any) -> t.Any:
        from pyspark.sql import functions as F
        return ~F.isnan(x) & (x > float("-inf")) & (x < float("inf"))  # Spark orders NaN above +inf

    def ranges(self, columns: list[str]) -> dict[str, list]:
        from pyspark.sql import functions as F
        found = []
        for x in map(self._double, columns):
            finite = F.when(self._finite(x), x)
            found += [F.min(finite), F.max(finite), F.count_if(F.isnan(x)), F.count_if(x == float("-inf")),
                      F.count_if(x == float("inf"))]
        row = guarded(self.frame.agg(*found).collect)[0] if columns else []
        return {name: [row[5 * i], row[5 * i + 1], *(int(n) for n in row[5 * i + 2:5 * i + 5])]
                for i, name in enumerate(columns)}

    def top_values(self, column: str, rank: int) -> pa.Table:
        from pyspark.sql import functions as F
        value = self.frame[exp.to_identifier(column, quoted=True).sql(self.dialect)]
        counted = self.frame.where(value.isNotNull()).groupBy(value.alias("value")).count()
        return shipped.normalized(guarded(counted.orderBy(F.desc("count"), F.asc("value")).limit(rank).toArrow))

    def bucket_counts(self, edges: dict[str, list[float]]) -> dict[str, list[int]]:
        """Counted as the finite values at or above each lower edge (and not above the last edge): a
        bucket's count is the difference of two neighbours, so each value is compared, never divided."""
        from pyspark.sql import functions as F
        found = []
        for name, bounds in edges.items():
            x = self._double(name)
            inside = self._finite(x) & (x <= float(bounds[-1]))
            found += [F.count_if(inside & (x >= float(low))) for low in bounds[:-1]]
        row, counts, start = guarded(self.frame.agg(*found).collect)[0], {}, 0
        for name, bounds in edges.items():
            above = [int(n) for n in row[start:start + len(bounds) - 1]] + [0]
            counts[name], start = [a - b for a, b in zip(above, above[1:])], start + len(bounds) - 1
        return counts


class SparkEngine:
    """Runs SQL on one SparkSession (a cluster's, or a local one :func:`local_session` starts)."""

    dialect = DIALECT  # Spark SQL, with sqlml's own nodes (GENERATE_ARRAY, quantiles ...) in Spark's words
    rows_in_process = False
    scoring_views = False  # a persistent Spark view cannot call a temporary function: views over ML.PREDICT are temporary
    _names = itertools.count(1)

    def __init__(self, spark: t.Any, registry: str | None = None, max_training_rows: int = MAX_TRAINING_ROWS):
        self.spark = spark
        self.store = Store(spark, registry or os.path.join(os.getcwd(), "sqlml_registry"))
        self.max_training_rows = max_training_rows

    def _frame(self, sql: str, params: list | None = None) -> t.Any:
        """A DataFrame of one statement (Spark runs commands as it reads them; queries when read)."""
        if self.store.handles(sql):
            return self.store.frame(sql, params)
        return guarded(lambda: self.spark.sql(sql, args=params) if params else self.spark.sql(sql))

    @contextlib.contextmanager
    def bound(self, parameters: dict) -> t.Iterator[None]:
        """``$name`` parameters of a statement: not bound on Spark yet (Spark names them ``:name``)."""
        if parameters:
            raise UnsupportedError("Parameters ($name) are not bound on Spark yet: write the values into the statement.")
        yield

    def execute(self, sql: str, params: list | None = None) -> t.Any:
        if self.store.handles(sql):  # a query of the registry's tables runs on Spark; a write in the store
            return guarded(lambda: self.store.execute(sql, params))
        return self._frame(sql, params)

    def fetch(self, sql: str, params: list | None = None) -> list[tuple]:
        if self.store.handles(sql):
            return guarded(lambda: self.store.run(sql, params)) or []
        return [tuple(shipped.python(v) for v in row) for row in guarded(self._frame(sql, params).collect)]

    def read_arrow(self, sql: str) -> pa.Table:
        return shipped.normalized(guarded(self._frame(sql).toArrow))

    def read_batches(self, sql: str) -> t.Iterator[pa.RecordBatch]:
        """Every row comes to the driver, a partition at a time (so they are not all in its memory at once)."""
        return _reported(shipped.streamed(self._frame(sql)))

    def input_batches(self, sql: str) -> t.Iterator[pa.RecordBatch]:
        return self.read_batches(sql)

    def schema(self, sql: str) -> pa.Schema:
        return shipped.arrow_schema(guarded(lambda: self._frame(sql).schema))

    def temp_name(self, prefix: str = "sqlml") -> str:
        return f"__{prefix}_{next(self._names)}"

    def register_table(self, name: str, table: pa.Table) -> None:
        self._frame_of(table).createOrReplaceTempView(name)

    def _frame_of(self, table: pa.Table) -> t.Any:
        table = shipped.plain(table)
        if table.num_rows == 0:  # Spark infers nothing from no rows: give it the schema
            return self.spark.createDataFrame([], shipped.spark_schema(table.schema))
        return guarded(lambda: self.spark.createDataFrame(table))

    def unregister_table(self, name: str) -> None:
        self.spark.catalog.dropTempView(name)

    def create_table(self, name: str, table: pa.Table) -> None:
        """A table of Spark's current catalog (Parquet in its warehouse folder), replacing one of that name;
        written as one file, so that reading it gives the rows in their order (as DuckDB does)."""
        target = exp.to_identifier(name, quoted=True).sql(self.dialect)
        guarded(lambda: self._frame_of(table).coalesce(1).write.mode("overwrite").saveAsTable(target))

    def apply(self, input_sql: str, function: BatchFunction, empty: t.Callable[[], pa.Table]) -> SparkRows:
        """``function`` on the executors over the rows of ``input_sql`` (``mapInArrow``), the function and
        the models it holds broadcast once. A few rows are first computed here, for the output's columns
        and so that input the function refuses fails here with its own error."""
        frame = self._frame(input_sql)
        probe = shipped.normalized(guarded(frame.limit(PROBE_ROWS).toArrow))
        schema = (function(probe) if probe.num_rows else empty()).schema
        work = functools.partial(shipped.run, self.spark.sparkContext.broadcast(shipped.dumps(function)), schema)
        return SparkRows(guarded(lambda: frame.mapInArrow(work, shipped.spark_schema(schema))), schema)

    def counted(self, input_sql: str, function: BatchFunction, empty: t.Callable[[], pa.Table]) -> pa.Table:
        """``function`` on the executors, its distinct output rows counted by Spark: the driver receives
        one row per distinct output (for metrics, per distinct label, prediction and probabilities)."""
        frame = self.apply(input_sql, function, empty).frame
        return shipped.normalized(guarded(frame.groupBy(*frame.columns).count().toArrow))

    def column_aggregates(self, input_sql: str) -> "SparkAggregates":
        return SparkAggregates(self._frame(input_sql), self.dialect)

    def expose(self, name: str, output: SparkRows | Stream, read_once: bool) -> None:
        if isinstance(output, SparkRows):
            output.frame.createOrReplaceTempView(name)
        else:
            self.register_table(name, output.table())

    def detached(self, sql: str) -> t.Any:
        """Spark binds the views a query reads when it is planned, so its DataFrame outlives them."""
        return self.execute(sql)

    def result(self, rows: pa.Table | SparkRows | Stream) -> t.Any:
        if isinstance(rows, SparkRows):
            return rows.frame
        return self._frame_of(rows if isinstance(rows, pa.Table) else rows.table())

    def training_sample(self, sql: str, size: int | None, seed: int, stratify: str | None) -> tuple[pa.Table, str] | None:
        """At most ``size`` (else :data:`MAX_TRAINING_ROWS`) rows of ``sql`` for the driver to train on, a
        seeded sample Spark draws (each value of ``stratify`` keeping its share), with a note saying
        so; None when the query has no more rows than that."""
        size = size or self.max_training_rows
        frame = self._frame(sql)
        total = guarded(frame.count)
        if total <= size:
            return None
        fraction = min(1.0, 1.05 * size / total)  # a Bernoulli draw: a little over, then cut to size
        if stratify is None:
            sample = frame.sample(fraction=fraction, seed=seed)
        else:
            column = frame[exp.to_identifier(stratify, quoted=True).sql(self.dialect)]
            values = [row[0] for row in guarded(frame.where(column.isNotNull()).select(column).distinct().collect)]
            sample = frame.sampleBy(column, {v: fraction for v in values}, seed)
        table = shipped.normalized(guarded(sample.limit(size).toArrow))
        how = f"stratified by {stratify}" if stratify else "uniform"
        return table, (f"Training on {table.num_rows:,} of {total:,} rows, a sample Spark drew on its executors "
                       f"({how}, seed {seed}; max_training_rows {size:,}); the evaluation split is held out of it.")

    @contextlib.contextmanager
    def transaction(self) -> t.Iterator[None]:
        """The registry's writes inside commit together (:class:`.store.Store`); Spark SQL has no transactions."""
        with self.store.transaction():
            yield

    def in_transaction(self) -> bool:
        """Never: Spark SQL has no transactions for a caller to open."""
        return False

    def current_database(self) -> str:
        """The registry's catalog (its tables are the store's, not Spark's)."""
        return CATALOG

    def has_table(self, schema: str, table: str) -> bool:
        if schema.lower() == SCHEMA:
            return self.store.has_table(table)
        return guarded(lambda: self.spark.catalog.tableExists(f"{schema}.{table}"))

    def read_only(self) -> bool:
        return self.store.read_only()

    def temporary_view(self, name: str, sql: str, existing: str) -> bool:
        """A DataFrame's temporary view (one CREATE TEMPORARY VIEW makes would read the statement's
        registered names when it runs, and they are dropped when the statement ends)."""
        if existing == "ignore" and guarded(lambda: self.spark.catalog.tableExists(name)):
            return False
        frame = self._frame(sql)
        guarded(lambda: frame.createOrReplaceTempView(name) if existing == "replace" else frame.createTempView(name))
        return True

    def view_definitions(self) -> list[tuple[str, str, str]]:
        return []  # Spark's views are temporary: none survives a session, so none needs its scoring function

    def stored_views(self) -> dict[tuple[str, str], str]:
        return {}  # sqlml makes no persistent view on Spark (its views over ML.PREDICT are the session's)

    def define_scoring_function(self, *args: t.Any) -> None:
        raise UnsupportedError(VIEWS)

    def drop_scoring_function(self, name: str) -> None:
        """No scoring functions are ever defined on Spark."""

    def scoring_sql(self, *args: t.Any) -> str:
        raise UnsupportedError(VIEWS)


def _reported(batches: t.Iterator[pa.RecordBatch]) -> t.Iterator[pa.RecordBatch]:
    """``batches``, with Spark's errors while reading them as sqlml errors."""
    while (batch := guarded(lambda: next(batches, None))) is not None:
        yield batch


VIEWS = ("Spark SQL cannot call sqlml's scoring functions (a persistent Spark view cannot call a temporary function): "
         "CREATE VIEW … AS SELECT … FROM ML.PREDICT(…) makes a temporary view of the session (docs/scale_out.md#views).")
