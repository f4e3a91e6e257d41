{#- ML.REVIEW_QUEUE as a table expression: the rows a classifier is least sure of, least sure first,
    with predicted_<label>, confidence (the top class probability) and every input column: the top_k
    of them, or (with max_confidence) those at or under it, or both.
      select * from {{ sqlml.review_queue(ref('delay_model'), ref('flights_recent'), top_k=50) }} -#}
{% macro review_queue(model_ref, relation_or_query, top_k=100, max_confidence=none) -%}
  {{ return(adapter.dispatch('review_queue', 'sqlml')(model_ref, relation_or_query, top_k, max_confidence)) }}
{%- endmacro %}

{% macro default__review_queue(model_ref, relation_or_query, top_k=100, max_confidence=none) -%}
  {{ sqlml.not_supported('review_queue') }}
{%- endmacro %}

{% macro duckdb__review_queue(model_ref, relation_or_query, top_k=100, max_confidence=none) -%}
  {%- do sqlml.require_rows(relation_or_query, 'review_queue', 'the rows to rank') -%}
  {{- sqlml.ml_call('REVIEW_QUEUE', model_ref, relation_or_query, {'top_k': top_k, 'max_confidence': max_confidence}) -}}
{%- endmacro %}
