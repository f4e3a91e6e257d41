{#- Predictions as a table expression, for any materialization:
      select * from {{ sqlml.predict(ref('delay_model'), ref('flights_today')) }}
    Without a threshold the SQL calls the model version's scoring function, so rows are scored when
    DuckDB runs the query (in a view: each time it is read); with one, sqlml computes the rows when
    the model is built. -#}
{% macro predict(model_ref, relation_or_query, threshold=none) -%}
  {{ return(adapter.dispatch('predict', 'sqlml')(model_ref, relation_or_query, threshold)) }}
{%- endmacro %}

{% macro default__predict(model_ref, relation_or_query, threshold=none) -%}
  {{ sqlml.not_supported('predict') }}
{%- endmacro %}

{% macro duckdb__predict(model_ref, relation_or_query, threshold=none) -%}
  {%- if threshold is not none and threshold is not number -%}
    {{ exceptions.raise_compiler_error("sqlml.predict: threshold must be a number between 0 and 1; got " ~ threshold) }}
  {%- endif -%}
  {{- sqlml.ml_call('PREDICT', model_ref, relation_or_query, {'threshold': threshold}) -}}
{%- endmacro %}
