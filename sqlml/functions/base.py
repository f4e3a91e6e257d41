"""What every ML.* handler shares: the :class:`Call` it receives and the typed table of evaluation rows."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

import pyarrow as pa

from ..engines.base import BatchFunction, ColumnAggregates, Output, Stream
from ..errors import SqlmlError
from ..model.loaded import LoadedModel

__all__ = ["Call", "Data", "Output", "Stream", "as_table"]


@dataclass
class Data:
    """A handler's input rows: a query the engine streams, or a table already in memory. Handlers
    read their input only through this, so they know no engine."""

    batches: t.Callable[[], t.Iterator[pa.RecordBatch]]  # may be read while the statement around the call runs
    schema: t.Callable[[], pa.Schema]
    table: t.Callable[[], pa.Table]
    source: str | None = None  # the query the rows come from, for display (a model card's "evaluated on")
    #: The engine's row-level work over these rows (:meth:`sqlml.engines.base.Engine.apply`); None for rows
    #: in memory, which are mapped here.
    apply: t.Callable[[BatchFunction, t.Callable[[], pa.Table]], Output] | None = None
    #: The engine's count of distinct output rows (:meth:`sqlml.engines.base.Engine.counted`); None where
    #: the rows are read into this process.
    count: t.Callable[[BatchFunction, t.Callable[[], pa.Table]], pa.Table | None] | None = None
    #: The engine's aggregates of these rows' columns (:meth:`sqlml.engines.base.Engine.column_aggregates`).
    aggregate: t.Callable[[], ColumnAggregates | None] | None = None

    def tables(self) -> t.Iterator[pa.Table]:
        """The batches, each as a table, read in this process."""
        return (pa.Table.from_batches([batch]) for batch in self.batches())

    def map(self, function: BatchFunction, empty: t.Callable[[], pa.Table]) -> Output:
        """Row-level output: ``function`` over each batch where the engine runs row-level work (for
        ML.PREDICT on Spark, its executors), computed when the statement reading it asks;
        ``empty()`` is the output of no rows. ``function`` must hold no engine (see BatchFunction)."""
        if self.apply is not None:
            return self.apply(function, empty)
        return Stream((function(rows) for rows in self.tables()), empty)

    def counted(self, function: BatchFunction, empty: t.Callable[[], pa.Table]) -> pa.Table | None:
        """The distinct rows of ``function``'s output over these rows, each with its number (column
        ``count``), counted where the rows are (Spark's executors), so only those reach this process;
        None where the engine reads rows into this process anyway (DuckDB, rows in memory): then the
        caller reads them batch by batch."""
        return self.count(function, empty) if self.count is not None else None

    def column_aggregates(self) -> ColumnAggregates | None:
        """Aggregates of these rows' columns computed where the rows are (Spark's executors), so that only
        they reach this process; None where the rows are read into this process anyway (DuckDB, rows in
        memory): then the caller reads them batch by batch."""
        return self.aggregate() if self.aggregate is not None else None

    def empty(self) -> pa.Table:
        return self.schema().empty_table()

    @classmethod
    def of_table(cls, table: pa.Table, source: str | None = None) -> "Data":
        return cls(lambda: iter(table.to_batches()), lambda: table.schema, lambda: table, source)


@dataclass
class Call:
    """One ML.* call with its model loaded, its input rows and its parameters as Python values."""

    function: str
    model: "LoadedModel | None" = None
    data: Data | None = None
    params: dict = field(default_factory=dict)
    argument: t.Any = None  # a non-STRUCT last argument, e.g. GENERATE_ARRAY(...) for ML.ROC_CURVE
    training: Data | None = None  # the model's training query, for explanations over its rows
    trials: list[dict] | None = None  # a tuned version's trials (sqlml.catalog.READS_TRIALS)
    challenger: "LoadedModel | None" = None  # A/B serving: the version aliased "challenger"
    other: "Call | None" = None  # ML.COMPARE's second model with the same rows read through its own TRANSFORM
    data_b: Data | None = None  # ML.VALIDATE_DATA_DRIFT's second data argument (the study rows)
    teacher: "LoadedModel | None" = None  # ML.EVALUATE of a distilled model given data: its teacher (sqlml.train.distill)

    def require_model(self) -> "LoadedModel":
        if self.model is None:
            raise SqlmlError(f"ML.{self.function} needs a MODEL argument: ML.{self.function}(MODEL name, ...).")
        return self.model

    @property
    def has_input(self) -> bool:
        return self.data is not None

    def require_input(self) -> Data:
        if self.data is None:
            raise SqlmlError(f"ML.{self.function} needs input data: ML.{self.function}(MODEL m, TABLE t) or (SELECT ...).")
        return self.data

    def input_table(self) -> pa.Table:
        return self.require_input().table()

    def param(self, name: str, default: t.Any = None) -> t.Any:
        return self.params.get(name, default)


TEXT_COLUMNS = ("slice_column", "slice_value", "baseline_strategy", "primary_metric")
BOOL_COLUMNS = ("beats_baseline", "unreliable", "worse_than_overall", "degraded")


def as_table(rows: list[dict], extra: list[pa.Field] = ()) -> pa.Table:
    """Rows as a table with fixed types: metrics DOUBLE (NULL when undefined), flags BOOLEAN."""
    fields = {f.name: f for f in extra}
    for name in rows[0]:
        if name not in fields:
            kind = (pa.string() if name in TEXT_COLUMNS else pa.bool_() if name in BOOL_COLUMNS
                    else pa.int64() if name == "row_count" else pa.float64())
            fields[name] = pa.field(name, kind)
    return pa.Table.from_pylist(rows, schema=pa.schema(list(fields.values())))
