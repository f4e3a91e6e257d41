"""A matrix factorization model: its id vocabularies, factors and biases, scored for any (user, item) pairs.

Explicit feedback predicts a rating, ``intercept + user_bias[u] + item_bias[i] + user_factors[u] · item_factors[i]``;
implicit feedback predicts a preference (1 = would interact), ``user_factors[u] · item_factors[i]`` (Hu, Koren &
Volinsky, 2008), with no biases. A user or an item not seen in training has zero factors and a zero bias, so it
gets the intercepts, as in BigQuery: every factor and bias array ends with a row of zeros, which the index −1 of
an unseen id lands on.

The model is stored as plain arrays in the signed envelope (:mod:`sqlml.model.envelope`), never pickled: the
vocabularies as Arrow IPC bytes (so ids keep their type: integers, text, dates…), the training interactions as a
CSR matrix (which items each user rated: ``exclude_rated`` and the ranking metrics need them), and the baseline
beside the model (explicit: the same fit with no factors, the biases alone; implicit: item popularity).
"""

from __future__ import annotations

import functools
import typing as t
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError

if t.TYPE_CHECKING:
    import scipy.sparse as sp

#: Scores computed at a time by :meth:`Factorization.block` callers (users × items): 512 kB of float64, so
#: that a block of ML.RECOMMEND's output (a few MB) is no bigger than the batches DuckDB reads at a time.
BLOCK_SCORES = 65_536


@dataclass
class Factorization:
    """A fitted matrix factorization (the estimator of a ``matrix_factorization`` model)."""

    explicit: bool
    users: pa.Array  # the user ids, in index order
    items: pa.Array
    user_factors: np.ndarray  # (users + 1, k), the last row zeros
    item_factors: np.ndarray  # (items + 1, k), the last row zeros
    user_bias: np.ndarray  # (users + 1,): zeros for implicit feedback
    item_bias: np.ndarray  # (items + 1,)
    intercept: float  # the training ratings' mean (explicit); 0 for implicit feedback
    rated: sp.csr_matrix  # users × items: the training interactions
    baseline: dict  # explicit: intercept, user_bias, item_bias (padded); implicit: popularity (padded)

    @property
    def num_factors(self) -> int:
        return self.user_factors.shape[1]

    def user_index(self, ids: pa.Array | pa.ChunkedArray, column: str) -> np.ndarray:
        """Each id's row in the user arrays; −1 (the zero row) for an id not seen in training or NULL."""
        return index_of(ids, self.users, column)

    def item_index(self, ids: pa.Array | pa.ChunkedArray, column: str) -> np.ndarray:
        return index_of(ids, self.items, column)

    def pairs(self, users: np.ndarray, items: np.ndarray, baseline: bool = False) -> np.ndarray:
        """The prediction for each (users[j], items[j]) pair (or the baseline's)."""
        if baseline:
            b = self.baseline
            if not self.explicit:
                return b["popularity"][items].astype(np.float64)
            return b["intercept"] + b["user_bias"][users] + b["item_bias"][items]
        dots = np.einsum("ij,ij->i", self.user_factors[users], self.item_factors[items], dtype=np.float64)
        return self.intercept + self.user_bias[users] + self.item_bias[items] + dots

    def block(self, users: np.ndarray, baseline: bool = False) -> np.ndarray:
        """Predictions of every item (columns, in index order) for each of ``users`` (rows)."""
        if baseline:
            b = self.baseline
            if not self.explicit:
                return np.broadcast_to(b["popularity"][:-1].astype(np.float64), (len(users), len(self.items))).copy()
            return (b["intercept"] + b["user_bias"][users])[:, None] + b["item_bias"][None, :-1]
        scores = self.user_factors[users].astype(np.float64) @ self._item_columns
        scores += (self.intercept + self.user_bias[users])[:, None]
        scores += self.item_bias[None, :-1]
        return scores

    def block_items(self, items: np.ndarray) -> np.ndarray:
        """Predictions for every user (columns) of each of ``items`` (rows): :meth:`block` transposed."""
        scores = self.item_factors[items].astype(np.float64) @ self._user_columns
        scores += (self.intercept + self.item_bias[items])[:, None]
        scores += self.user_bias[None, :-1]
        return scores

    @functools.cached_property
    def _item_columns(self) -> np.ndarray:
        """The items' factors as columns in float64, made once: every block of scores multiplies by them."""
        return np.ascontiguousarray(self.item_factors[:-1].T, dtype=np.float64)

    @functools.cached_property
    def _user_columns(self) -> np.ndarray:
        return np.ascontiguousarray(self.user_factors[:-1].T, dtype=np.float64)

    def to_state(self) -> dict:
        """Plain arrays and numbers, for the signed envelope (skops stores them without pickle)."""
        return {"explicit": self.explicit, "users": _ipc(self.users), "items": _ipc(self.items),
                "user_factors": self.user_factors, "item_factors": self.item_factors,
                "user_bias": self.user_bias, "item_bias": self.item_bias, "intercept": float(self.intercept),
                "rated_indptr": self.rated.indptr, "rated_indices": self.rated.indices,
                **{f"baseline_{k}": v for k, v in self.baseline.items()}}

    @classmethod
    def from_state(cls, state: dict) -> "Factorization":
        users, items = _from_ipc(state["users"]), _from_ipc(state["items"])
        import scipy.sparse as sp  # here: loading sqlml's metrics never needs scipy
        rated = sp.csr_matrix((np.ones(len(state["rated_indices"]), dtype=np.float32), state["rated_indices"],
                               state["rated_indptr"]), shape=(len(users), len(items)))
        baseline = {k.removeprefix("baseline_"): v for k, v in state.items() if k.startswith("baseline_")}
        return cls(state["explicit"], users, items, state["user_factors"], state["item_factors"], state["user_bias"],
                   state["item_bias"], state["intercept"], rated, baseline)


