{#- The default__ implementation of every sqlml macro: sqlml runs on dbt-duckdb only. -#}
{% macro not_supported(name) -%}
  {{ exceptions.raise_compiler_error("sqlml." ~ name ~ " runs on dbt-duckdb only; this target's adapter is " ~ adapter.type()) }}
{%- endmacro %}
