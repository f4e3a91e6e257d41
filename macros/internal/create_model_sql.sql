{#- Train a new version of the model named after `relation`, then replace the table `relation`
    with one row: the model's name, the version just trained and its ML.EVALUATE metrics. -#}
{% macro create_model_sql(relation, ml_config, query) -%}
  {%- if ml_config is not mapping or not ml_config -%}
    {{ exceptions.raise_compiler_error(
        "A sqlml_model needs ml_config, the model's OPTIONS as a dict, e.g. "
        ~ "config(materialized='sqlml_model', ml_config={'model_type': 'linear_reg', 'input_label_cols': ['y']})") }}
  {%- endif -%}
  {%- set name = sqlml.model_name(relation) -%}
CREATE OR REPLACE MODEL {{ relation }}
OPTIONS (
  {%- for key, value in ml_config.items() %}
  {{ key }} = {{ sqlml.sql_literal(value) }}{{ "," if not loop.last }}
  {%- endfor %}
) AS
{{ query }}
;
CREATE OR REPLACE TABLE {{ relation }} AS
SELECT {{ sqlml.sql_literal(name) }} AS model_name, latest.version AS model_version, metrics.*
FROM ML.EVALUATE(MODEL {{ relation }}) AS metrics,
     (SELECT max(version) AS version FROM sqlml.models WHERE name = {{ sqlml.sql_literal(name) }}) AS latest
{%- endmacro %}
