-- The audit table: one row per training run of a sqlml_model, with its options and metrics.
{% do sqlml.require_plugin() %}  {#- the plugin creates the table this reads -#}
select * from sqlml.training_runs
