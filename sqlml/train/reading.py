"""The rows CREATE MODEL trains on, read from the engine in a form the matrix can be built from once.

DuckDB hands record batches over Arrow's C data interface: every column of a batch keeps the whole
batch alive, so a column of a table read as it comes cannot be freed on its own. Here each batch is
re-owned as it arrives, with its text feature columns dictionary-encoded (a few bytes a row instead
of the strings), so the table holds about the bytes of its numbers and the matrix builder
(:mod:`sqlml.train.matrix`) can free each column as soon as it is encoded. The label, split and
weight columns stay as they are read.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc


@dataclass
class Rows:
    """A training query's rows, handed on by whoever read them so that the one who trains holds the
    only reference (and can free columns as it encodes them): :meth:`take` gives the table away.
    ``schema`` is the query's own (text columns as text, before any encoding)."""

    table: pa.Table | None
    schema: pa.Schema
    notes: list[str] | None = None  # set when the training rows were sampled before reading (their notes)
    split: t.Any = None  # the split of the rows read, when they were chosen before reading

    def take(self) -> pa.Table:
        table, self.table = self.table, None
        if table is None:
            raise RuntimeError("The training rows were already taken.")  # a programming error, not the user's
        return table


def unwrap(rows: Rows | pa.Table) -> tuple[pa.Table, Rows | None]:
    """The table of ``rows`` (taken from a :class:`Rows`), and the holder if there was one."""
    return (rows.take(), rows) if isinstance(rows, Rows) else (rows, None)


def read(batches: t.Iterable[pa.RecordBatch], schema: pa.Schema, keep: t.Iterable[str | None]) -> Rows:
    """The rows of ``batches`` (of ``schema``), re-owned batch by batch; text columns other than ``keep``
    (the label, split and weight columns, in any case) dictionary-encoded."""
    kept = {name.lower() for name in keep if name}
    encode = [i for i, f in enumerate(schema) if f.name.lower() not in kept and _text(f.type)]
    owned = [_own(batch, encode) for batch in batches]
    if not owned:
        return Rows(schema.empty_table(), schema)
    table = pa.Table.from_batches(owned)
    pa.default_memory_pool().release_unused()
    return Rows(table, schema)


def _text(dtype: pa.DataType) -> bool:
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype)


def _own(batch: pa.RecordBatch, encode: list[int]) -> pa.RecordBatch:
    """``batch`` in buffers of its own (none shared with the engine's batch), ``encode`` columns as dictionaries."""
    columns = [pc.dictionary_encode(c) if i in encode else _copy(c) for i, c in enumerate(batch.columns)]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _copy(array: pa.Array) -> pa.Array:
    """A copy of ``array`` in new buffers (concatenation allocates them)."""
    return pa.concat_arrays([array, array.slice(0, 0)])


def read_training(engine: t.Any, sql: str, kind: t.Any, options: dict) -> Rows:
    """The rows of CREATE MODEL's query ``sql`` on ``engine``, streamed (:func:`read`); the label, split
    and weight columns that ``options`` name are kept as read."""
    label = options.get("input_label_cols", ["label"])[0] if kind.supervised else None
    keep = [label, options.get("data_split_col"), options.get("instance_weight_col")]
    return read(engine.read_batches(sql), engine.schema(sql), keep)
