{#- Fails when a time series model's forecast misses the latest actuals by more than `max_mape` percent
    (ML.EVALUATE's mean_absolute_percentage_error of a series, on the actuals in `data` that fall within
    `horizon` points after its training data): one failing row per series that does, with the seasonal
    naive forecast's MAPE beside it.
      models:
        - name: flights_forecast
          data_tests:
            - sqlml.sqlml_forecast_mape_at_most: {data: ref('december_flights'), max_mape: 15} -#}
{% test sqlml_forecast_mape_at_most(model, data, max_mape, horizon=none) %}
  {{ return(adapter.dispatch('test_sqlml_forecast_mape_at_most', 'sqlml')(model, data, max_mape, horizon)) }}
{% endtest %}

{% macro default__test_sqlml_forecast_mape_at_most(model, data, max_mape, horizon) -%}
  {{ sqlml.not_supported('sqlml_forecast_mape_at_most') }}
{%- endmacro %}

{% macro duckdb__test_sqlml_forecast_mape_at_most(model, data, max_mape, horizon) -%}
  {%- if max_mape is not number -%}
    {{ exceptions.raise_compiler_error("sqlml_forecast_mape_at_most: max_mape must be a number (percent); got " ~ max_mape) }}
  {%- endif -%}
  {%- if data is none -%}
    {{ exceptions.raise_compiler_error("sqlml_forecast_mape_at_most needs data: the latest actuals (a relation or a query)") }}
  {%- endif -%}
select evaluation.*, {{ max_mape }} as max_mape
from {{ sqlml.evaluate(model, data, params={'horizon': horizon}) }} as evaluation
where not coalesce(mean_absolute_percentage_error <= {{ max_mape }}, false)
{%- endmacro %}
