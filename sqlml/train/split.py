"""Training and evaluation rows of CREATE MODEL, with BigQuery's ``data_split_method`` semantics.

A RANDOM split (also AUTO_SPLIT's) decides each row's side by a seeded hash of its content, not by its
position (docs/release.md, "Which rows"): a row is held out when its hash falls in the lowest
``fraction`` of the 64-bit range. The same row is on the same side in every run and process, and a
row held out once stays held out when rows are added to the table, or when the fraction shrinks
(AUTO_SPLIT's above 50,000 rows): the held-out rows of a smaller fraction are a subset of a larger one's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..model.serve import key_hashes, mix_in_place, mixed
from . import sample as sampling
from .labels import query_column

AUTO_SPLIT_NO_SPLIT_BELOW = 500
AUTO_SPLIT_FRACTION_UP_TO = 50_000
AUTO_SPLIT_MAX_EVAL_ROWS = 10_000
NULL_HASH = np.uint64(0x9E3779B97F4A7C15)  # a NULL's hash (and the seed's salt)
COPY_SALT = np.uint64(0xD6E8FEB86659FD93)  # mixed with a row's copy number
HASHED = ("RANDOM", "AUTO_SPLIT")  # the methods that split by the row hash


@dataclass
class Split:
    train: np.ndarray  # row indices, ascending
    eval: np.ndarray | None  # None: evaluate on the training rows, like BigQuery without a split
    fraction: float | None = None  # the hash split's fraction (RANDOM, AUTO_SPLIT), recorded with the version


def split_rows(table: pa.Table, options: dict, seed: int | None, hashes: np.ndarray | None = None) -> Split:
    """Training and evaluation rows with BigQuery's data_split_method semantics; a random split is the
    row hash of :func:`row_hashes` seeded with ``seed``, else :data:`sqlml.train.sample.DATA_SEED`
    (``hashes``: those of ``table``'s rows, when computed as they were read)."""
    n = table.num_rows
    method = options.get("data_split_method", "AUTO_SPLIT")
    everything = np.arange(n)
    if method == "CUSTOM":
        column = options["data_split_col"]
        flags = pc.fill_null(pc.cast(query_column(table, column, "data_split_col"), pa.bool_()), False).to_numpy(zero_copy_only=False)
        return Split(np.flatnonzero(~flags), np.flatnonzero(flags))
    fraction = eval_fraction(method, options.get("data_split_eval_fraction"), n)
    if fraction is None:
        return Split(everything, None)
    if method == "SEQ":
        n_eval = max(1, int(round(n * fraction)))
        order = np.asarray(pc.sort_indices(query_column(table, options["data_split_col"], "data_split_col")))
        return Split(np.sort(order[: n - n_eval]), np.sort(order[n - n_eval:]))
    held = hash_held_out(row_hashes(table, seed) if hashes is None else hashes, fraction)
    if not held.any():  # too few rows for the fraction: evaluated on the training rows, as without a split
        return Split(everything, None)
    return Split(np.flatnonzero(~held), np.flatnonzero(held), fraction)


def eval_fraction(method: str, fraction: float | None, n: int) -> float | None:
    """The share of ``n`` rows held out (None: no split): BigQuery's AUTO_SPLIT keeps every row under 500,
    holds out 20 % up to 50,000 rows and 10,000 rows above; ``data_split_eval_fraction`` overrides the share."""
    if method == "NO_SPLIT" or (method == "AUTO_SPLIT" and n < AUTO_SPLIT_NO_SPLIT_BELOW):
        return None
    if fraction is not None:
        return fraction
    return 0.2 if method != "AUTO_SPLIT" or n <= AUTO_SPLIT_FRACTION_UP_TO else AUTO_SPLIT_MAX_EVAL_ROWS / n


def hash_held_out(hashes: np.ndarray, fraction: float) -> np.ndarray:
    """Which rows a hash split holds out, given every row's :func:`row_hashes`: those whose hash, mixed
    with its copy number (0 for the first row of that content, 1 for the next identical one, …), is in
    the lowest ``fraction`` of the range. Copies of a row are thus split like distinct rows (not all on
    one side), and since identical rows cannot be told apart, adding rows moves none already held out."""
    final = mixed(hashes ^ mixed(copy_numbers(hashes) ^ COPY_SALT))
    return final < np.uint64(min(max(fraction, 0.0), 1.0) * float(np.iinfo(np.uint64).max))


def copy_numbers(hashes: np.ndarray) -> np.ndarray:
    """Each row's number among the rows of the same hash, in row order (0 for the first). Only the rows
    whose hash repeats (usually few) are sorted stably, which is slower than finding them."""
    copy = np.zeros(len(hashes), dtype=np.uint64)
    ordered = np.sort(hashes)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if not len(repeated):
        return copy
    rows = np.flatnonzero(np.isin(hashes, repeated))
    order = np.argsort(hashes[rows], kind="stable")
    ordered = hashes[rows][order]
    first = np.r_[True, ordered[1:] != ordered[:-1]]
    positions = np.arange(len(ordered))
    copy[rows[order]] = (positions - np.maximum.accumulate(np.where(first, positions, 0))).astype(np.uint64)
    return copy


def row_hashes(rows: pa.Table | pa.RecordBatch, seed: int | None) -> np.ndarray:
    """A seeded 64-bit hash of each row's values, independent of the row's position, of the order of the
    columns and of how the rows are batched. Columns are taken in name order; each value hashes as a
    number (integers, floats and booleans: their float64 bits, -0.0 as 0.0, one NaN) or else
    as its text (64-bit FNV-1a of Arrow's text of it: strings, decimals — exact, unlike their float —,
    dates, times), NULL as :data:`NULL_HASH`; the row's hash starts from ``fmix64(seed ^ NULL_HASH)``
    and folds in each column's by ``h = fmix64(h ^ column hash)`` (fmix64: MurmurHash3's finalizer)."""
    start = mixed(np.array([sampling.DATA_SEED if seed is None else seed], dtype=np.uint64) ^ NULL_HASH)
    hashes = np.full(rows.num_rows, start[0], dtype=np.uint64)
    for name in sorted(rows.column_names):
        hashes ^= column_hashes(rows.column(name))
        mix_in_place(hashes)
    return hashes


def column_hashes(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Each value's 64-bit hash (see :func:`row_hashes`)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if pa.types.is_dictionary(values.type) and len(values.dictionary) and not values.dictionary.null_count:
        # each dictionary entry hashed once, as its values would be
        hashes = column_hashes(values.dictionary)[pc.fill_null(values.indices, 0).to_numpy(zero_copy_only=False)]
        if values.null_count:
            hashes[~values.is_valid().to_numpy(zero_copy_only=False)] = NULL_HASH
        return hashes
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    kind = values.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        numbers = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False) + 0.0  # + 0.0: -0.0 becomes 0.0
        numbers[np.isnan(numbers)] = np.nan  # one NaN, whatever its payload
        hashes = numbers.view(np.uint64)  # the row's fold mixes them
    else:  # each distinct text hashed once (categories repeat)
        encoded = pc.dictionary_encode(values if pa.types.is_string(kind) or pa.types.is_large_string(kind)
                                       else _text(values))
        codes = pc.fill_null(encoded.indices, 0).to_numpy(zero_copy_only=False)
        hashes = key_hashes(encoded.dictionary)[codes] if len(encoded.dictionary) else np.zeros(len(values), np.uint64)
    if values.null_count:
        hashes[~values.is_valid().to_numpy(zero_copy_only=False)] = NULL_HASH
    return hashes


def _text(values: pa.Array) -> pa.Array:
    """Values as Arrow writes them as text; nested values (lists, structs) as Python writes them."""
    try:
        return pc.cast(values, pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return pa.array([None if v is None else str(v) for v in values.to_pylist()], pa.string())


def held_out_by(options: dict, eval_rows: int, rows: pa.Table, hashes: np.ndarray | None = None) -> np.ndarray | None:
    """Which of ``rows`` a stored version held out when it was trained (with its ``options`` and its
    ``eval_rows`` count), or None when it held none out (it trained on every row of its data). Rows
    added since count as held out when the same rule holds them out (a hash split's do; SEQ's and
    CUSTOM's are recomputed on ``rows``). ``hashes``: the rows' :func:`row_hashes` with the version's
    seed, when already computed."""
    method = options.get("data_split_method", "AUTO_SPLIT")
    if method == "NO_SPLIT" or not eval_rows:
        return None
    if method in HASHED:
        fraction = options.get("data_split_eval_fraction")
        if fraction is None:
            return None
        return hash_held_out(row_hashes(rows, options.get("random_seed")) if hashes is None else hashes, fraction)
    held = np.zeros(rows.num_rows, dtype=bool)
    held[split_rows(rows, options, options.get("random_seed")).eval] = True
    return held


def rows_at(table: pa.Table, ascending: np.ndarray) -> pa.Table:
    """The rows at ``ascending`` indices, taken as a boolean filter: it copies contiguous runs, about
    twice as fast as a gather when most rows are kept (a training split)."""
    keep = np.zeros(table.num_rows, dtype=bool)
    keep[ascending] = True
    return table.filter(pa.array(keep))
