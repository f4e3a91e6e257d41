{#- A metric named in a generic test: one ML.EVALUATE metric column, checked at compile time. -#}
{% macro metric_name(metric, test) -%}
  {%- set known = ['precision', 'recall', 'accuracy', 'f1_score', 'log_loss', 'roc_auc', 'pr_auc',
                   'mean_absolute_error', 'mean_squared_error', 'mean_squared_log_error',
                   'median_absolute_error', 'r2_score', 'explained_variance'] -%}
  {%- if metric not in known -%}
    {{ exceptions.raise_compiler_error(test ~ ": metric must be one of " ~ known | join(", ") ~ "; got " ~ metric) }}
  {%- endif -%}
  {{- metric -}}
{%- endmacro %}
