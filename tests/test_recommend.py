"""MATRIX_FACTORIZATION, ML.RECOMMEND, ML.GENERATE_EMBEDDING, and ML.EVALUATE / ML.WEIGHTS of recommenders,
on a MovieLens subset; every figure is checked against a computation made here (NumPy's solver per user
and item, the ``implicit`` library called directly, scikit-learn's metrics, rankings done in plain Python)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp
from sklearn import metrics as skm

import sqlml
from sqlml import datasets
from sqlml.errors import DataError, OptionError, ParameterError, SqlmlError
from sqlml.functions.base import Call
from sqlml.functions.recommend import recommend
from sqlml.model import factorization

USERS = 60  # users 1..60 of MovieLens: ~9,000 ratings of ~2,900 movies
EXPLICIT = ("model_type = 'matrix_factorization', user_col = 'userId', item_col = 'movieId', rating_col = 'rating'")
IMPLICIT = EXPLICIT + ", feedback_type = 'implicit'"
HELD_OUT = """row_number() OVER (PARTITION BY userId ORDER BY timestamp DESC, movieId)
              <= greatest(1, round(0.2 * count(*) OVER (PARTITION BY userId))) AS is_held_out"""


@pytest.fixture(scope="module")
def ml():
    """A connection with ``ratings``: MovieLens users 1..60, each user's latest 20 % flagged is_held_out."""
    conn = sqlml.connect(progress=lambda message: None)
    datasets.load(conn.duckdb, "movielens", "movielens")
    conn.sql(f"CREATE TABLE ratings AS SELECT userId, movieId, rating, timestamp, {HELD_OUT} "
             f"FROM movielens WHERE userId <= {USERS}")
    yield conn
    conn.close()


def weights(conn, model: str) -> tuple[dict, dict, float]:
    """ML.WEIGHTS as {id: (factors, bias)} for users and items, and the global intercept."""
    rows = conn.sql(f"SELECT * FROM ML.WEIGHTS(MODEL {model})").to_arrow_table().to_pylist()
    sides = {"userId": {}, "movieId": {}}
    intercept = None
    for row in rows:
        if row["processed_input"] == "__INTERCEPT__":
            intercept = row["intercept"]
            continue
        factors = np.array([w["weight"] for w in sorted(row["factor_weights"], key=lambda w: w["factor"])])
        sides[row["processed_input"]][int(row["feature"])] = (factors, row["intercept"])
    return sides["userId"], sides["movieId"], intercept


def ratings_of(conn, where: str = "TRUE") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    users, items, ratings = conn.sql(f"SELECT userId, movieId, rating FROM ratings WHERE {where}").fetchnumpy().values()
    return np.asarray(users), np.asarray(items), np.asarray(ratings, dtype=float)


# --- explicit feedback -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def explicit(ml):
    """Trained to convergence on every rating (users 1..20), so that each user's and each item's parameters
    are the exact ridge solution given the other side's."""
    ml.sql(f"CREATE MODEL closed OPTIONS ({EXPLICIT}, num_factors = 3, l2_reg = 4, max_iterations = 300, "
           "early_stop = FALSE, data_split_method = 'NO_SPLIT') AS SELECT * FROM ratings WHERE userId <= 20")
    return ml


def test_explicit_als_is_the_ridge_solution_of_every_user_and_item(explicit):
    users, items, intercept = weights(explicit, "closed")
    u, i, r = ratings_of(explicit, "userId <= 20")
    assert intercept == pytest.approx(r.mean(), abs=1e-12)  # the global intercept is the mean rating
    lam = 4.0

    def ridge(rows: np.ndarray, other: dict, keys: np.ndarray, bias_key: np.ndarray) -> np.ndarray:
        """min Σ (r − μ − b_other − x·y_other − b)² + λ(|x|² + b²), solved here per row with NumPy."""
        z = np.array([np.append(other[k][0], 1.0) for k in keys[rows]])
        t = r[rows] - intercept - np.array([other[k][1] for k in bias_key[rows]])
        return np.linalg.solve(z.T @ z + lam * np.eye(z.shape[1]), z.T @ t)

    for user in np.unique(u)[:20]:
        expected = ridge(np.flatnonzero(u == user), items, i, i)
        np.testing.assert_allclose(np.append(*users[user]), expected, atol=1e-6)
    for item in np.unique(i)[:200]:
        expected = ridge(np.flatnonzero(i == item), users, u, u)
        np.testing.assert_allclose(np.append(*items[item]), expected, atol=1e-8)


