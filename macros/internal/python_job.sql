{#- The Python module dbt-duckdb runs in-process, on the thread's cursor, for a sqlml
    materialization: it hands `statements` to sqlml.dbt.job.run (`needs_plugin` when what they
    create calls scoring functions later), to be read in the model's config(dialect=...): 'duckdb'
    (the default) or 'bigquery', a model written for BigQuery ML. The statements are JSON inside a
    Python string literal: dbt's tojson escapes non-ASCII as \u escapes, which a JSON decoder joins
    back (a Python literal alone would split characters outside the BMP into surrogates). -#}
{% macro python_job(statements, needs_plugin=false) -%}
import sqlml.dbt.job


class dbtObj:
    def __init__(self, load_df_function):
        pass


def model(dbt, session):
    sqlml.dbt.job.run(session, {{ tojson(tojson(statements)) }}, needs_plugin={{ 'True' if needs_plugin else 'False' }},
                      dialect={{ tojson(config.get('dialect') or 'duckdb') }})


def materialize(df, con):
    pass
{%- endmacro %}
