{#- ML.ROC_CURVE as a table expression (binary classifiers): threshold, recall,
    false_positive_rate, the four counts and precision at each distinct score.
      select * from {{ sqlml.roc_curve(ref('delay_model'), ref('flights_recent')) }} -#}
{% macro roc_curve(model_ref, relation_or_query=none) -%}
  {{ return(adapter.dispatch('roc_curve', 'sqlml')(model_ref, relation_or_query)) }}
{%- endmacro %}

{% macro default__roc_curve(model_ref, relation_or_query=none) -%}
  {{ sqlml.not_supported('roc_curve') }}
{%- endmacro %}

{% macro duckdb__roc_curve(model_ref, relation_or_query=none) -%}
  {{- sqlml.ml_call('ROC_CURVE', model_ref, relation_or_query) -}}
{%- endmacro %}
