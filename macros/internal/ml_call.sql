{#- The plain DuckDB SQL (a parenthesized query) of ML.<function>(MODEL model_ref, data[, data_b], params),
    asked of the plugin's sqlml_dbt_compile at execution time (sqlml/dbt/macro_sql.py). At parse
    time (execute is false) a placeholder is enough. VALIDATE_DATA_DRIFT takes no model and two data. -#}
{% macro ml_call(function, model_ref, data=none, params={}, data_b=none) -%}
  {%- if not execute -%}
    {{- return("(select null as sqlml_placeholder)") -}}
  {%- endif -%}
  {%- do sqlml.require_plugin() -%}
  {%- if model_ref is none and function != 'VALIDATE_DATA_DRIFT' -%}
    {{ exceptions.raise_compiler_error("sqlml." ~ function | lower ~ " needs a model: ref('<a sqlml_model>') or a registry name") }}
  {%- endif -%}
  {%- set request = {
      'function': function,
      'model': none if model_ref is none else model_ref if model_ref is string else sqlml.model_name(model_ref),
      'input': sqlml.input_sql(data) if data is not none else none,
      'input_b': sqlml.input_sql(data_b) if data_b is not none else none,
      'params': sqlml.struct_literal(params) or none,
  } -%}
  {%- set sql = run_query("select sqlml_dbt_compile(" ~ sqlml.sql_literal(tojson(request)) ~ ")").columns[0].values()[0] -%}
  {%- if sql.startswith("sqlml: ") -%}
    {{ exceptions.raise_compiler_error(sql) }}
  {%- endif -%}
  {{- return(sql) -}}
{%- endmacro %}

{#- A compiler error unless a table-expression macro that needs rows was given them. -#}
{% macro require_rows(relation_or_query, caller_name, what) -%}
  {%- if relation_or_query is none -%}
    {{ exceptions.raise_compiler_error("sqlml." ~ caller_name ~ " needs " ~ what ~ ": a relation or a query") }}
  {%- endif -%}
{%- endmacro %}
