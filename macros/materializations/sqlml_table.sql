{#- A table from a query that calls ML.* functions, run by sqlml:

      {{ config(materialized='sqlml_table') }}
      select * from ML.PREDICT(MODEL {{ ref('penguin_species') }}, TABLE {{ ref('penguins') }})
-#}
{% materialization sqlml_table, adapter='duckdb', supported_languages=['sql'] %}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set existing_relation = load_cached_relation(this) -%}

  {%- do sqlml.require_plugin() -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {%- if existing_relation is not none and not existing_relation.is_table %}
    {{ adapter.drop_relation(existing_relation) }}
  {%- endif %}

  {% call statement('main', language='python') -%}
    {{ sqlml.python_job("CREATE OR REPLACE TABLE " ~ target_relation ~ " AS\n" ~ compiled_code ~ "\n") }}
  {%- endcall %}
  {{ sqlml.raise_if_failed() }}

  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {% do persist_docs(target_relation, model) %}
  {{ adapter.commit() }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
