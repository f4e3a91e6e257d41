{#- Fails when the model does not beat its baseline by more than min_lift on `metric`
    (lift_<metric> > min_lift; positive lift is better, for losses too), or when the metric is
    undefined. Evaluated on `data`, or without it on the evaluation split kept at training.
      models:
        - name: delay_model
          data_tests:
            - sqlml.sqlml_beats_baseline: {metric: roc_auc, min_lift: 0.1, data: ref('flights_recent')} -#}
{% test sqlml_beats_baseline(model, metric='roc_auc', min_lift=0.0, data=none) %}
  {{ return(adapter.dispatch('test_sqlml_beats_baseline', 'sqlml')(model, metric, min_lift, data)) }}
{% endtest %}

{% macro default__test_sqlml_beats_baseline(model, metric, min_lift, data) -%}
  {{ sqlml.not_supported('sqlml_beats_baseline') }}
{%- endmacro %}

{% macro duckdb__test_sqlml_beats_baseline(model, metric, min_lift, data) -%}
  {%- set metric = sqlml.metric_name(metric, 'sqlml_beats_baseline') -%}
  {%- if min_lift is not number -%}
    {{ exceptions.raise_compiler_error("sqlml_beats_baseline: min_lift must be a number; got " ~ min_lift) }}
  {%- endif -%}
select '{{ metric }}' as metric, {{ metric }} as model_value, baseline_{{ metric }} as baseline_value,
       lift_{{ metric }} as lift, {{ min_lift }} as min_lift
from {{ sqlml.evaluate(model, data, params={'primary_metric': metric}) }} as evaluation
where not coalesce(lift_{{ metric }} > {{ min_lift }}, false)
{%- endmacro %}
