{#- ML.EXPLAIN_PREDICT as a table expression: predictions with each row's top feature attributions.
      select * from {{ sqlml.explain_predict(ref('delay_model'), ref('flights_today'), top_k_features=3) }} -#}
{% macro explain_predict(model_ref, relation_or_query, top_k_features=none, threshold=none) -%}
  {{ return(adapter.dispatch('explain_predict', 'sqlml')(model_ref, relation_or_query, top_k_features, threshold)) }}
{%- endmacro %}

{% macro default__explain_predict(model_ref, relation_or_query, top_k_features=none, threshold=none) -%}
  {{ sqlml.not_supported('explain_predict') }}
{%- endmacro %}

{% macro duckdb__explain_predict(model_ref, relation_or_query, top_k_features=none, threshold=none) -%}
  {{- sqlml.ml_call('EXPLAIN_PREDICT', model_ref, relation_or_query,
                    {'top_k_features': top_k_features, 'threshold': threshold}) -}}
{%- endmacro %}
