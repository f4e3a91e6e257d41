{#- Fails with one row per column whose distribution drifted between `base` (a relation or query,
    e.g. the model's training data) and the relation the test is on (ML.VALIDATE_DATA_DRIFT's
    is_anomaly). `columns` limits the comparison; `thresholds` ({column: threshold}) and the other
    settings are ML.VALIDATE_DATA_DRIFT's.
      models:
        - name: flights_recent
          data_tests:
            - sqlml.sqlml_no_drift: {base: ref('flights_train'), columns: [carrier, distance], thresholds: {carrier: 0.1}} -#}
{% test sqlml_no_drift(model, base, columns=none, thresholds=none, categorical_default_threshold=none,
                       numerical_default_threshold=none, categorical_metric_type=none, params={}) %}
  {%- set settings = {'thresholds': thresholds, 'categorical_default_threshold': categorical_default_threshold,
                      'numerical_default_threshold': numerical_default_threshold,
                      'categorical_metric_type': categorical_metric_type} -%}
  {%- do settings.update(params) -%}
  {{ return(adapter.dispatch('test_sqlml_no_drift', 'sqlml')(model, base, columns, settings)) }}
{% endtest %}

{% macro default__test_sqlml_no_drift(model, base, columns, settings) -%}
  {{ sqlml.not_supported('sqlml_no_drift') }}
{%- endmacro %}

{% macro duckdb__test_sqlml_no_drift(model, base, columns, settings) -%}
select input, metric, threshold, value
from {{ sqlml.validate_data_drift(sqlml.columns_of(base, columns, 'sqlml_no_drift'),
                                  sqlml.columns_of(model, columns, 'sqlml_no_drift'), settings) }} as drift
where is_anomaly
{%- endmacro %}

{#- The query of `columns` of a relation or query (all of them when columns is none). -#}
{% macro columns_of(relation_or_query, columns, caller_name) -%}
  {%- if columns is none -%}
    {{- return(relation_or_query) -}}
  {%- endif -%}
  {%- if columns is string -%}
    {%- set columns = [columns] -%}
  {%- endif -%}
  {%- if not columns -%}
    {{ exceptions.raise_compiler_error(caller_name ~ ": columns must name at least one column, e.g. columns: [carrier]") }}
  {%- endif -%}
  {%- set source = "(" ~ relation_or_query ~ ")" if relation_or_query is string else relation_or_query -%}
  {{- return("select " ~ columns | join(", ") ~ " from " ~ source ~ " as sqlml_columns") -}}
{%- endmacro %}
