{#- A view whose ML.PREDICT is computed each time the view is read, through the model version's
    scoring function. Sessions that read the view need sqlml's functions: in dbt, add the plugin
    `sqlml.dbt.plugin` to the profile; elsewhere, open the database with sqlml.connect().

      {{ config(materialized='sqlml_view') }}
      select * from ML.PREDICT(MODEL {{ ref('penguin_species') }}, TABLE {{ ref('penguins') }})
-#}
{% materialization sqlml_view, adapter='duckdb', supported_languages=['sql'] %}
  {%- set target_relation = this.incorporate(type='view') -%}
  {{ sqlml.before_job(target_relation) }}
  {% call statement('main', language='python') -%}
    {{ sqlml.python_job("CREATE OR REPLACE VIEW " ~ target_relation ~ " AS\n" ~ compiled_code ~ "\n", needs_plugin=true) }}
  {%- endcall %}
  {{ return(sqlml.after_job(target_relation)) }}
{% endmaterialization %}
