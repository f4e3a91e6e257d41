{#- ML.VALIDATE_DATA_DRIFT as a table expression: one row per column of both relations (or queries),
    input, metric, threshold, value, is_anomaly. `params` takes its settings (thresholds as a dict
    {column: threshold}, categorical_default_threshold, categorical_metric_type, num_histogram_buckets, ...).
      select * from {{ sqlml.validate_data_drift(ref('flights_train'), ref('flights_recent'), {'thresholds': {'carrier': 0.1}}) }} -#}
{% macro validate_data_drift(base, study, params={}) -%}
  {{ return(adapter.dispatch('validate_data_drift', 'sqlml')(base, study, params)) }}
{%- endmacro %}

{% macro default__validate_data_drift(base, study, params={}) -%}
  {{ sqlml.not_supported('validate_data_drift') }}
{%- endmacro %}

{% macro duckdb__validate_data_drift(base, study, params={}) -%}
  {%- if base is none or study is none -%}
    {{ exceptions.raise_compiler_error("sqlml.validate_data_drift needs two relations or queries: base and study") }}
  {%- endif -%}
  {{- sqlml.ml_call('VALIDATE_DATA_DRIFT', none, base, sqlml.drift_params(params, 'validate_data_drift'), study) -}}
{%- endmacro %}

{#- ML.VALIDATE_DATA_SKEW as a table expression: the serving rows against the statistics the model
    stored of its training data; the same output and `params` as validate_data_drift.
      select * from {{ sqlml.validate_data_skew(ref('delay_model'), ref('flights_recent')) }} -#}
{% macro validate_data_skew(model_ref, relation_or_query, params={}) -%}
  {{ return(adapter.dispatch('validate_data_skew', 'sqlml')(model_ref, relation_or_query, params)) }}
{%- endmacro %}

{% macro default__validate_data_skew(model_ref, relation_or_query, params={}) -%}
  {{ sqlml.not_supported('validate_data_skew') }}
{%- endmacro %}

{% macro duckdb__validate_data_skew(model_ref, relation_or_query, params={}) -%}
  {%- do sqlml.require_rows(relation_or_query, 'validate_data_skew', 'the serving rows') -%}
  {{- sqlml.ml_call('VALIDATE_DATA_SKEW', model_ref, relation_or_query, sqlml.drift_params(params, 'validate_data_skew')) -}}
{%- endmacro %}

{#- The settings of the drift macros and tests, checked: a dict; thresholds a dict {column: threshold}. -#}
{% macro drift_params(params, caller_name) -%}
  {%- if params is not mapping -%}
    {{ exceptions.raise_compiler_error("sqlml." ~ caller_name ~ ": params must be a dict of settings; got " ~ params) }}
  {%- endif -%}
  {%- if params.get('thresholds') is not none and params.get('thresholds') is not mapping -%}
    {{ exceptions.raise_compiler_error("sqlml." ~ caller_name ~ ": thresholds must be a dict {column: threshold}; got " ~ params.get('thresholds')) }}
  {%- endif -%}
  {{- return(params) -}}
{%- endmacro %}
