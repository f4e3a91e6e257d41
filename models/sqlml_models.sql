-- One row per model: its latest version, how many versions it has and the latest metrics.
{% do sqlml.require_plugin() %}  {#- the plugin creates the table this reads -#}
select name as model_name, max(version) as latest_version, count(*) as versions,
       arg_max(model_type, version) as model_type, arg_max(label, version) as label,
       arg_max(metrics, version) as latest_metrics, min(created_at) as first_trained_at, max(created_at) as last_trained_at
from sqlml.models
group by name
