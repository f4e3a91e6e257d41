{#- The query a table-expression macro scores: a relation (ref(), source(), this) is read whole;
    a string is taken as a query. -#}
{% macro input_sql(relation_or_query) -%}
  {%- if relation_or_query is string -%}
    {{- relation_or_query -}}
  {%- elif relation_or_query.identifier is defined -%}
    select * from {{ relation_or_query }}
  {%- else -%}
    {{ exceptions.raise_compiler_error("sqlml expects a relation (ref('...')) or a query string; got " ~ relation_or_query) }}
  {%- endif -%}
{%- endmacro %}