def test_explicit_training_info_reports_the_training_error(explicit):
    users, items, intercept = weights(explicit, "closed")
    u, i, r = ratings_of(explicit, "userId <= 20")
    predicted = np.array([intercept + users[a][1] + items[b][1] + users[a][0] @ items[b][0] for a, b in zip(u, i)])
    info = explicit.sql("SELECT iteration, loss FROM ML.TRAINING_INFO(MODEL closed) ORDER BY iteration").fetchall()
    assert len(info) == 300  # early_stop = FALSE: every iteration
    assert info[-1][1] == pytest.approx(np.mean((r - predicted) ** 2), rel=1e-9)


def test_recommend_pairs_are_intercept_biases_and_factors_and_unseen_ids_get_the_intercepts(explicit):
    users, items, intercept = weights(explicit, "closed")
    rows = explicit.sql("""SELECT * FROM ML.RECOMMEND(MODEL closed, (SELECT * FROM (VALUES (1, 31, 'a'), (2, 1029, 'b'),
                             (99999, 31, 'c'), (1, -5, 'd')) v(userId, movieId, note)))""").to_arrow_table()
    assert rows.column_names == ["predicted_rating", "userId", "movieId", "note"]
    got = rows.to_pylist()
    expected = [intercept + users[1][1] + items[31][1] + users[1][0] @ items[31][0],
                intercept + users[2][1] + items[1029][1] + users[2][0] @ items[1029][0],
                intercept + items[31][1],  # unseen user: the global intercept and the item's
                intercept + users[1][1]]  # unseen item
    np.testing.assert_allclose([g["predicted_rating"] for g in got], expected, rtol=1e-12)
    assert [g["note"] for g in got] == ["a", "b", "c", "d"]


def test_recommend_every_pair_then_top_k_and_exclude_rated(explicit):
    everything = explicit.sql("SELECT * FROM ML.RECOMMEND(MODEL closed)").to_arrow_table().to_pandas()
    n_users, n_items = explicit.sql("SELECT count(DISTINCT userId), count(DISTINCT movieId) FROM ratings "
                                    "WHERE userId <= 20").fetchall()[0]
    assert len(everything) == n_users * n_items
    assert not everything.duplicated(["userId", "movieId"]).any()
    rated = set(map(tuple, explicit.sql("SELECT userId, movieId FROM ratings WHERE userId <= 20").fetchall()))
    top = explicit.sql("SELECT * FROM ML.RECOMMEND(MODEL closed, STRUCT(5 AS top_k, TRUE AS exclude_rated))"
                       ).to_arrow_table().to_pandas()
    unrated = everything[[(a, b) not in rated for a, b in zip(everything.userId, everything.movieId)]]
    expected = unrated.sort_values(["userId", "predicted_rating", "movieId"], ascending=[True, False, True],
                                   kind="stable").groupby("userId").head(5)
    assert list(zip(top.userId, top.movieId)) == list(zip(expected.userId, expected.movieId))
    np.testing.assert_allclose(top.predicted_rating, expected.predicted_rating, rtol=1e-12)
    some = explicit.sql("SELECT * FROM ML.RECOMMEND(MODEL closed, (SELECT 3 AS userId), STRUCT(TRUE AS exclude_rated))"
                        ).to_arrow_table().to_pandas()
    assert len(some) == n_items - sum(1 for a, _ in rated if a == 3)


def test_recommend_users_for_items(explicit):
    everything = explicit.sql("SELECT * FROM ML.RECOMMEND(MODEL closed)").to_arrow_table().to_pandas()
    best = explicit.sql("SELECT * FROM ML.RECOMMEND(MODEL closed, (SELECT 31 AS movieId), STRUCT(3 AS top_k))"
                        ).to_arrow_table().to_pandas()
    expected = everything[everything.movieId == 31].sort_values(["predicted_rating", "userId"],
                                                                ascending=[False, True]).head(3)
    assert list(best.userId) == list(expected.userId)


