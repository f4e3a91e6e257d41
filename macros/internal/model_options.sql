{#- A sqlml_model's OPTIONS: config(sqlml={...}), or meta: {sqlml: {...}} in YAML or config(),
    or the older name ml_config. -#}
{% macro model_options() -%}
  {%- set meta = config.get('meta') or {} -%}
  {%- set options = config.get('sqlml') or meta.get('sqlml') or config.get('ml_config') -%}
  {%- if options is not mapping or not options -%}
    {{ exceptions.raise_compiler_error(
        "A sqlml_model needs its model's OPTIONS as a dict in config(sqlml={...}) (or meta: {sqlml: {...}}), e.g. "
        ~ "config(materialized='sqlml_model', sqlml={'model_type': 'linear_reg', 'input_label_cols': ['y']})") }}
  {%- endif -%}
  {{- return(options) -}}
{%- endmacro %}
