{#- The registry name sqlml gives the model `MODEL {{ relation }}` names: its dotted parts, with
    unquoted parts lower-cased as DuckDB does (sqlml.planner.model_name). -#}
{% macro model_name(relation) -%}
  {%- set parts = [] -%}
  {%- for part, value in [('database', relation.database), ('schema', relation.schema), ('identifier', relation.identifier)] -%}
    {%- if value and relation.include_policy[part] -%}
      {%- do parts.append(value if relation.quote_policy[part] else value | lower) -%}
    {%- endif -%}
  {%- endfor -%}
  {{- parts | join('.') -}}
{%- endmacro %}
