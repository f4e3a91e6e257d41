{#- Trains a model version with sqlml on the model's query (the deploy gate decides whether it is
    deployed) and appends the run to the audit table sqlml.training_runs; the relation it leaves is a
    one-row table: model_name, model_version, deployed, deploy_reason, then the version's ML.EVALUATE
    columns, which dbt tests can check. The run result's message says whether the version was deployed.

      {{ config(materialized='sqlml_model',
                sqlml={'model_type': 'logistic_reg', 'input_label_cols': ['species']}) }}
      select * from {{ ref('penguins') }}
-#}
{% materialization sqlml_model, adapter='duckdb', supported_languages=['sql'] %}
  {%- set target_relation = this.incorporate(type='table') -%}
  {{ sqlml.before_job(target_relation) }}
  {% call statement('main', language='python') -%}
    {{ sqlml.python_job(sqlml.create_model_sql(target_relation, sqlml.model_options(), compiled_code)) }}
  {%- endcall %}
  {{ sqlml.raise_if_failed() }}
  {%- set trained = sqlml.trained_version(target_relation) -%}
  {% call statement('main', language='python') -%}
    {{ sqlml.python_job(sqlml.model_relation_sql(target_relation, trained)) }}
  {%- endcall %}
  {% do store_raw_result('main', message=trained.message, code='OK', rows_affected=1) %}
  {{ return(sqlml.after_job(target_relation)) }}
{% endmaterialization %}


{#- On Spark (dbt-spark, method: session, run inside sqlml.dbt.spark.attached): the same one-row relation,
    without the audit table. -#}
{% materialization sqlml_model, adapter='spark', supported_languages=['sql'] %}
  {%- set target_relation = this.incorporate(type='table') -%}
  {{ run_hooks(pre_hooks) }}
  {% call statement('main') -%}
    {{ sqlml.create_model_sql(target_relation, sqlml.model_options(), compiled_code) }}
  {%- endcall %}
  {%- set trained = sqlml.trained_version(target_relation) -%}
  {% call statement('relation') -%}
    {{ sqlml.evaluation_row_sql(target_relation, trained) }}
  {%- endcall %}
  {% do store_raw_result('main', message=trained.message, code='OK', rows_affected=1) %}
  {{ run_hooks(post_hooks) }}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
