{#- ML.RECOMMEND as a table expression: predicted_<rating_col> (implicit feedback: predicted_<rating_col>_confidence),
    then the user and item columns. Without data, every user × every item the model knows; with a relation
    or query of users (or items, or (user, item) pairs), those. top_k keeps the k best items of each user
    (users of each item, given items); exclude_rated leaves out what each user rated in training.
      select * from {{ sqlml.recommend(ref('movie_model'), top_k=10, exclude_rated=true) }} -#}
{% macro recommend(model_ref, relation_or_query=none, top_k=none, exclude_rated=none) -%}
  {{ return(adapter.dispatch('recommend', 'sqlml')(model_ref, relation_or_query, top_k, exclude_rated)) }}
{%- endmacro %}

{% macro default__recommend(model_ref, relation_or_query=none, top_k=none, exclude_rated=none) -%}
  {{ sqlml.not_supported('recommend') }}
{%- endmacro %}

{% macro duckdb__recommend(model_ref, relation_or_query=none, top_k=none, exclude_rated=none) -%}
  {%- if top_k is not none and (top_k is not number or top_k < 1) -%}
    {{ exceptions.raise_compiler_error("sqlml.recommend: top_k must be a positive integer; got " ~ top_k) }}
  {%- endif -%}
  {{- sqlml.ml_call('RECOMMEND', model_ref, relation_or_query, {'top_k': top_k, 'exclude_rated': exclude_rated}) -}}
{%- endmacro %}
