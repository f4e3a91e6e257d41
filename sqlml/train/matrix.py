"""CREATE MODEL's feature matrix, built once, one input column at a time, into its final layout.

The preprocessing is fitted, and the matrix written, from the training rows of one column at a time:
no copy of the training rows as a table is made, and each column is freed as soon as it is encoded
(when nothing else holds it), so the peak is about the matrix plus what is left of the table. The
values are those of :meth:`~sqlml.model.preprocess.Preprocessor.transform` (and ``transform_sparse``)
on the training rows, entry for entry: each column goes through a one-column preprocessor.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from ..model.kinds import ModelKind
from ..model.preprocess import Preprocessor
from .split import rows_at

CHUNK_ROWS = 262_144  # rows of a one-hot block encoded at a time (the temporary is at most this × its width)


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


def fit_preprocessor(table: pa.Table, train: np.ndarray, features: list[str], kind: ModelKind) -> Preprocessor:
    """:meth:`Preprocessor.fit` on the training rows of ``table``, reading one column of them at a time."""
    prep = Preprocessor(kind.encoding, kind.standardize)
    for name in features:
        prep.columns += Preprocessor.fit(training_column(table[name], name, train), [name], kind.encoding,
                                         kind.standardize).columns
    return prep


def build(prep: Preprocessor, kind: ModelKind, columns: dict[str, pa.ChunkedArray],
          train: np.ndarray) -> np.ndarray | sp.csr_matrix:
    """The training matrix (:func:`sqlml.train.fit.training_matrix`'s layout) of the rows ``train``.
    ``columns`` maps each input column's name to its column of all rows; each is removed from it as
    it is encoded, so it is freed then unless the caller holds it elsewhere."""
    if kind.sparse_fit and prep.sparse_pays():
        return _sparse(prep, columns, train)
    X = np.empty((len(train), sum(prep.width(c) for c in prep.columns)), order=kind.matrix_order)
    position = 0
    for c in prep.columns:
        one, width = Preprocessor(prep.encoding, prep.standardize, [c]), prep.width(c)
        rows = training_column(columns.pop(c["name"]), c["name"], train)
        for start in range(0, len(train), CHUNK_ROWS):
            X[start:start + CHUNK_ROWS, position:position + width] = one.transform(rows.slice(start, CHUNK_ROWS))
        position += width
        del rows
        release()
    return X


def _sparse(prep: Preprocessor, columns: dict[str, pa.ChunkedArray], train: np.ndarray) -> sp.csr_matrix:
    """The CSR matrix of :meth:`Preprocessor.transform_sparse`: one stored entry per input column and row,
    each column's entries written from its one-column CSR."""
    rows, per_row = len(train), len(prep.columns)
    index_type = np.int32 if rows * per_row < 2**31 else np.int64
    data, indices = np.empty((rows, per_row)), np.empty((rows, per_row), dtype=index_type)
    offsets = np.cumsum([0] + [prep.width(c) for c in prep.columns])
    for j, c in enumerate(prep.columns):
        one = Preprocessor(prep.encoding, prep.standardize, [c])
        part = one.transform_sparse(training_column(columns.pop(c["name"]), c["name"], train))
        data[:, j], indices[:, j] = part.data, part.indices + offsets[j]
        del part
        release()
    indptr = np.arange(0, rows * per_row + 1, per_row, dtype=index_type)
    return sp.csr_matrix((data.ravel(), indices.ravel(), indptr), shape=(rows, offsets[-1]))
