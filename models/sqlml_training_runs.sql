-- The audit table: one row per training run of a sqlml_model, with its options and metrics.
select * from sqlml.training_runs
