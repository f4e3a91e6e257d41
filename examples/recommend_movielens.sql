-- Movie recommendations with matrix factorization on MovieLens (100,004 ratings, 671 users, 9,066 movies).
-- Run it:  sqlml run examples/recommend_movielens.sql --dataset movielens    (needs the datasets extra)
-- The walk-through is docs/recommendations.md.

-- Hold out each user's latest 20 % of ratings: the model learns from the past and is judged on the future.
CREATE OR REPLACE TABLE ratings AS
SELECT userId, movieId, rating, timestamp,
       row_number() OVER (PARTITION BY userId ORDER BY timestamp DESC, movieId)
         <= greatest(1, round(0.2 * count(*) OVER (PARTITION BY userId))) AS is_held_out
FROM movielens;

-- 1. Explicit feedback: predict the rating (ALS with user and item biases and a global intercept).
CREATE OR REPLACE MODEL movie_ratings
OPTIONS (model_type = 'matrix_factorization', user_col = 'userId', item_col = 'movieId', rating_col = 'rating',
         num_factors = 16, l2_reg = 15, data_split_method = 'CUSTOM', data_split_col = 'is_held_out') AS
SELECT * FROM ratings;

-- The loss per iteration (training and held-out mean squared error).
SELECT iteration, loss, eval_loss FROM ML.TRAINING_INFO(MODEL movie_ratings) ORDER BY iteration;

-- On the held-out ratings, beside the baseline (global mean + user and item biases, fitted the same way).
SELECT sqrt(mean_squared_error) AS rmse, sqrt(baseline_mean_squared_error) AS baseline_rmse, beats_baseline
FROM ML.EVALUATE(MODEL movie_ratings);

-- Five movies for user 1, leaving out what they rated already.
SELECT r.predicted_rating, m.title
FROM ML.RECOMMEND(MODEL movie_ratings, (SELECT 1 AS userId), STRUCT(5 AS top_k, TRUE AS exclude_rated)) r
JOIN (SELECT DISTINCT movieId, title FROM movielens) m USING (movieId)
ORDER BY r.predicted_rating DESC;

-- Movies like "Toy Story" (movieId 1): cosine similarity of the item embeddings, in SQL.
WITH e AS (SELECT * FROM ML.GENERATE_EMBEDDING(MODEL movie_ratings, (SELECT DISTINCT movieId FROM ratings)))
SELECT m.title, list_cosine_similarity(toy.ml_generate_embedding_result, e.ml_generate_embedding_result) AS similarity
FROM e, e AS toy, (SELECT DISTINCT movieId, title FROM movielens) m
WHERE toy.movieId = 1 AND e.movieId <> 1 AND m.movieId = e.movieId
  AND e.movieId IN (SELECT movieId FROM ratings GROUP BY movieId HAVING count(*) >= 50)
ORDER BY similarity DESC
LIMIT 5;

-- 2. Implicit feedback: which movies a user will watch (weighted ALS, confidence 1 + wals_alpha * rating).
CREATE OR REPLACE MODEL movie_watches
OPTIONS (model_type = 'matrix_factorization', feedback_type = 'implicit', user_col = 'userId',
         item_col = 'movieId', rating_col = 'rating', num_factors = 32, l2_reg = 10, wals_alpha = 1,
         data_split_method = 'CUSTOM', data_split_col = 'is_held_out') AS
SELECT * FROM ratings;

-- MAP@10 and NDCG@10 on the held-out ratings, beside the most popular movies.
SELECT mean_average_precision AS map_10, baseline_mean_average_precision AS popular_map_10,
       normalized_discounted_cumulative_gain AS ndcg_10,
       baseline_normalized_discounted_cumulative_gain AS popular_ndcg_10
FROM ML.EVALUATE(MODEL movie_watches, (SELECT * FROM ratings WHERE is_held_out), STRUCT(10 AS top_k));

-- Every user's ten best unseen movies, without materializing the 6 M user × movie pairs.
CREATE OR REPLACE TABLE top_movies AS
SELECT * FROM ML.RECOMMEND(MODEL movie_watches, STRUCT(10 AS top_k, TRUE AS exclude_rated));
SELECT count(*) AS recommendations, count(DISTINCT userId) AS users FROM top_movies;