def test_recommend_streams_a_block_of_users_at_a_time(explicit, monkeypatch):
    monkeypatch.setattr(factorization, "BLOCK_SCORES", 5_000)
    model = explicit.executor.load("closed")
    computed = []
    block = model.estimator.block
    monkeypatch.setattr(model.estimator, "block", lambda users, baseline=False: computed.append(len(users)) or block(users))
    stream = recommend(Call("RECOMMEND", model))
    assert len(computed) == 1  # only the first block, to know the columns
    sizes = [batch.num_rows for batch in stream.batches]
    per_block = (5_000 // len(model.estimator.items)) * len(model.estimator.items)
    assert max(sizes) <= per_block and len(computed) == len(sizes) > 1
    assert sum(sizes) == len(model.estimator.users) * len(model.estimator.items)


def test_weights_and_embeddings_agree_and_give_cosine_similarity_in_sql(explicit):
    _, items, _ = weights(explicit, "closed")
    rows = explicit.sql("""
        WITH e AS (SELECT * FROM AI.GENERATE_EMBEDDING(MODEL closed, (SELECT DISTINCT movieId FROM ratings WHERE userId <= 20)))
        SELECT b.movieId, a.ml_generate_embedding_result AS a, b.ml_generate_embedding_result AS b,
               list_cosine_similarity(a.ml_generate_embedding_result, b.ml_generate_embedding_result) AS similarity
        FROM e a, e b WHERE a.movieId = 31 ORDER BY b.movieId LIMIT 50""").fetchall()
    for movie, a, b, similarity in rows:
        np.testing.assert_allclose(b, items[movie][0], rtol=1e-12)
        assert similarity == pytest.approx(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b), rel=1e-9)
    unseen = explicit.sql("SELECT ml_generate_embedding_result FROM ML.GENERATE_EMBEDDING(MODEL closed, "
                          "(SELECT -1 AS movieId))").fetchall()[0]
    assert unseen == (None,)


# --- evaluation, the baseline and the deploy gate ------------------------------------------------------------------

@pytest.fixture(scope="module")
def held_out(ml):
    ml.sql(f"CREATE MODEL ex OPTIONS ({EXPLICIT}, num_factors = 8, l2_reg = 15, data_split_method = 'CUSTOM', "
           "data_split_col = 'is_held_out') AS SELECT * FROM ratings")
    ml.sql(f"CREATE MODEL im OPTIONS ({IMPLICIT}, num_factors = 16, l2_reg = 10, wals_alpha = 1, "
           "data_split_method = 'CUSTOM', data_split_col = 'is_held_out') AS SELECT * FROM ratings")
    return ml


def test_explicit_evaluation_is_sklearn_on_the_held_out_ratings_beside_the_bias_baseline(held_out):
    users, items, intercept = weights(held_out, "ex")
    u, i, r = ratings_of(held_out, "is_held_out")
    predicted = np.array([intercept + (users[a][1] if a in users else 0) + (items[b][1] if b in items else 0)
                          + (users[a][0] @ items[b][0] if a in users and b in items else 0) for a, b in zip(u, i)])
    row = held_out.sql("SELECT * FROM ML.EVALUATE(MODEL ex)").to_arrow_table().to_pylist()[0]
    again = held_out.sql("SELECT * FROM ML.EVALUATE(MODEL ex, (SELECT * FROM ratings WHERE is_held_out))"
                         ).to_arrow_table().to_pylist()[0]
    assert row["mean_squared_error"] == pytest.approx(skm.mean_squared_error(r, predicted), rel=1e-9)
    assert row["median_absolute_error"] == pytest.approx(skm.median_absolute_error(r, predicted), rel=1e-9)
    assert row["r2_score"] == pytest.approx(skm.r2_score(r, predicted), rel=1e-9)
    for key in row:
        assert again[key] == (pytest.approx(row[key], rel=1e-9) if isinstance(row[key], float) else row[key])
    assert row["baseline_strategy"] == "user_item_bias" and row["primary_metric"] == "mean_squared_error"
    assert row["lift_mean_squared_error"] == pytest.approx(row["baseline_mean_squared_error"] - row["mean_squared_error"])
    assert row["beats_baseline"] is True  # the per-user hold-out of the latest ratings: factors help


