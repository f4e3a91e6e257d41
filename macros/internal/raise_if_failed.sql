{#- sqlml.dbt.job.run leaves a user error's message in a session variable, rather than letting
    dbt-duckdb print it inside a Python traceback; this raises it as a dbt error (a "Database Error", which dbt prints without a macro stack). -#}
{% macro raise_if_failed() %}
  {%- set result = run_query("select getvariable('sqlml_dbt_error')") -%}
  {%- set message = result.columns[0].values()[0] -%}
  {%- if message -%}
    {{ exceptions.raise_database_error("sqlml: " ~ message) }}
  {%- endif -%}
{% endmacro %}
