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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sqlglot import exp

from ..errors import DataError
from ..model.kinds import ModelKind
from ..sql.nodes import RowNumbers, query
from . import sample as sampling
from .labels import column_name, prepare_label
from .matrix import release
from .split import HASHED, Split, row_hashes, split_rows

_ROW = "__sqlml_row"  # the query's row number, for reading only the rows a sample keeps


@dataclass
class Rows:
    """A training query's rows, handed on by whoever read them so that the one who trains holds the
    only reference (and can free columns as it encodes them): :meth:`take` gives the table away.
    ``schema`` is the query's own (text columns as text, before any encoding)."""

    table: pa.Table | None
    schema: pa.Schema
    notes: list[str] | None = None  # set when the training rows were sampled before reading (their notes)
    split: Split | None = None  # the split of the rows read, when they were chosen before reading

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
    release()
    return Rows(pa.Table.from_batches(owned), schema)


def _text(dtype: pa.DataType) -> bool:
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype)


def _own(batch: pa.RecordBatch, encode: list[int]) -> pa.RecordBatch:
    """``batch`` in buffers of its own (none shared with the engine's batch), ``encode`` columns as dictionaries."""
    columns = [pc.dictionary_encode(c) if i in encode else _copy(c) for i, c in enumerate(batch.columns)]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _copy(array: pa.Array) -> pa.Array:
    """A copy of ``array`` in new buffers (concatenation allocates them)."""
    return pa.concat_arrays([array, array.slice(0, 0)])


def read_sample(engine: t.Any, sql: str, schema: pa.Schema, kind: ModelKind, options: dict, label: str | None,
                 keep: list[str | None]) -> Rows | None:
    """The rows of CREATE MODEL's query ``sql`` when ``max_training_rows`` / ``sample_fraction`` leave
    training rows out; ``keep`` as in :func:`read`. Sampling before reading: the split and the sample are drawn, exactly as from the whole table, from
    a first read of only the label and split columns; then the engine returns only the chosen rows
    (numbered by ``row_number() OVER ()``, the query's own order). None when that cannot apply (no
    label or split column to draw from; a column the options name is missing, or no rows: the whole
    read reports it), when nothing is left out, or when the second read does not return the same
    labels (a query whose row order is not stable): then the whole query is read and sampled in
    Python, as without this. The SQL is written in the engine's dialect (``engine.dialect``)."""
    try:
        names = [column_name(schema.empty_table(), n, "column") for n in _split_columns(options, label)]
    except DataError:
        return None
    if not names:
        return None
    numbered = exp.select(exp.alias_(RowNumbers(), _ROW), exp.Star()).from_(query(sql, "__sqlml_query")).sql(engine.dialect)
    narrow, hashes = _narrow(engine, numbered, names, options)
    if narrow.num_rows == 0:
        return None
    positions = narrow[_ROW].to_numpy()
    narrow = narrow.drop_columns([_ROW])
    if kind.supervised:
        if narrow[names[0]].null_count:  # prepare_label drops these rows: number the rest as it does
            labelled = pc.is_valid(narrow[names[0]]).to_numpy(zero_copy_only=False)
            positions, hashes = positions[labelled], None if hashes is None else hashes[labelled]
        narrow, classes = prepare_label(narrow, names[0], kind)
    else:
        classes = None
    whole = split_rows(narrow, options, options.get("random_seed"), hashes)
    split, notes = sampling.limit_training_rows(whole, narrow, names[0] if label else None, classes, options)
    if not notes:
        return None
    chosen = split.train if split.eval is None else np.union1d(split.train, split.eval)
    rows = _read_rows(engine, numbered, positions[chosen], schema, keep)
    if not rows.table[names[0]].equals(narrow[names[0]].take(pa.array(chosen))):
        return None
    rows.notes = notes
    rows.split = Split(np.searchsorted(chosen, split.train),
                       None if split.eval is None else np.searchsorted(chosen, split.eval), whole.fraction)
    return rows


def _narrow(engine: t.Any, numbered: str, names: list[str], options: dict) -> tuple[pa.Table, np.ndarray | None]:
    """The row numbers and the columns ``names`` of the ``numbered`` query; with a hash split, also each
    row's hash over all its columns (:func:`sqlml.train.split.row_hashes`), computed as the rows stream by."""
    columns = [_ROW, *names]
    if options.get("data_split_method", "AUTO_SPLIT") not in HASHED:
        selected = exp.select(*(exp.column(c, quoted=True) for c in columns)).from_(query(numbered, "__sqlml_numbered"))
        return engine.read_arrow(selected.sql(engine.dialect)), None
    kept, hashes = [], []
    for batch in engine.read_batches(numbered):
        hashes.append(row_hashes(batch.drop_columns([_ROW]), options.get("random_seed")))
        kept.append(_own(batch.select(columns), []))  # its own buffers: the engine's batch is freed
    schema = pa.schema([engine.schema(numbered).field(c) for c in columns])
    return pa.Table.from_batches(kept, schema), np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)


def _split_columns(options: dict, label: str | None) -> list[str]:
    """The columns the split and the sample are drawn from: the label, and the split column of CUSTOM and SEQ."""
    split = options.get("data_split_col") if options.get("data_split_method") in ("CUSTOM", "SEQ") else None
    return [n for n in (label, split) if n]


def _read_rows(engine: t.Any, numbered: str, positions: np.ndarray, schema: pa.Schema,
               keep: list[str | None]) -> Rows:
    """The rows of the ``numbered`` query at ``positions`` (ascending), in that order."""
    name = engine.temp_name("sqlml_rows")
    engine.register_table(name, pa.table({_ROW: pa.array(positions, pa.int64())}))
    row = exp.column(_ROW)
    chosen = (exp.select(exp.Star(except_=[row.copy()])).from_(query(numbered, "__sqlml_numbered"))
              .where(row.copy().isin(query=exp.select(row.copy()).from_(name))).order_by(row.copy()))
    try:
        return read(engine.read_batches(chosen.sql(engine.dialect)), schema, keep)
    finally:
        engine.unregister_table(name)
