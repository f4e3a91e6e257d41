{#- A table of sqlml's registry (models, deployments, training_runs …) in the target database, named
    with its catalog: in a database file named sqlml.duckdb, `sqlml.models` is ambiguous
    (sqlml.registry.schema.Tables). -#}
{% macro registry_table(name) -%}
  {{- return(adapter.dispatch('registry_table', 'sqlml')(name)) -}}
{%- endmacro %}

{% macro default__registry_table(name) -%}
  {{- adapter.quote(target.database) ~ '.sqlml.' ~ name -}}
{%- endmacro %}

{#- On Spark the registry is sqlml's own (its folder), not a catalog of Spark's. -#}
{% macro spark__registry_table(name) -%}
  {{- 'sqlml.' ~ name -}}
{%- endmacro %}
