"""What every ML.* handler shares: the :class:`Call` it receives and the typed table of evaluation rows."""

from __future__ import annotations

import itertools
import typing as t
from dataclasses import dataclass, field

import pyarrow as pa

from ..errors import SqlmlError
from ..model.loaded import LoadedModel


@dataclass
class Data:
    """A handler's input rows: a query the engine streams, or a table already in memory. Handlers
    read their input only through this, so they know no engine."""

    batches: t.Callable[[], t.Iterator[pa.RecordBatch]]  # may be read while the statement around the call runs
    schema: t.Callable[[], pa.Schema]
    table: t.Callable[[], pa.Table]
    source: str | None = None  # the query the rows come from, for display (a model card's "evaluated on")

    def tables(self) -> t.Iterator[pa.Table]:
        """The batches, each as a table."""
        return (pa.Table.from_batches([batch]) for batch in self.batches())

    def empty(self) -> pa.Table:
        return self.schema().empty_table()

    @classmethod
    def of_table(cls, table: pa.Table, source: str | None = None) -> "Data":
        return cls(lambda: iter(table.to_batches()), lambda: table.schema, lambda: table, source)


class Stream:
    """A row-level handler's output (ML.PREDICT's, ...): its schema and its record batches, each computed
    when the statement reading it asks for it, so the rows are never all in memory."""

    def __init__(self, pieces: t.Iterator[pa.Table], empty: t.Callable[[], pa.Table]):
        """The rows of ``pieces`` (one table per input batch), typed like the first; with no pieces at
        all, ``empty()``'s (no rows). The first piece is computed now: a bad input fails here, early."""
        self._pieces = pieces
        first = next(pieces, None)
        self.schema = (first if first is not None else empty()).schema
        self.batches = self._batches(itertools.chain([first] if first is not None else [], pieces))

    def _batches(self, pieces: t.Iterator[pa.Table]) -> t.Iterator[pa.RecordBatch]:
        for piece in pieces:
            yield from (piece if piece.schema == self.schema else piece.cast(self.schema)).to_batches()

    def table(self) -> pa.Table:
        """All the rows, in memory: for a statement that reads them more than once."""
        return pa.Table.from_batches(list(self.batches), self.schema)

    def close(self) -> None:
        """Stop reading the input (a statement with LIMIT may not read every batch)."""
        self.batches.close()
        if hasattr(self._pieces, "close"):
            self._pieces.close()


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
