-- Every stored model version with its metrics: the registry (sqlml.models) without the model bytes.
{% do sqlml.require_plugin() %}  {#- the plugin creates the table this reads -#}
select name as model_name, version as model_version, model_type, label, label_type, training_rows, eval_rows,
       metrics, options, input_schema, created_at, fingerprint
from sqlml.models
