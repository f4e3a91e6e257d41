{#- What every sqlml materialization does around its Python job. The job itself must be submitted
    by the materialization (dbt refuses submit_python_job from a nested macro):

      {{ sqlml.before_job(target_relation) }}
      {% call statement('main', language='python') -%} {{ sqlml.python_job(...) }} {%- endcall %}
      {{ return(sqlml.after_job(target_relation)) }}

    No transaction is open around the job: sqlml stores each model version in a short transaction
    of its own. -#}
{% macro before_job(target_relation) %}
  {%- set existing_relation = load_cached_relation(target_relation) -%}
  {%- do sqlml.require_plugin() -%}
  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {%- if existing_relation is not none and existing_relation.type != target_relation.type %}
    {{ adapter.drop_relation(existing_relation) }}
  {%- endif %}
{% endmacro %}


{% macro after_job(target_relation) %}
  {{ sqlml.raise_if_failed() }}
  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {% do persist_docs(target_relation, model) %}
  {{ adapter.commit() }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}
  {{ return({'relations': [target_relation]}) }}
{% endmacro %}
