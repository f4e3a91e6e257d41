"""ML.EVALUATE's metrics of an implicit-feedback recommender, with BigQuery's names.

Each evaluated user's items are ranked by predicted preference among every item the model knows that the
user did not interact with in training (what ML.RECOMMEND with ``exclude_rated`` would offer) and its
evaluation items (which are training interactions too when a model is evaluated on its training rows); the
user's evaluation items are the relevant ones, their ratings the gains. Ties rank in item order. With ``top_k``
only the first k places count (MAP@k, NDCG@k); without it, the whole ranking (BigQuery's definitions).

* ``mean_average_precision``: per user, the mean over its relevant items of the precision at that item's
  place (divided by min(relevant, k) with top_k), averaged over users.
* ``normalized_discounted_cumulative_gain``: per user, Σ rating / log2(place + 1) over the relevant items,
  divided by the same sum for the ideal ranking (ratings in decreasing order), averaged over users.
* ``average_rank``: the expected percentile ranking of Hu, Koren & Volinsky — each relevant item's place
  as a fraction (0 = first, 1 = last), weighted by its rating; 0.5 is a random ranking.
* ``mean_squared_error``: of the predicted preference against 1 (a relevant item) or 0 (any other
  candidate), over every candidate item of every evaluated user.

Evaluation rows whose user or item the model never saw cannot be ranked and are left out. The most-popular baseline predicts each item's share of training users.
"""

from __future__ import annotations

import typing as t

import numpy as np

from .factorization import Factorization, chunks
from .loaded import thread_limit

if t.TYPE_CHECKING:
    import scipy.sparse as sp

NAMES = ("mean_average_precision", "mean_squared_error", "normalized_discounted_cumulative_gain", "average_rank")
#: Scores ranked at a time: 16 MB of float64 (they stay in this function, unlike ML.RECOMMEND's blocks).
BLOCK_SCORES = 2_000_000


def ranking_metrics(model: Factorization, users: np.ndarray, items: np.ndarray, ratings: np.ndarray,
                    top_k: int | None = None, baseline: bool = False) -> dict:
    """The four metrics of the (users[j], items[j], ratings[j]) evaluation interactions (indices into the
    model's vocabularies; −1 for unseen ids, left out)."""
    relevant = relevant_pairs(model, users, items, ratings)
    if relevant.nnz == 0:
        return dict.fromkeys(NAMES)
    evaluated = np.flatnonzero(np.diff(relevant.indptr))
    sums = np.zeros(6)  # AP, NDCG, weighted place, weights, squared error, candidates
    for part in chunks(len(evaluated), len(model.items), BLOCK_SCORES):
        sums += _block_sums(model, evaluated[part], relevant[evaluated[part]], top_k, baseline)
    ap, ndcg, place, weight, squared, candidates = sums
    return {"mean_average_precision": ap / len(evaluated), "mean_squared_error": squared / candidates,
            "normalized_discounted_cumulative_gain": ndcg / len(evaluated), "average_rank": place / weight}


def relevant_pairs(model: Factorization, users: np.ndarray, items: np.ndarray, ratings: np.ndarray) -> sp.csr_matrix:
    """Users × items: the rating of each evaluation interaction that can be ranked (known user and item,
    a positive rating); repeated pairs add up."""
    keep = (users >= 0) & (items >= 0) & (ratings > 0)
    import scipy.sparse as sp  # here: loading sqlml's metrics never needs scipy
    pairs = sp.csr_matrix((ratings[keep], (users[keep], items[keep])), shape=model.rated.shape)
    pairs.sum_duplicates()
    return pairs


