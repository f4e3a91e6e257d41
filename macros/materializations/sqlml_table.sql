{#- A table from a query that calls ML.* functions, run by sqlml:

      {{ config(materialized='sqlml_table') }}
      select * from ML.PREDICT(MODEL {{ ref('penguin_species') }}, TABLE {{ ref('penguins') }})
-#}
{% materialization sqlml_table, adapter='duckdb', supported_languages=['sql'] %}
  {%- set target_relation = this.incorporate(type='table') -%}
  {{ sqlml.before_job(target_relation) }}
  {% call statement('main', language='python') -%}
    {{ sqlml.python_job("CREATE OR REPLACE TABLE " ~ target_relation ~ " AS\n" ~ compiled_code ~ "\n") }}
  {%- endcall %}
  {{ return(sqlml.after_job(target_relation)) }}
{% endmaterialization %}


{#- On Spark (dbt-spark, method: session, run inside sqlml.dbt.spark.attached). -#}
{% materialization sqlml_table, adapter='spark', supported_languages=['sql'] %}
  {%- set target_relation = this.incorporate(type='table') -%}
  {{ run_hooks(pre_hooks) }}
  {% call statement('main') -%}
    DROP TABLE IF EXISTS {{ target_relation }};
    CREATE TABLE {{ target_relation }} AS
    {{ compiled_code }}
  {%- endcall %}
  {{ run_hooks(post_hooks) }}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
