-- Which movies will a viewer like? Matrix factorization of MovieLens ratings (users 1–15), each
-- user's latest fifth of ratings held out for the evaluation.
{{ config(
    materialized='sqlml_model',
    sqlml={'model_type': 'matrix_factorization', 'user_col': 'user_id', 'item_col': 'movie_id',
           'rating_col': 'rating', 'num_factors': 4, 'l2_reg': 10, 'data_split_method': 'CUSTOM',
           'data_split_col': 'is_held_out'},
) }}

select user_id, movie_id, rating,
       row_number() over (partition by user_id order by "timestamp" desc, movie_id)
         <= greatest(1, round(0.2 * count(*) over (partition by user_id))) as is_held_out
from {{ ref('movie_ratings') }}
