{#- ML.ESTIMATE_PERFORMANCE as a table expression: a binary classifier's accuracy, precision, recall,
    F1 and ROC AUC estimated from its probabilities, without labels (CBPE; it assumes no concept drift),
    on all rows or one row per time_window ('day', 'week', 'month', 'quarter', 'year') of time_column.
      select * from {{ sqlml.estimate_performance(ref('delay_model'), ref('flights_recent'), 'flight_date', 'month') }} -#}
{% macro estimate_performance(model_ref, relation_or_query, time_column=none, time_window=none) -%}
  {{ return(adapter.dispatch('estimate_performance', 'sqlml')(model_ref, relation_or_query, time_column, time_window)) }}
{%- endmacro %}

{% macro default__estimate_performance(model_ref, relation_or_query, time_column=none, time_window=none) -%}
  {{ sqlml.not_supported('estimate_performance') }}
{%- endmacro %}

{% macro duckdb__estimate_performance(model_ref, relation_or_query, time_column=none, time_window=none) -%}
  {%- do sqlml.require_rows(relation_or_query, 'estimate_performance', 'the rows to estimate on') -%}
  {{- sqlml.ml_call('ESTIMATE_PERFORMANCE', model_ref, relation_or_query,
                    {'time_column': time_column, 'time_window': time_window}) -}}
{%- endmacro %}