def test_the_explicit_baseline_is_the_same_fit_without_factors(held_out):
    held_out.sql(f"CREATE MODEL biases OPTIONS ({EXPLICIT}, num_factors = 8, l2_reg = 15, max_iterations = 300, "
                 "early_stop = FALSE, data_split_method = 'CUSTOM', data_split_col = 'is_held_out') AS SELECT * FROM ratings")
    u, i, r = ratings_of(held_out, "NOT is_held_out")
    uu, ui = np.unique(u, return_inverse=True)
    iu, ii = np.unique(i, return_inverse=True)
    mu, lam = r.mean(), 15.0
    bu, bi = np.zeros(len(uu)), np.zeros(len(iu))
    for _ in range(300):  # alternate the two closed forms of the biases-only objective
        bu = np.bincount(ui, r - mu - bi[ii], len(uu)) / (np.bincount(ui, minlength=len(uu)) + lam)
        bi = np.bincount(ii, r - mu - bu[ui], len(iu)) / (np.bincount(ii, minlength=len(iu)) + lam)
    eu, ei, er = ratings_of(held_out, "is_held_out")
    lookup_u, lookup_i = dict(zip(uu, bu)), dict(zip(iu, bi))
    baseline = np.array([mu + lookup_u.get(a, 0.0) + lookup_i.get(b, 0.0) for a, b in zip(eu, ei)])
    row = held_out.sql("SELECT baseline_mean_squared_error FROM ML.EVALUATE(MODEL biases)").fetchall()[0]
    assert row[0] == pytest.approx(skm.mean_squared_error(er, baseline), rel=1e-6)


def test_the_model_card_shows_the_evaluation_beside_the_bias_baseline(held_out):
    card = held_out.sql("SELECT model_card FROM ML.MODEL_CARD(MODEL ex)").fetchall()[0][0]
    row = held_out.sql("SELECT mean_squared_error, baseline_mean_squared_error FROM ML.EVALUATE(MODEL ex)").fetchall()[0]
    assert "A **matrix_factorization** model that predicts **rating**." in card
    assert "Baseline: user_item_bias. Primary metric: mean_squared_error. Beats the baseline: **yes**." in card
    assert f"| mean_squared_error | {row[0]:.4f} | {row[1]:.4f} |" in card
    assert "Global feature importance is unavailable: ML.GLOBAL_EXPLAIN does not apply to 'ex'" in card


def ranking_by_hand(scores: dict, train: set, held: dict, top_k: int | None) -> dict:
    """MAP, NDCG, average rank and preference MSE, one user at a time in plain Python (``scores``: user → {item:
    score}; ``held``: user → {item: rating}), following the definitions in sqlml.model.ranking."""
    aps, ndcgs, weighted, weights_, squared, count = [], [], 0.0, 0.0, 0.0, 0
    for user, relevant in held.items():
        candidates = [m for m in scores[user] if (user, m) not in train or m in relevant]
        ranked = sorted(candidates, key=lambda m: (-scores[user][m], m))
        k = len(ranked) if top_k is None else top_k
        place = {m: p for p, m in enumerate(ranked)}
        hits, precision_sum, dcg = 0, 0.0, 0.0
        for p, m in enumerate(ranked[:k]):
            if m in relevant:
                hits += 1
                precision_sum += hits / (p + 1)
                dcg += relevant[m] / np.log2(p + 2)
        ideal = sorted(relevant.values(), reverse=True)[:k]
        aps.append(precision_sum / min(len(relevant), k))
        ndcgs.append(dcg / sum(g / np.log2(j + 2) for j, g in enumerate(ideal)))
        for m, rating in relevant.items():
            weighted += rating * place[m] / (len(ranked) - 1)
            weights_ += rating
        squared += sum((scores[user][m] - (m in relevant)) ** 2 for m in candidates)
        count += len(candidates)
    return {"mean_average_precision": np.mean(aps), "normalized_discounted_cumulative_gain": np.mean(ndcgs),
            "average_rank": weighted / weights_, "mean_squared_error": squared / count}


