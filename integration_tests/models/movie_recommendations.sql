-- Five movies for every user, leaving out what they rated: a table dashboards can read.
{{ config(materialized='table') }}

select *
from {{ sqlml.recommend(ref('movie_model'), top_k=5, exclude_rated=true) }}
