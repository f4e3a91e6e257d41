{#- ML.CONFUSION_MATRIX as a table expression: one row per actual class (expected_label), one
    column per predicted class.
      select * from {{ sqlml.confusion_matrix(ref('delay_model'), ref('flights_recent')) }} -#}
{% macro confusion_matrix(model_ref, relation_or_query=none, threshold=none) -%}
  {{ return(adapter.dispatch('confusion_matrix', 'sqlml')(model_ref, relation_or_query, threshold)) }}
{%- endmacro %}

{% macro default__confusion_matrix(model_ref, relation_or_query=none, threshold=none) -%}
  {{ sqlml.not_supported('confusion_matrix') }}
{%- endmacro %}

{% macro duckdb__confusion_matrix(model_ref, relation_or_query=none, threshold=none) -%}
  {{- sqlml.ml_call('CONFUSION_MATRIX', model_ref, relation_or_query, {'threshold': threshold}) -}}
{%- endmacro %}
