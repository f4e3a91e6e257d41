{#- A Jinja value (string, number, boolean, none, list, dict) as a sqlml OPTIONS or STRUCT value. -#}
{% macro sql_literal(value) -%}
  {%- if value is none -%} NULL
  {%- elif value is sameas true -%} TRUE
  {%- elif value is sameas false -%} FALSE
  {%- elif value is number -%} {{ value }}
  {%- elif value is string -%} '{{ value | replace("'", "''") }}'
  {%- elif value is mapping -%}
    STRUCT({%- for k, v in value.items() -%}{{ sqlml.sql_literal(v) }} AS {{ adapter.quote(k) }}{{ ", " if not loop.last }}{%- endfor -%})
  {%- elif value is iterable -%}
    [{%- for v in value -%}{{ sqlml.sql_literal(v) }}{{ ", " if not loop.last }}{%- endfor -%}]
  {%- else -%}
    {{ exceptions.raise_compiler_error("sqlml cannot write " ~ value ~ " as a SQL value") }}
  {%- endif -%}
{%- endmacro %}
