{#- A view whose ML.PREDICT is computed each time the view is read, through the model version's
    scoring function. Sessions that read the view need sqlml's functions: in dbt, add the plugin
    `sqlml.dbt.plugin` to the profile; elsewhere, open the database with sqlml.connect().

      {{ config(materialized='sqlml_view') }}
      select * from ML.PREDICT(MODEL {{ ref('penguin_species') }}, TABLE {{ ref('penguins') }})
-#}
{% materialization sqlml_view, adapter='duckdb', supported_languages=['sql'] %}
  {%- set target_relation = this.incorporate(type='view') -%}
  {%- set existing_relation = load_cached_relation(this) -%}

  {%- do sqlml.require_plugin() -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {%- if existing_relation is not none and not existing_relation.is_view %}
    {{ adapter.drop_relation(existing_relation) }}
  {%- endif %}

  {% call statement('main', language='python') -%}
    {{ sqlml.python_job("CREATE OR REPLACE VIEW " ~ target_relation ~ " AS\n" ~ compiled_code ~ "\n", needs_plugin=true) }}
  {%- endcall %}
  {{ sqlml.raise_if_failed() }}

  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {% do persist_docs(target_relation, model) %}
  {{ adapter.commit() }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
