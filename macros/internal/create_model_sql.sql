{#- Train a new version of the model named after `relation`, append the run to the audit table
    sqlml.training_runs, then replace the table `relation` with one row: the model's name, the
    version just trained and its ML.EVALUATE metrics. -#}
{% macro create_model_sql(relation, options, query) -%}
  {%- set name = sqlml.sql_literal(sqlml.model_name(relation)) -%}
CREATE OR REPLACE MODEL {{ relation }}
OPTIONS (
  {%- for key, value in options.items() %}
  {{ key }} = {{ sqlml.sql_literal(value) }}{{ "," if not loop.last }}
  {%- endfor %}
) AS
{{ query }}
;
INSERT INTO sqlml.training_runs
SELECT uuid()::VARCHAR, name, version, model_type, label, options, metrics, training_rows, eval_rows, fingerprint,
       created_at, {{ sqlml.sql_literal(invocation_id) }}, {{ sqlml.sql_literal(model.unique_id) }}, 1
FROM sqlml.models WHERE name = {{ name }} ORDER BY version DESC LIMIT 1
;
CREATE OR REPLACE TABLE {{ relation }} AS
SELECT {{ name }} AS model_name, latest.version AS model_version, metrics.*
FROM ML.EVALUATE(MODEL {{ relation }}) AS metrics,
     (SELECT max(version) AS version FROM sqlml.models WHERE name = {{ name }}) AS latest
{%- endmacro %}
