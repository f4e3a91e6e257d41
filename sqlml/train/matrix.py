"""CREATE MODEL's feature matrix, built once, straight into its final layout.

No copy of the training rows as a table is made: the preprocessing is fitted from the training rows
of one column at a time, and the matrix is written a record batch at a time, each batch freed once
written (when nothing else holds it), so the peak is about the larger of the table and the matrix,
not their sum. The values are those of :meth:`~sqlml.model.preprocess.Preprocessor.transform` (and
``transform_sparse``) on the training rows, entry for entry: each batch goes through them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import typing as t

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from ..model.kinds import ModelKind
from ..model.preprocess import Preprocessor
from .split import rows_at


def _malloc_trim() -> ctypes._CFuncPtr | None:
    """glibc's ``malloc_trim``; None elsewhere (musl, macOS)."""
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), "malloc_trim", None)
    except OSError:
        return None


_TRIM = _malloc_trim()


def release() -> None:
    """Hand memory freed so far back to the system now. Arrow's pool and glibc's heap keep freed blocks
    for reuse, so a column freed while the matrix is built would still count towards the peak of the
    fit that follows."""
    pa.default_memory_pool().release_unused()
    if _TRIM is not None:
        _TRIM(0)


def training_column(column: pa.ChunkedArray, name: str, train: np.ndarray) -> pa.Table:
    """One column at the training rows (ascending ``train``), as a one-column table."""
    table = pa.table({name: column})
    return table if len(train) == table.num_rows else rows_at(table, train)


def fit_preprocessor(table: pa.Table, train: np.ndarray, features: list[str], kind: ModelKind,
                     standardize: bool = True) -> Preprocessor:
    """:meth:`Preprocessor.fit` on the training rows of ``table``, reading one column of them at a time
    (``standardize``: the option standardize_features, for the kinds that standardize)."""
    standardize = kind.standardize and standardize
    prep = Preprocessor(kind.encoding, standardize)
    for name in features:
        prep.columns += Preprocessor.fit(training_column(table[name], name, train), [name], kind.encoding,
                                         standardize).columns
    return prep


def training_batches(table: pa.Table, train: np.ndarray) -> t.Iterator[pa.RecordBatch]:
    """The rows ``train`` (ascending) of ``table``, a batch at a time: no copy of the whole training split."""
    start = 0
    for batch in table.to_batches():
        mine = _rows_in(train, start, batch.num_rows)
        yield batch if len(mine) == batch.num_rows else batch.take(pa.array(mine))
        start += batch.num_rows


def _rows_in(train: np.ndarray, start: int, count: int) -> np.ndarray:
    """The positions, within a batch of ``count`` rows starting at row ``start``, of the rows ``train``."""
    return train[np.searchsorted(train, start):np.searchsorted(train, start + count)] - start


BLOCK_ROWS = 65_536  # rows encoded at a time by :func:`blocks`


def blocks(prep: Preprocessor, batches: list[pa.RecordBatch], train: np.ndarray,
           order: str = "C") -> t.Callable[[], t.Iterator[np.ndarray]]:
    """The training rows ``train`` (ascending) of ``batches``, encoded a block of rows at a time, anew on
    each call: for a fit that reads its data more than once without the whole matrix in memory
    (XGBoost's ``QuantileDMatrix``). The values are :meth:`~Preprocessor.transform`'s."""
    def encoded() -> t.Iterator[np.ndarray]:
        start = 0
        for batch in batches:
            mine = _rows_in(train, start, batch.num_rows)
            part = pa.Table.from_batches([batch])
            part = part if len(mine) == batch.num_rows else rows_at(part, mine)
            for offset in range(0, part.num_rows, BLOCK_ROWS):
                yield prep.transform(part.slice(offset, BLOCK_ROWS), order)
            start += batch.num_rows
    return encoded


def training_matrix(preprocessor: Preprocessor, kind: ModelKind, rows: pa.Table) -> np.ndarray | sp.csr_matrix:
    """The matrix the estimator is fitted on, of a table of training rows encoded at once: CSR where the
    kind's solver gains from it and the one-hot columns make the matrix mostly zeros, else dense in the
    layout the estimator reads. :func:`build` writes the same entries without the table."""
    if kind.sparse_fit and preprocessor.sparse_pays():
        return preprocessor.transform_sparse(rows)
    return preprocessor.transform(rows, kind.matrix_order)


def build(prep: Preprocessor, kind: ModelKind, batches: list[pa.RecordBatch], train: np.ndarray,
          dtype: str = "float64") -> np.ndarray | sp.csr_matrix:
    """The training matrix (:func:`training_matrix`'s layout, dense ones in ``dtype``) of
    the rows ``train`` of ``batches``, written a batch at a time. Each batch is removed from the list once written, so it is
    freed then unless the caller holds it elsewhere: the table shrinks as the matrix grows."""
    sparse = kind.sparse_fit and prep.sparse_pays()
    rows, per_row, width = len(train), len(prep.columns), sum(prep.width(c) for c in prep.columns)
    index_type = np.int32 if rows * per_row < 2**31 else np.int64
    if sparse:
        data, indices = np.empty((rows, per_row)), np.empty((rows, per_row), dtype=index_type)
    else:
        X = np.empty((rows, width), dtype=dtype, order=kind.matrix_order)
    start = written = 0
    while batches:
        batch = batches.pop(0)
        mine = _rows_in(train, start, batch.num_rows)
        part = pa.Table.from_batches([batch])
        part = part if len(mine) == batch.num_rows else rows_at(part, mine)
        block = slice(written, written + len(mine))
        if sparse:
            encoded = prep.transform_sparse(part)
            data[block], indices[block] = encoded.data.reshape(-1, per_row), encoded.indices.reshape(-1, per_row)
        else:
            X[block] = prep.transform(part, kind.matrix_order)
        start, written = start + batch.num_rows, written + len(mine)
        del batch, part
        release()
    if not sparse:
        return X
    indptr = np.arange(0, rows * per_row + 1, per_row, dtype=index_type)
    return sp.csr_matrix((data.ravel(), indices.ravel(), indptr), shape=(rows, width))
