{#- ML.FORECAST as a table expression (ARIMA_PLUS, ARIMA_PLUS_XREG): the next `horizon` points of every
    series with prediction intervals at `confidence_level`; BigQuery's defaults are 3 and 0.95. An
    ARIMA_PLUS_XREG model reads its regressors' future values from `relation_or_query`.
      select * from {{ sqlml.forecast(ref('flights_forecast'), horizon=31, confidence_level=0.9) }} -#}
{% macro forecast(model_ref, horizon=none, confidence_level=none, relation_or_query=none) -%}
  {{ return(adapter.dispatch('forecast', 'sqlml')(model_ref, horizon, confidence_level, relation_or_query)) }}
{%- endmacro %}

{% macro default__forecast(model_ref, horizon=none, confidence_level=none, relation_or_query=none) -%}
  {{ sqlml.not_supported('forecast') }}
{%- endmacro %}

{% macro duckdb__forecast(model_ref, horizon=none, confidence_level=none, relation_or_query=none) -%}
  {%- if horizon is not none and horizon is not number -%}
    {{ exceptions.raise_compiler_error("sqlml.forecast: horizon must be a whole number of time points; got " ~ horizon) }}
  {%- endif -%}
  {%- if confidence_level is not none and confidence_level is not number -%}
    {{ exceptions.raise_compiler_error("sqlml.forecast: confidence_level must be a number in [0, 1); got " ~ confidence_level) }}
  {%- endif -%}
  {{- sqlml.ml_call('FORECAST', model_ref, relation_or_query, {'horizon': horizon, 'confidence_level': confidence_level}) -}}
{%- endmacro %}
