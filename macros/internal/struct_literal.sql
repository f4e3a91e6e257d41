{#- A dict of ML.* parameters as the STRUCT(value AS name, ...) sqlml takes; none values are left out. -#}
{% macro struct_literal(params) -%}
  {%- set fields = [] -%}
  {%- for key, value in params.items() if value is not none -%}
    {%- do fields.append(sqlml.sql_literal(value) ~ " AS " ~ key) -%}
  {%- endfor -%}
  {{- "STRUCT(" ~ fields | join(", ") ~ ")" if fields else "" -}}
{%- endmacro %}