@pytest.mark.parametrize("top_k", [None, 10])
def test_implicit_ranking_metrics_match_a_ranking_done_by_hand(held_out, top_k):
    users, items, _ = weights(held_out, "im")
    scores = {a: {b: float(fa @ fb) for b, (fb, _) in items.items()} for a, (fa, _) in users.items()}
    u, i, _ = ratings_of(held_out, "NOT is_held_out")
    train = set(zip(u, i))
    held = {}
    for a, b, rating in zip(*ratings_of(held_out, "is_held_out")):
        if a in users and b in items:
            held.setdefault(a, {})[b] = held.get(a, {}).get(b, 0.0) + rating
    expected = ranking_by_hand(scores, train, held, top_k)
    struct = f", STRUCT({top_k} AS top_k)" if top_k else ""
    row = held_out.sql(f"SELECT * FROM ML.EVALUATE(MODEL im, (SELECT * FROM ratings WHERE is_held_out){struct})"
                       ).to_arrow_table().to_pylist()[0]
    for name, value in expected.items():
        assert row[name] == pytest.approx(value, rel=1e-6), name
    popularity = {b: n / len(users) for b, n in zip(*np.unique(i, return_counts=True))}
    baseline = ranking_by_hand({a: {b: popularity[b] for b in items} for a in users}, train, held, top_k)
    for name, value in baseline.items():
        assert row[f"baseline_{name}"] == pytest.approx(value, rel=1e-6), name
    assert row["baseline_strategy"] == "most_popular" and row["primary_metric"] == "mean_average_precision"
    if top_k:  # MAP@10 and NDCG@10 beat the most popular items on the latest ratings
        assert row["lift_mean_average_precision"] > 0 and row["lift_normalized_discounted_cumulative_gain"] > 0


def test_a_retrain_is_gated_on_the_held_out_ratings(held_out):
    held_out.sql(f"CREATE OR REPLACE MODEL ex OPTIONS ({EXPLICIT}, num_factors = 8, l2_reg = 0.01, "
                 "data_split_method = 'CUSTOM', data_split_col = 'is_held_out') AS SELECT * FROM ratings")
    decision = held_out.sql("SELECT action, metric, new_value, old_value FROM sqlml.deployments "
                            "WHERE model = 'ex' ORDER BY seq DESC LIMIT 1").fetchall()[0]
    new = held_out.sql("SELECT mean_squared_error FROM ML.EVALUATE(MODEL ex VERSION 2)").fetchall()[0][0]
    old = held_out.sql("SELECT mean_squared_error FROM ML.EVALUATE(MODEL ex VERSION 1)").fetchall()[0][0]
    assert decision == ("trained_not_deployed", "mean_squared_error", pytest.approx(new), pytest.approx(old))
    assert new > old  # almost no regularization overfits


# --- implicit feedback against the implicit library ----------------------------------------------------------------

def test_implicit_factors_are_those_of_the_implicit_library(ml):
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    ml.sql(f"CREATE MODEL lib OPTIONS ({IMPLICIT}, num_factors = 6, l2_reg = 2, wals_alpha = 3, max_iterations = 7, "
           "early_stop = FALSE, random_seed = 11, data_split_method = 'NO_SPLIT') AS SELECT * FROM ratings")
    u, i, r = ratings_of(ml)
    users, ui = np.unique(u, return_inverse=True)
    items, ii = np.unique(i, return_inverse=True)
    confidence = sp.csr_matrix((r, (ui, ii)), shape=(len(users), len(items)))
    confidence.data = 1 + 3 * confidence.data
    with threadpool_limits(1, "blas"):
        direct = AlternatingLeastSquares(factors=6, regularization=2.0, alpha=1.0, iterations=7, random_state=11)
        direct.fit(confidence.astype(np.float32), show_progress=False)
    expected = direct.user_factors @ direct.item_factors.T
    got = ml.sql("SELECT userId, movieId, predicted_rating_confidence FROM ML.RECOMMEND(MODEL lib)").fetchnumpy()
    rows, cols = np.searchsorted(users, got["userId"]), np.searchsorted(items, got["movieId"])
    np.testing.assert_allclose(got["predicted_rating_confidence"], expected[rows, cols], atol=1e-5)
    assert ml.sql("SELECT count(*) FROM ML.TRAINING_INFO(MODEL lib)").fetchall()[0] == (7,)


