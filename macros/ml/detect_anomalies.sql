{#- ML.DETECT_ANOMALIES as a table expression. For a time series model (ARIMA_PLUS): without
    `relation_or_query`, every point of the history; with it, those points (history or ahead), each with
    is_anomaly, lower_bound, upper_bound and anomaly_probability; a point is an anomaly when that
    probability is above `anomaly_prob_threshold` (BigQuery's default 0.95).
      select * from {{ sqlml.detect_anomalies(ref('flights_forecast'), anomaly_prob_threshold=0.99) }} -#}
{% macro detect_anomalies(model_ref, relation_or_query=none, anomaly_prob_threshold=none) -%}
  {{ return(adapter.dispatch('detect_anomalies', 'sqlml')(model_ref, relation_or_query, anomaly_prob_threshold)) }}
{%- endmacro %}

{% macro default__detect_anomalies(model_ref, relation_or_query=none, anomaly_prob_threshold=none) -%}
  {{ sqlml.not_supported('detect_anomalies') }}
{%- endmacro %}

{% macro duckdb__detect_anomalies(model_ref, relation_or_query=none, anomaly_prob_threshold=none) -%}
  {%- if anomaly_prob_threshold is not none and anomaly_prob_threshold is not number -%}
    {{ exceptions.raise_compiler_error("sqlml.detect_anomalies: anomaly_prob_threshold must be a number in [0, 1); got "
                                       ~ anomaly_prob_threshold) }}
  {%- endif -%}
  {{- sqlml.ml_call('DETECT_ANOMALIES', model_ref, relation_or_query, {'anomaly_prob_threshold': anomaly_prob_threshold}) -}}
{%- endmacro %}
