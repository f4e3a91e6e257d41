"""What a model serves for a batch of rows: its predictions, its baseline while the kill switch is
on, and — for A/B serving — which arm each row falls in (docs/release.md).

Both ML.PREDICT and the scoring functions behind views score through here, so a view and a query
serve the same thing.
"""

from __future__ import annotations

import typing as t

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from ..errors import DataError, SqlmlError
from .baseline import Baseline
from .kinds import CLUSTERING

if t.TYPE_CHECKING:
    from .loaded import LoadedModel

FNV_OFFSET, FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)
SPLIT_KEY = "__sqlml_split_key"  # ML.PREDICT's input column holding the canonical split key (not returned)


def baseline_output(model: "LoadedModel", rows: int) -> pa.Table:
    """The baseline's prediction columns for ``rows`` rows, named and typed like ML.PREDICT's: the
    majority class with the class prior (classifiers), the training mean (regressors)."""
    if model.kind.task == CLUSTERING:
        raise SqlmlError(f"'{model.info.name}' is a {model.kind.name} model: it has no baseline to serve.")
    predicted, probs = Baseline.of(model).predict(rows)
    if probs is not None:
        return model.classification_output(probs, predicted)
    return pa.Table.from_arrays([pa.array(predicted)], schema=model.output_schema())


def split_key_sql(column: str, dtype: pa.DataType, dialect: str) -> str:
    """The canonical text of an A/B split key, as SQL over the input: the value cast to VARCHAR by the
    engine (a TIMESTAMPTZ first converted to UTC, so the session's time zone changes nothing; NULL as
    ''). ML.PREDICT and views both hash this text, so a key lands in the same arm in both, whatever its
    type. A LIST, STRUCT or MAP key has no one value to hash: it is refused."""
    if pa.types.is_nested(dtype):
        kind = "STRUCT" if pa.types.is_struct(dtype) else "MAP" if pa.types.is_map(dtype) else "LIST"
        raise DataError(f"split_key '{column}' is a {kind} column; A/B serving hashes one value per row. Use a scalar "
                        f"column, or make one in the input query (e.g. CAST({column} AS VARCHAR), or {column}[1]).")
    value: exp.Expression = exp.column(column, quoted=True)
    if pa.types.is_timestamp(dtype) and dtype.tz is not None:
        value = exp.func("timezone", exp.Literal.string("UTC"), value)
    return exp.func("coalesce", exp.cast(value, "VARCHAR"), exp.Literal.string("")).sql(dialect)


def challenger_rows(keys: pa.Array | pa.ChunkedArray, fraction: float) -> np.ndarray:
    """Which rows the challenger scores: a row's key, as text (:func:`split_key_sql`), hashed with 64-bit FNV-1a and mixed by
    MurmurHash3's 64-bit finalizer, falls in the lowest ``fraction`` of the hash range. The same key
    lands in the same arm in every run, session and process (no DuckDB or Python hash, whose values may
    change between versions or runs). The finalizer matters: FNV-1a alone leaves the high bits of short
    keys such as '1' … '3566' clustered, which put 45 % of them below a 30 % cut."""
    cut = min(max(fraction, 0.0), 1.0) * 2.0 ** 64  # the hash range is [0, 2^64); 2^64 itself is no uint64
    return mixed(key_hashes(keys)) < np.uint64(cut) if cut < 2.0 ** 64 else np.ones(len(keys), dtype=bool)


def mixed(hashes: np.ndarray) -> np.ndarray:
    """MurmurHash3's fmix64: every input bit moves every output bit (an invertible 64-bit mix)."""
    return mix_in_place(np.array(hashes, dtype=np.uint64))


def mix_in_place(hashes: np.ndarray) -> np.ndarray:
    """:func:`mixed`, overwriting the uint64 array ``hashes`` (about twice as fast: no new arrays)."""
    shift = np.uint64(33)
    with np.errstate(over="ignore"):  # multiplies modulo 2^64
        for multiplier in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53):
            hashes ^= hashes >> shift
            hashes *= np.uint64(multiplier)
        hashes ^= hashes >> shift
    return hashes


def key_hashes(keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit FNV-1a of each key's UTF-8 text, vectorized over byte positions; NULL keys hash as ''."""
    text = pc.fill_null(pc.cast(keys, pa.string()), "")
    text = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)[text.offset:text.offset + len(text) + 1]
    data = np.frombuffer(text.buffers()[2], dtype=np.uint8) if text.buffers()[2] is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    hashes = np.full(len(text), FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):  # FNV multiplies modulo 2^64
        for position in range(int(lengths.max(initial=0))):
            live = lengths > position
            hashes[live] = (hashes[live] ^ data[offsets[:-1][live] + position].astype(np.uint64)) * FNV_PRIME
    return hashes


def ab_output(deployed: "LoadedModel", challenger: "LoadedModel", rows: pa.Table, arms: np.ndarray,
              deployed_version: int, challenger_version: int, deployed_threshold: float | None = None,
              challenger_threshold: float | None = None) -> pa.Table:
    """Prediction columns of ``rows`` in their order, the rows in ``arms`` scored by the challenger and
    the others by the deployed version, with ``model_version`` saying which scored each."""
    parts = [deployed.predict(rows.filter(pa.array(~arms)), deployed_threshold),
             challenger.predict(rows.filter(pa.array(arms)), challenger_threshold)]
    combined = pa.concat_tables(parts)
    versions = np.repeat([deployed_version, challenger_version], [parts[0].num_rows, parts[1].num_rows])
    combined = combined.append_column("model_version", pa.array(versions, pa.int64()))
    order = np.concatenate([np.flatnonzero(~arms), np.flatnonzero(arms)])
    return combined.take(pa.array(np.argsort(order, kind="stable")))