def test_an_implicit_model_evaluated_on_its_training_rows_ranks_them(ml):
    users, items, _ = weights(ml, "lib")
    scores = {a: {b: float(fa @ fb) for b, (fb, _) in items.items()} for a, (fa, _) in users.items()}
    held = {}
    for a, b, rating in zip(*ratings_of(ml)):
        held.setdefault(a, {})[b] = held.get(a, {}).get(b, 0.0) + rating
    expected = ranking_by_hand(scores, {(a, b) for a in held for b in held[a]}, held, None)
    row = ml.sql("SELECT * FROM ML.EVALUATE(MODEL lib)").to_arrow_table().to_pylist()[0]  # NO_SPLIT: the training rows
    for name, value in expected.items():
        assert row[name] == pytest.approx(value, rel=1e-6), name


def test_implicit_weights_have_no_intercepts(ml):
    rows = ml.sql("SELECT processed_input, intercept FROM ML.WEIGHTS(MODEL lib) WHERE intercept IS NOT NULL").fetchall()
    assert rows == []


# --- ids, tuning, storage and refusals -----------------------------------------------------------------------------

def test_text_ids_are_kept_with_the_model_and_read_back_from_its_bytes(ml, tmp_path):
    path = str(tmp_path / "ids.duckdb")
    with sqlml.connect(path, progress=lambda message: None) as conn:
        conn.duckdb.sql("CREATE TABLE t AS SELECT 'u' || (i % 7) AS who, DATE '2024-01-01' + (i % 11)::INT AS what, "
                        "(i % 5) + 1.0 AS stars FROM range(300) r(i)")
        conn.sql("CREATE MODEL dates OPTIONS (model_type = 'matrix_factorization', user_col = 'who', item_col = 'what', "
                 "rating_col = 'stars', num_factors = 2, data_split_method = 'NO_SPLIT') AS SELECT * FROM t")
        before = conn.sql("SELECT * FROM ML.RECOMMEND(MODEL dates) ORDER BY who, what").to_arrow_table()
        fingerprint = conn.duckdb.sql("SELECT fingerprint FROM sqlml.models WHERE name = 'dates'").fetchall()[0][0]
    from sqlml.model import loaded
    loaded.CACHE.forget([fingerprint])  # read back from the bytes
    with sqlml.connect(path, progress=lambda message: None) as conn:
        after = conn.sql("SELECT * FROM ML.RECOMMEND(MODEL dates) ORDER BY who, what").to_arrow_table()
        blob = conn.duckdb.sql("SELECT model FROM sqlml.models WHERE name = 'dates'").fetchall()[0][0]
    assert after.equals(before) and after.num_rows == 7 * 11
    assert after.schema.field("what").type == pa.date32() and after.schema.field("who").type == pa.string()
    import skops.io as sio
    body = bytes(blob)[5 + 1 + 32 + 4 + int.from_bytes(bytes(blob)[38:42], "big"):]
    assert sio.get_untrusted_types(data=body) == []  # arrays and plain values only: nothing pickled


