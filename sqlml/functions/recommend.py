"""ML.RECOMMEND, ML.GENERATE_EMBEDDING (also AI.GENERATE_EMBEDDING), and ML.EVALUATE / ML.WEIGHTS of
matrix factorization models.

ML.RECOMMEND's output is the prediction column first — ``predicted_<rating_col>`` (explicit feedback) or
``predicted_<rating_col>_confidence`` (implicit) — then the user and item columns under their own names:

* ``ML.RECOMMEND(MODEL m)``: every user × every item the model knows, computed and handed to the statement
  a block of users at a time (:class:`~sqlml.functions.base.Stream`), so memory holds one block whatever
  users × items is.
* ``ML.RECOMMEND(MODEL m, TABLE t)``: ``t`` with the user column only: those users × every item; the item
  column only: every user × those items; both: those pairs, with the other columns of ``t`` after them.
  An id the model never saw gets the intercepts (BigQuery's rule).
* ``STRUCT(10 AS top_k)`` (a sqlml extension): only the k best items per user (users per item, when ``t``
  names items only), found block by block by partial sorting, never the whole product; ``TRUE AS
  exclude_rated`` leaves out what the user rated in training (default FALSE: BigQuery returns every pair).
"""

from __future__ import annotations

import typing as t

import numpy as np
import pyarrow as pa

from ..errors import DataError, ParameterError, SqlmlError
from ..model import metrics, reduction
from ..model.baseline import compare, primary_metric
from ..model.factorization import Factorization, best, chunks
from ..model.ranking import BLOCK_SCORES as RANKED_SCORES
from ..model.kinds import MATRIX_FACTORIZATION, REDUCTION
from ..model.loaded import LoadedModel, thread_limit
from .base import Call, Data, Stream, as_table
from .trials import with_trial_id

FACTOR_WEIGHTS = pa.list_(pa.struct([("factor", pa.int64()), ("weight", pa.float64())]))
WEIGHTS = pa.schema([("processed_input", pa.string()), ("feature", pa.string()), ("factor_weights", FACTOR_WEIGHTS),
                     ("intercept", pa.float64())])
EMBEDDING = "ml_generate_embedding_result"


def factorization_of(call: Call) -> tuple[LoadedModel, Factorization]:
    model = call.require_model()
    if model.kind.family != MATRIX_FACTORIZATION:
        raise SqlmlError(f"ML.{call.function} needs a matrix_factorization model; '{model.info.name}' has "
                         f"model_type '{model.kind.name}'.")
    return model, model.estimator


def predicted_name(model: LoadedModel) -> str:
    rating = model.info.options["rating_col"]
    return f"predicted_{rating}" if model.estimator.explicit else f"predicted_{rating}_confidence"


def recommend(call: Call) -> Stream:
    """ML.RECOMMEND (see the module's docstring)."""
    model, factorization = factorization_of(call)
    top_k, exclude = call.param("top_k"), bool(call.param("exclude_rated", False))
    user, item = model.info.options["user_col"], model.info.options["item_col"]
    names = (predicted_name(model), user, item)
    schema = pa.schema([(names[0], pa.float64()), (user, factorization.users.type), (item, factorization.items.type)])
    if call.data is None:
        everyone = np.arange(len(factorization.users))
        return Stream(_product(factorization, everyone, factorization.users, False, names, top_k, exclude),
                      schema.empty_table)
    data = call.data
    columns = data.schema().names
    if user in columns and item in columns:
        if top_k is not None:
            raise ParameterError("ML.RECOMMEND's top_k picks among every item (or user); an input of (user, item) "
                                 "pairs has nothing to pick from. Leave top_k out, or give users or items only.")
        return Stream((_pairs(model, rows, names, exclude) for rows in data.tables()),
                      lambda: _pairs(model, data.empty(), names, exclude))
    if user not in columns and item not in columns:
        raise DataError(f"ML.RECOMMEND's input needs the user column '{user}', the item column '{item}', or both; "
                        f"it has {', '.join(columns)}.")
    by_item = user not in columns
    column = item if by_item else user
    index = factorization.item_index if by_item else factorization.user_index
    pieces = (piece for rows in data.tables() for piece in
              _product(factorization, index(rows[column], column), rows[column], by_item, names, top_k, exclude))
    return Stream(pieces, schema.empty_table)


