{#- Fails with one row per input column of a sqlml model whose serving data (`data`, a relation or
    query) moved away from the training data (ML.VALIDATE_DATA_SKEW's is_anomaly, against the
    statistics the model stored at training). `thresholds` ({column: threshold}) and the other
    settings are ML.VALIDATE_DATA_SKEW's.
      models:
        - name: delay_model
          data_tests:
            - sqlml.sqlml_no_skew: {data: ref('flights_recent'), thresholds: {dep_delay: 0.1}} -#}
{% test sqlml_no_skew(model, data, thresholds=none, categorical_default_threshold=none,
                      numerical_default_threshold=none, categorical_metric_type=none) %}
  {%- set settings = {'thresholds': thresholds, 'categorical_default_threshold': categorical_default_threshold,
                      'numerical_default_threshold': numerical_default_threshold,
                      'categorical_metric_type': categorical_metric_type} -%}
  {{ return(adapter.dispatch('test_sqlml_no_skew', 'sqlml')(model, data, settings)) }}
{% endtest %}

{% macro default__test_sqlml_no_skew(model, data, settings) -%}
  {{ sqlml.not_supported('sqlml_no_skew') }}
{%- endmacro %}

{% macro duckdb__test_sqlml_no_skew(model, data, settings) -%}
select input, metric, threshold, value
from {{ sqlml.validate_data_skew(model, data, settings) }} as skew
where is_anomaly
{%- endmacro %}
