{#- Fails (one row: the latest version, the deployed one, the gate's reason) when the model's latest
    trained version is not the deployed one because the deploy gate refused it (docs/release.md) —
    a retrain that would have pushed a worse model. Deploying it by hand (ALTER MODEL m DEPLOY
    VERSION n) makes the test pass again.
      models:
        - name: delay_model
          data_tests:
            - sqlml.sqlml_is_deployed -#}
{% test sqlml_is_deployed(model) %}
  {{ return(adapter.dispatch('test_sqlml_is_deployed', 'sqlml')(model)) }}
{% endtest %}

{% macro default__test_sqlml_is_deployed(model) -%}
  {{ sqlml.not_supported('sqlml_is_deployed') }}
{%- endmacro %}

{% macro duckdb__test_sqlml_is_deployed(model) -%}
with log as (
  select * from {{ sqlml.registry_table('deployments') }} where model = {{ sqlml.sql_literal(sqlml.model_name(model)) }}
), latest as (
  select version, action, reason from log where action in ('trained_deployed', 'trained_not_deployed')
  order by seq desc limit 1
), live as (
  select version from log where action in ('trained_deployed', 'deploy', 'rollback') order by seq desc limit 1
)
select latest.version as latest_version, live.version as deployed_version, latest.reason
from latest, live
where latest.action = 'trained_not_deployed' and latest.version <> live.version
{%- endmacro %}