def test_rows_with_a_null_user_or_item_are_skipped_and_said_so(ml):
    ml.sql(f"CREATE MODEL nulls OPTIONS ({EXPLICIT}, num_factors = 2, data_split_method = 'NO_SPLIT') AS "
           "SELECT CASE WHEN movieId % 10 = 0 THEN NULL ELSE userId END AS userId, movieId, "
           "CASE WHEN movieId % 10 = 1 THEN NULL ELSE rating END AS rating FROM ratings")
    expected = ml.sql("SELECT count(*) FROM ratings WHERE movieId % 10 = 0").fetchall()[0][0]
    kept = ml.sql("SELECT count(*) FROM ratings WHERE movieId % 10 NOT IN (0, 1)").fetchall()[0][0]
    notes, = ml.sql("SELECT notes FROM ML.TRAINING_INFO(MODEL nulls) LIMIT 1").fetchall()[0]
    assert f"Skipped {expected:,} training row(s) with a NULL userId or movieId." in notes
    assert ml.sql("SELECT training_rows FROM sqlml.models WHERE name = 'nulls'").fetchall()[0] == (kept,)


def test_tuning_searches_the_factors_and_the_penalty(ml):
    ml.sql(f"CREATE MODEL tuned OPTIONS ({EXPLICIT}, num_trials = 3, num_factors = HPARAM_CANDIDATES([2, 4]), "
           "l2_reg = HPARAM_RANGE(1, 30), random_seed = 3) AS SELECT * FROM ratings")
    trials = ml.sql("SELECT trial_id, hyperparameters, hparam_tuning_evaluation_metrics.mean_squared_error AS mse, "
                    "is_optimal FROM ML.TRIAL_INFO(MODEL tuned) ORDER BY trial_id").fetchall()
    assert len(trials) == 3 and all(t[1]["num_factors"] in (2, 4) and 1 <= t[1]["l2_reg"] <= 30 for t in trials)
    best = min(trials, key=lambda t: (t[2], t[0]))
    assert [t[0] for t in trials if t[3]] == [best[0]]
    factors = ml.sql("SELECT len(factor_weights) FROM ML.WEIGHTS(MODEL tuned) LIMIT 1").fetchall()[0][0]
    assert factors == best[1]["num_factors"]


@pytest.mark.parametrize("sql, error, message", [
    (f"CREATE MODEL bad OPTIONS ({IMPLICIT}) AS SELECT userId, movieId, rating - 3 AS rating FROM ratings",
     DataError, "must not be negative"),
    ("CREATE MODEL bad OPTIONS (model_type = 'matrix_factorization') AS SELECT * FROM ratings",
     DataError, "The user column (user_col) 'user' is not a column of the training query. Columns: userId, movieId"),
    (f"CREATE MODEL bad TRANSFORM (userId, movieId, rating) OPTIONS ({EXPLICIT}) AS SELECT * FROM ratings",
     OptionError, "takes no TRANSFORM clause"),
    (f"CREATE MODEL bad OPTIONS ({EXPLICIT}, num_clusters = 3) AS SELECT * FROM ratings",
     OptionError, "Option 'num_clusters' does not apply to model_type 'matrix_factorization'"),
    ("SELECT * FROM ML.PREDICT(MODEL ex, TABLE ratings)", SqlmlError, "Use ML.RECOMMEND for its predictions"),
    ("SELECT * FROM ML.RECOMMEND(MODEL ex, TABLE ratings, STRUCT(3 AS top_k))", ParameterError, "has nothing to pick"),
    ("SELECT * FROM ML.RECOMMEND(MODEL ex, (SELECT 1 AS x))", DataError, "needs the user column 'userId'"),
    ("SELECT * FROM ML.GENERATE_EMBEDDING(MODEL ex, TABLE ratings)", DataError, "not both"),
    ("SELECT * FROM ML.EVALUATE(MODEL ex, TABLE ratings, STRUCT(5 AS top_k))", ParameterError, "predicts explicit"),
    ("SELECT * FROM ML.EXPLAIN_PREDICT(MODEL ex, TABLE ratings)", SqlmlError, "does not apply to 'ex'"),
    ("CREATE VIEW v AS SELECT * FROM ML.PREDICT(MODEL ex, TABLE ratings)", SqlmlError, "Use ML.RECOMMEND"),
])
def test_refusals_name_the_problem(held_out, sql, error, message):
    with pytest.raises(error) as raised:
        held_out.sql(sql)
    assert message in str(raised.value)
