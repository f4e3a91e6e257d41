{#- Fails the first sqlml macro of a run whose profile lacks the plugin, saying what to add.
    The plugin defines sqlml_dbt_compile on dbt's connection; its absence means no plugin. -#}
{% macro require_plugin() -%}
  {%- if execute -%}
    {%- set found = run_query("select count(*) from duckdb_functions() where function_name = 'sqlml_dbt_compile'") -%}
    {%- if found.columns[0].values()[0] == 0 -%}
      {{ exceptions.raise_compiler_error(
          "sqlml needs its dbt-duckdb plugin, which this profile does not load. Add it to the target's "
          ~ "output in profiles.yml:  plugins: [{module: sqlml.dbt.plugin, alias: sqlml}]  "
          ~ "(profiles.yml.example in the sqlml package shows a whole profile)") }}
    {%- endif -%}
  {%- endif -%}
{%- endmacro %}
