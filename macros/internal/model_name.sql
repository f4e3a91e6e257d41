{#- The registry name sqlml gives the model `MODEL {{ relation }}` names: its dotted parts, with
    unquoted parts lower-cased as DuckDB does, and a part that is not a plain lower-case name kept
    double-quoted (sqlml.sql.plan.model_name). -#}
{% macro model_name(relation) -%}
  {%- set parts = [] -%}
  {%- for part, value in [('database', relation.database), ('schema', relation.schema), ('identifier', relation.identifier)] -%}
    {%- if value and relation.include_policy[part] -%}
      {%- set text = value if relation.quote_policy[part] else value | lower -%}
      {%- do parts.append(text if modules.re.fullmatch('[a-z_][a-z0-9_]*', text) else '"' ~ text | replace('"', '""') ~ '"') -%}
    {%- endif -%}
  {%- endfor -%}
  {{- parts | join('.') -}}
{%- endmacro %}
