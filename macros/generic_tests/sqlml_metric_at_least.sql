{#- Fails when `metric` is below `threshold` (or undefined) on `data`, or without it on the
    evaluation split kept at training.
            - sqlml.sqlml_metric_at_least: {metric: r2_score, threshold: 0.8} -#}
{% test sqlml_metric_at_least(model, metric, threshold, data=none) %}
  {{ return(adapter.dispatch('test_sqlml_metric_at_least', 'sqlml')(model, metric, threshold, data)) }}
{% endtest %}

{% macro default__test_sqlml_metric_at_least(model, metric, threshold, data) -%}
  {{ sqlml.not_supported('sqlml_metric_at_least') }}
{%- endmacro %}

{% macro duckdb__test_sqlml_metric_at_least(model, metric, threshold, data) -%}
  {%- set metric = sqlml.metric_name(metric, 'sqlml_metric_at_least') -%}
  {%- if threshold is not number -%}
    {{ exceptions.raise_compiler_error("sqlml_metric_at_least: threshold must be a number; got " ~ threshold) }}
  {%- endif -%}
select '{{ metric }}' as metric, {{ metric }} as model_value, {{ threshold }} as threshold
from {{ sqlml.evaluate(model, data, baselines=false) }} as evaluation
where not coalesce({{ metric }} >= {{ threshold }}, false)
{%- endmacro %}