def _product(factorization: Factorization, rows: np.ndarray, ids: pa.Array | pa.ChunkedArray, by_item: bool,
             names: tuple[str, str, str], top_k: int | None, exclude: bool) -> t.Iterator[pa.Table]:
    """``rows`` (user indices; item indices when ``by_item``, spelled ``ids``) × every item (user), a block
    of rows at a time: the k best of each row with ``top_k``, else all."""
    others = factorization.users if by_item else factorization.items
    rated = factorization.rated.T.tocsr() if by_item and exclude else factorization.rated
    # top_k keeps k of each row: its blocks can be as big as the ranking metrics' (16 MB of scores)
    for block in chunks(len(rows), len(others), None if top_k is None else RANKED_SCORES):
        mine = rows[block]
        with thread_limit(len(mine)):  # a small product: BLAS threads would cost more than they save
            scores = factorization.block_items(mine) if by_item else factorization.block(mine)
        if exclude:
            known = np.flatnonzero(mine >= 0)
            seen = rated[mine[known]].tocoo()
            scores[known[seen.row], seen.col] = -np.inf
        if top_k is not None or exclude:
            row, other = best(scores, top_k) if top_k is not None else np.nonzero(np.isfinite(scores))
            values = scores[row, other]
        else:  # every pair, row by row: no index arrays to gather the scores with
            row, other = np.repeat(np.arange(len(mine)), len(others)), np.tile(np.arange(len(others)), len(mine))
            values = scores.ravel()
        own, their = ids.take(pa.array(block.start + row)), others.take(pa.array(other))
        yield pa.table({names[0]: pa.array(values, pa.float64()),
                        names[1]: their if by_item else own, names[2]: own if by_item else their})


def _pairs(model: LoadedModel, rows: pa.Table, names: tuple[str, str, str], exclude: bool) -> pa.Table:
    """The prediction of each (user, item) row, then the input's columns."""
    factorization = model.estimator
    users = factorization.user_index(rows[names[1]], names[1])
    items = factorization.item_index(rows[names[2]], names[2])
    predicted = factorization.pairs(users, items)
    if exclude:
        known = (users >= 0) & (items >= 0)
        keep = np.ones(len(users), dtype=bool)
        keep[known] = np.asarray(factorization.rated[users[known], items[known]]).ravel() == 0
        rows, predicted = rows.filter(pa.array(keep)), predicted[keep]
    kept = [c for c in rows.column_names if c != names[0]]
    return pa.Table.from_arrays([pa.array(predicted, pa.float64()), *(rows[c] for c in kept)], names=[names[0], *kept])


def evaluation(model: LoadedModel, data: Data | None, params: dict) -> pa.Table:
    """ML.EVALUATE of a matrix factorization on rows of (user, item, rating), beside its baseline (the user
    and item biases alone, or the most popular items) and the lift; ``top_k`` (a sqlml extension) ranks
    the first k places only (MAP@k, NDCG@k) of an implicit-feedback model."""
    unknown = sorted(k for k in params if k not in ("top_k", "baselines", "primary_metric"))
    if unknown:
        raise ParameterError(f"ML.EVALUATE of a matrix_factorization model takes top_k, baselines and primary_metric; "
                             f"not {', '.join(unknown)}.")
    top_k = params.get("top_k")
    if data is None:
        raise ParameterError("top_k ranks evaluation rows: ML.EVALUATE(MODEL m, TABLE held_out, STRUCT(10 AS top_k)).")
    if top_k is not None and model.estimator.explicit:
        raise ParameterError("top_k ranks the items of an implicit-feedback model (MAP@k, NDCG@k); this model "
                             "predicts explicit ratings. Leave it out.")
    options = model.info.options
    needed = [options["user_col"], options["item_col"], options["rating_col"]]
    rows = pa.concat_tables([piece.select([c for c in needed if c in piece.column_names]) for piece in data.tables()]
                            or [data.empty()])
    values = _finite(metrics.recommendation_metrics(model, rows, top_k=top_k))
    if params.get("baselines") is False:
        return as_table([values])
    baseline = _finite(metrics.recommendation_metrics(model, rows, baseline=True, top_k=top_k))
    strategy = "user_item_bias" if model.estimator.explicit else "most_popular"
    return as_table([compare(values, baseline, None, strategy, primary_metric(model, params.get("primary_metric")))])


def _finite(values: dict) -> dict:
    return {k: metrics.finite(v) for k, v in values.items()}


