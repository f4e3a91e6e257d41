{#- Trains a model version with sqlml on the model's query and appends the run to the audit table
    sqlml.training_runs; the relation it leaves is a one-row table of the version's evaluation
    metrics (model_name, model_version, ML.EVALUATE's columns), which dbt tests can check.

      {{ config(materialized='sqlml_model',
                sqlml={'model_type': 'logistic_reg', 'input_label_cols': ['species']}) }}
      select * from {{ ref('penguins') }}
-#}
{% materialization sqlml_model, adapter='duckdb', supported_languages=['sql'] %}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set statements = sqlml.create_model_sql(target_relation, sqlml.model_options(), compiled_code) -%}
  {{ sqlml.before_job(target_relation) }}
  {% call statement('main', language='python') -%}
    {{ sqlml.python_job(statements) }}
  {%- endcall %}
  {{ return(sqlml.after_job(target_relation)) }}
{% endmaterialization %}