def best(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The row and column of the ``k`` highest finite scores of each row, row by row, best first and equal
    scores in column order, found by partial sorting (a row with fewer finite scores gives fewer)."""
    k = min(k, scores.shape[1])
    if k == 0 or not len(scores):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    top = np.argpartition(scores, -k, axis=1)[:, -k:]  # the k largest, unordered
    kth = np.take_along_axis(scores, top, axis=1).min(axis=1)
    for row in np.flatnonzero(np.count_nonzero(scores >= kth[:, None], axis=1) > k):  # ties at the k-th: lowest columns
        tied = np.flatnonzero(scores[row] >= kth[row])
        top[row] = tied[np.lexsort((tied, -scores[row, tied]))[:k]]
    top = np.take_along_axis(top, np.lexsort((top, -np.take_along_axis(scores, top, axis=1)), axis=1), axis=1)
    rows, columns = np.repeat(np.arange(len(scores)), k), top.ravel()
    kept = np.isfinite(scores[rows, columns])
    return rows[kept], columns[kept]


def padded(values: np.ndarray) -> np.ndarray:
    """``values`` with a zero row (or zero) appended: where the index −1 of an unseen id lands."""
    return np.concatenate([values, np.zeros((1, *values.shape[1:]), dtype=values.dtype)])


def index_of(ids: pa.Array | pa.ChunkedArray, vocabulary: pa.Array, column: str) -> np.ndarray:
    """Each id's position in ``vocabulary`` (ids of ``column``, cast to the vocabulary's type); −1 if absent."""
    if pa.types.is_dictionary(ids.type):
        ids = ids.cast(ids.type.value_type)
    if ids.type != vocabulary.type:
        try:
            ids = pc.cast(ids, vocabulary.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise DataError(f"Column '{column}' holds {ids.type} values; the model was trained on {vocabulary.type} "
                            f"ids. CAST it in the query.") from None
    found = pc.index_in(ids, value_set=vocabulary)
    return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _ipc(values: pa.Array) -> np.ndarray:
    sink = pa.BufferOutputStream()
    batch = pa.record_batch([values], names=["id"])
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return np.frombuffer(sink.getvalue(), dtype=np.uint8)


def _from_ipc(data: np.ndarray) -> pa.Array:
    return pa.ipc.open_stream(pa.py_buffer(np.ascontiguousarray(data).tobytes())).read_all().column("id").combine_chunks()


def chunks(count: int, width: int, scores: int | None = None) -> t.Iterator[slice]:
    """Consecutive slices of ``count`` rows, each scoring at most ``scores`` (default :data:`BLOCK_SCORES`)
    values of ``width``."""
    size = max(1, (scores or BLOCK_SCORES) // max(width, 1))
    return (slice(start, min(start + size, count)) for start in range(0, count, size))