def weights(call: Call) -> pa.Table:
    """ML.WEIGHTS of a matrix factorization: one row per user and per item — ``processed_input`` (the user or
    item column's name), ``feature`` (the id as text), ``factor_weights`` (ARRAY of (factor, weight), factors
    numbered from 1) and ``intercept`` (the user's or item's bias; NULL for implicit feedback, which has
    none) — then an ``__INTERCEPT__`` row holding the global intercept."""
    model, factorization = factorization_of(call)
    parts = [_weight_rows(model.info.options["user_col"], factorization.users, factorization.user_factors[:-1],
                          factorization.user_bias[:-1], factorization.explicit),
             _weight_rows(model.info.options["item_col"], factorization.items, factorization.item_factors[:-1],
                          factorization.item_bias[:-1], factorization.explicit),
             pa.table({"processed_input": ["__INTERCEPT__"], "feature": [None], "factor_weights": [[]],
                       "intercept": [factorization.intercept if factorization.explicit else None]}, schema=WEIGHTS)]
    return with_trial_id(pa.concat_tables(parts), call)


def _weight_rows(column: str, ids: pa.Array, factors: np.ndarray, bias: np.ndarray, explicit: bool) -> pa.Table:
    count, k = factors.shape
    structs = pa.StructArray.from_arrays([pa.array(np.tile(np.arange(1, k + 1), count)),
                                          pa.array(factors.astype(np.float64).ravel())], names=["factor", "weight"])
    lists = pa.ListArray.from_arrays(pa.array(np.arange(0, count * k + 1, k, dtype=np.int32)), structs)
    return pa.table({"processed_input": [column] * count, "feature": ids.cast(pa.string()), "factor_weights": lists,
                     "intercept": bias.astype(np.float64) if explicit else pa.nulls(count, pa.float64())}, schema=WEIGHTS)


def generate_embedding(call: Call) -> Stream:
    """ML.GENERATE_EMBEDDING (and AI.GENERATE_EMBEDDING): ``ml_generate_embedding_result``, one ARRAY<DOUBLE>
    per input row, then the input's columns. A matrix factorization embeds the ids of its user or its item
    column (the input has one of them; an id never seen in training has no embedding: NULL); PCA and
    autoencoder models embed each row as its principal component scores or latent columns."""
    model = call.require_model()
    data = call.require_input()
    if model.kind.task == REDUCTION:
        embed = _reduced_embedding
    elif model.kind.family == MATRIX_FACTORIZATION:
        embed = _id_embedding(model, data.schema().names)
    else:
        raise SqlmlError(f"ML.GENERATE_EMBEDDING needs a matrix_factorization, pca or autoencoder model; "
                         f"'{model.info.name}' has model_type '{model.kind.name}'.")
    return Stream((_with_embedding(embed(model, rows), rows) for rows in data.tables()),
                  lambda: _with_embedding(pa.array([], pa.list_(pa.float64())), data.empty()))


def _id_embedding(model: LoadedModel, columns: list[str]) -> t.Callable[[LoadedModel, pa.Table], pa.Array]:
    user, item = model.info.options["user_col"], model.info.options["item_col"]
    if (user in columns) == (item in columns):
        raise DataError(f"ML.GENERATE_EMBEDDING of '{model.info.name}' embeds users or items: its input needs the "
                        f"user column '{user}' or the item column '{item}', not {'both' if user in columns else 'neither'}.")
    column = user if user in columns else item
    factorization = model.estimator
    index, factors = ((factorization.user_index, factorization.user_factors) if column == user
                      else (factorization.item_index, factorization.item_factors))

    def embed(model: LoadedModel, rows: pa.Table) -> pa.Array:
        positions = index(rows[column], column)
        return _lists(factors[positions].astype(np.float64), positions < 0)
    return embed


def _reduced_embedding(model: LoadedModel, rows: pa.Table) -> pa.Array:
    if rows.num_rows == 0:
        return pa.array([], pa.list_(pa.float64()))
    return _lists(reduction.reduce(model.kind.family, model.estimator, model.features(rows)), None)


def _lists(values: np.ndarray, missing: np.ndarray | None) -> pa.Array:
    count, width = values.shape
    offsets = pa.array(np.arange(0, count * width + 1, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.ravel()),
                                    mask=None if missing is None else pa.array(missing))


def _with_embedding(embedding: pa.Array, rows: pa.Table) -> pa.Table:
    kept = [c for c in rows.column_names if c != EMBEDDING]
    return pa.Table.from_arrays([embedding, *(rows[c] for c in kept)], names=[EMBEDDING, *kept])
