{#- Trains a model version with sqlml on the model's query and appends the run to the audit table
    sqlml.training_runs; the relation it leaves is a one-row table of the version's evaluation
    metrics (model_name, model_version, ML.EVALUATE's columns), which dbt tests can check.

      {{ config(materialized='sqlml_model',
                sqlml={'model_type': 'logistic_reg', 'input_label_cols': ['species']}) }}
      select * from {{ ref('penguins') }}
-#}
{% materialization sqlml_model, adapter='duckdb', supported_languages=['sql'] %}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set existing_relation = load_cached_relation(this) -%}
  {%- set statements = sqlml.create_model_sql(target_relation, sqlml.model_options(), compiled_code) -%}
  {%- do sqlml.require_plugin() -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {%- if existing_relation is not none and not existing_relation.is_table %}
    {{ adapter.drop_relation(existing_relation) }}
  {%- endif %}

  {#- No transaction is open here: sqlml stores each model version in a short transaction of its own. -#}
  {% call statement('main', language='python') -%}
    {{ sqlml.python_job(statements) }}
  {%- endcall %}
  {{ sqlml.raise_if_failed() }}

  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {% do persist_docs(target_relation, model) %}
  {{ adapter.commit() }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
