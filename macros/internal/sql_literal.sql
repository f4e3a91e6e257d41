{#- A Jinja value as a sqlml OPTIONS value: strings, numbers, booleans, none, lists, and dicts,
    which become BigQuery's array of STRUCT(key, value) (the form of class_weights). -#}
{% macro sql_literal(value) -%}
  {%- if value is none -%} NULL
  {%- elif value is sameas true -%} TRUE
  {%- elif value is sameas false -%} FALSE
  {%- elif value is number -%} {{ value }}
  {%- elif value is string -%} '{{ value | replace("'", "''") }}'
  {%- elif value is mapping -%}
    [{%- for k, v in value.items() -%}STRUCT({{ sqlml.sql_literal(k) }}, {{ sqlml.sql_literal(v) }}){{ ", " if not loop.last }}{%- endfor -%}]
  {%- elif value is iterable -%}
    [{%- for v in value -%}{{ sqlml.sql_literal(v) }}{{ ", " if not loop.last }}{%- endfor -%}]
  {%- else -%}
    {{ exceptions.raise_compiler_error("sqlml cannot write " ~ value ~ " as a SQL value") }}
  {%- endif -%}
{%- endmacro %}
