{#- Train a new version of the model named after `relation` (the deploy gate decides whether it is
    deployed: OPTIONS deploy, deploy_tolerance, deploy_significance pass through like any option). -#}
{% macro create_model_sql(relation, options, query) -%}
CREATE OR REPLACE MODEL {{ relation }}
OPTIONS (
  {%- for key, value in options.items() %}
  {{ key }} = {{ sqlml.sql_literal(value) }}{{ "," if not loop.last }}
  {%- endfor %}
) AS
{{ query }}
{%- endmacro %}


{#- The version just trained and the gate's decision on it, from the log sqlml.deployments:
    {'version': n, 'deployed': true/false, 'reason': the gate's sentence, 'message': for dbt's run result}. -#}
{% macro trained_version(relation) -%}
  {%- set name = sqlml.model_name(relation) -%}
  {%- set result = run_query("select version, action = 'trained_deployed', reason from " ~ sqlml.registry_table('deployments') ~ " where model = "
      ~ sqlml.sql_literal(name) ~ " and action in ('trained_deployed', 'trained_not_deployed') order by seq desc limit 1") -%}
  {%- set row = result.rows[0] -%}
  {%- set version = row[0] | int -%}
  {%- set message = ("version " ~ version ~ " deployed") if row[1]
      else ("version " ~ version ~ " stored, NOT deployed: " ~ row[2] ~ "; to deploy it: ALTER MODEL " ~ name ~ " DEPLOY VERSION " ~ version) -%}
  {{- return({'version': version, 'deployed': row[1], 'reason': row[2], 'message': message}) -}}
{%- endmacro %}


{#- After training `trained` (sqlml.trained_version): append the run to the audit table
    sqlml.training_runs, then replace the table `relation` with one row: the model's name, the
    version just trained, whether the gate deployed it and why, and its ML.EVALUATE metrics. -#}
{% macro model_relation_sql(relation, trained) -%}
  {%- set name = sqlml.sql_literal(sqlml.model_name(relation)) -%}
INSERT INTO {{ sqlml.registry_table('training_runs') }}
SELECT uuid()::VARCHAR, name, version, model_type, label, options, metrics, training_rows, eval_rows, fingerprint,
       created_at, {{ sqlml.sql_literal(invocation_id) }}, {{ sqlml.sql_literal(model.unique_id) }}, 1
FROM {{ sqlml.registry_table('models') }} WHERE name = {{ name }} AND version = {{ trained.version }}
;
CREATE OR REPLACE TABLE {{ relation }} AS
{{ sqlml.evaluation_row_sql(relation, trained, replace=false) }}
{%- endmacro %}


{#- The row a sqlml_model's relation holds: the model's name, the version just trained, whether the gate
    deployed it and why, and its ML.EVALUATE metrics; as a query (replace=false), or as statements
    replacing the relation's table (Spark's tables have no CREATE OR REPLACE). -#}
{% macro evaluation_row_sql(relation, trained, replace=true) -%}
  {%- if replace -%}
DROP TABLE IF EXISTS {{ relation }};
CREATE TABLE {{ relation }} AS
  {% endif -%}
SELECT {{ sqlml.sql_literal(sqlml.model_name(relation)) }} AS model_name, {{ trained.version }} AS model_version,
       {{ sqlml.sql_literal(trained.deployed) }} AS deployed, {{ sqlml.sql_literal(trained.reason) }} AS deploy_reason, metrics.*
FROM ML.EVALUATE(MODEL {{ relation }} VERSION {{ trained.version }}) AS metrics
{%- endmacro %}
