{#- Fails with one row per slice (value of a slice_by column) whose `metric` is worse than the
    overall figure by more than `margin` (ML.EVALUATE's worse_than_overall; lower for scores,
    higher for losses). Slices with fewer than min_slice_size rows (default 30) are not judged.
            - sqlml.sqlml_no_slice_below: {metric: accuracy, margin: 0.1, slice_by: [origin], data: ref('flights_recent')} -#}
{% test sqlml_no_slice_below(model, metric, margin, slice_by, data=none, min_slice_size=none) %}
  {{ return(adapter.dispatch('test_sqlml_no_slice_below', 'sqlml')(model, metric, margin, slice_by, data, min_slice_size)) }}
{% endtest %}

{% macro default__test_sqlml_no_slice_below(model, metric, margin, slice_by, data, min_slice_size) -%}
  {{ sqlml.not_supported('sqlml_no_slice_below') }}
{%- endmacro %}

{% macro duckdb__test_sqlml_no_slice_below(model, metric, margin, slice_by, data, min_slice_size) -%}
  {%- set metric = sqlml.metric_name(metric, 'sqlml_no_slice_below') -%}
  {%- if margin is not number or margin < 0 -%}
    {{ exceptions.raise_compiler_error("sqlml_no_slice_below: margin must be a number >= 0; got " ~ margin) }}
  {%- endif -%}
  {%- if not slice_by -%}
    {{ exceptions.raise_compiler_error("sqlml_no_slice_below: slice_by must name at least one column, e.g. slice_by: [carrier]") }}
  {%- endif -%}
select slice_column, slice_value, row_count, {{ metric }} as model_value, {{ margin }} as margin
from {{ sqlml.evaluate(model, data, slice_by=slice_by, params={
        'primary_metric': metric, 'slice_margin': margin, 'min_slice_size': min_slice_size}) }} as evaluation
where slice_column is not null and worse_than_overall and not unreliable
{%- endmacro %}