def _block_sums(model: Factorization, users: np.ndarray, relevant: sp.csr_matrix, top_k: int | None,
                baseline: bool) -> np.ndarray:
    rated = model.rated[users]
    excluded = rated - rated.multiply(relevant > 0)  # training interactions that are not evaluated
    excluded.eliminate_zeros()
    gone = excluded.tocoo()
    candidates = len(model.items) - np.diff(excluded.indptr)
    truth = relevant.tocoo()  # in row order, as the CSR holds them
    if baseline:  # the most popular items: one ranking for everyone, no users × items scores needed
        popularity = model.baseline["popularity"][:-1].astype(np.float64)
        predicted = popularity[truth.col]
        squares = len(users) * float(popularity @ popularity) - float(np.sum(popularity[gone.col] ** 2))
        places = _popularity_places(popularity, excluded, relevant.indptr, truth.col)
    else:
        with thread_limit(len(users)):  # a small product: BLAS threads would cost more than they save
            scores = model.block(users)
        predicted = scores[truth.row, truth.col]
        squares = float(np.einsum("ij,ij->", scores, scores)) - float(np.sum(scores[gone.row, gone.col] ** 2))
        scores[gone.row, gone.col] = -np.inf  # not candidates: ranked last
        places = _places(scores, relevant.indptr, truth.col, predicted)  # 0 = first
    sums = np.zeros(6)
    sums[:2] = _precision_and_gain(truth.row, places, truth.data, candidates if top_k is None else
                                   np.full(len(users), top_k))
    sums[2] = np.sum(truth.data * places / np.maximum(candidates[truth.row] - 1, 1))
    sums[3] = truth.data.sum()
    sums[4] = squares + np.sum((predicted - 1) ** 2 - predicted ** 2)  # Σ over candidates of (score − preference)²
    sums[5] = candidates.sum()
    return sums


def _places(scores: np.ndarray, bounds: np.ndarray, columns: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Each relevant item's place in its row's ranking: the scores above it, and the equal scores of lower
    columns. A sort of each row's scores (no argsort: ~10× cheaper) and a binary search find the first; equal
    scores (rare, for a model) are counted where there are some."""
    ordered = np.sort(scores, axis=1)
    places = np.empty(len(columns), dtype=np.int64)
    width = scores.shape[1]
    for row in range(len(scores)):
        mine = slice(bounds[row], bounds[row + 1])
        mine_scores = predicted[mine]
        above = np.searchsorted(ordered[row], mine_scores, side="right")
        tied = above - np.searchsorted(ordered[row], mine_scores, side="left") > 1
        places[mine] = width - above
        for j in np.flatnonzero(tied):
            before = np.count_nonzero(scores[row, :columns[mine][j]] == mine_scores[j])
            places[bounds[row] + j] += before
    return places


def _popularity_places(popularity: np.ndarray, excluded: sp.csr_matrix, bounds: np.ndarray, columns: np.ndarray
                       ) -> np.ndarray:
    """The places of the most-popular ranking, where most items tie: one order of every item (by popularity,
    then column), less the excluded items ahead of each relevant one in it."""
    position = np.empty(len(popularity), dtype=np.int64)
    position[np.lexsort((np.arange(len(popularity)), -popularity))] = np.arange(len(popularity))
    places = position[columns]
    for row in range(len(bounds) - 1):
        mine = slice(bounds[row], bounds[row + 1])
        ahead = np.sort(position[excluded.indices[excluded.indptr[row]:excluded.indptr[row + 1]]])
        places[mine] -= np.searchsorted(ahead, places[mine])
    return places


def _precision_and_gain(rows: np.ndarray, places: np.ndarray, gains: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The sums over users of the average precision and the NDCG, from the places (0-based) and gains of
    every relevant item (``rows``: its user, ascending) and each user's cut-off ``k`` (its candidates
    without top_k)."""
    count = len(k)
    relevant = np.bincount(rows, minlength=count)
    start = np.concatenate([[0], np.cumsum(relevant)[:-1]])
    order = np.lexsort((places, rows))  # each user's relevant items, best placed first
    place, gain = places[order], gains[order]
    hit = place < k[rows]
    precision = np.where(hit, (np.arange(len(rows)) - start[rows] + 1) / (place + 1), 0.0)
    average_precision = np.bincount(rows, precision, count) / np.maximum(np.minimum(relevant, k), 1)
    dcg = np.bincount(rows, np.where(hit, gain / np.log2(place + 2), 0.0), count)
    ideal = gains[np.lexsort((-gains, rows))]  # each user's gains, largest first
    position = np.arange(len(rows)) - start[rows]
    idcg = np.bincount(rows, np.where(position < k[rows], ideal / np.log2(position + 2), 0.0), count)
    present = relevant > 0
    return np.array([average_precision[present].sum(), (dcg[present] / idcg[present]).sum()])
