{#- ML.EVALUATE as a table expression: one row of metrics with the baseline's and the lift
    (baselines=true), plus one row per slice value with slice_by=['carrier', ...]; each slice column
    is a column of its own type (carrier VARCHAR, month BIGINT), NULL where a row is not sliced by it,
    so a model can filter, join and sort slices (where slice_column = 'carrier' order by carrier). Without data,
    the evaluation split kept at training. `params` takes any other ML.EVALUATE setting
    (threshold, primary_metric, slice_margin, min_slice_size, slice_combinations).
      select * from {{ sqlml.evaluate(ref('delay_model'), ref('flights_recent'), slice_by=['carrier']) }} -#}
{% macro evaluate(model_ref, relation_or_query=none, baselines=true, slice_by=none, params={}) -%}
  {{ return(adapter.dispatch('evaluate', 'sqlml')(model_ref, relation_or_query, baselines, slice_by, params)) }}
{%- endmacro %}

{% macro default__evaluate(model_ref, relation_or_query=none, baselines=true, slice_by=none, params={}) -%}
  {{ sqlml.not_supported('evaluate') }}
{%- endmacro %}

{% macro duckdb__evaluate(model_ref, relation_or_query=none, baselines=true, slice_by=none, params={}) -%}
  {%- if slice_by is string -%}
    {%- set slice_by = [slice_by] -%}
  {%- endif -%}
  {%- if params is not mapping -%}
    {{ exceptions.raise_compiler_error("sqlml.evaluate: params must be a dict of ML.EVALUATE settings; got " ~ params) }}
  {%- endif -%}
  {%- set settings = {'baselines': none if baselines else false, 'slice_by': slice_by} -%}
  {%- do settings.update(params) -%}
  {{- sqlml.ml_call('EVALUATE', model_ref, relation_or_query, settings) -}}
{%- endmacro %}
