-- A daily retrain the deploy gate guards (docs/dbt.md, "A daily retrain that never pushes a worse
-- model"): deploy = 'if_not_worse' (the default, written out here) deploys a new version only when it
-- is not worse than the deployed one on rows neither was trained on. With
-- --vars '{release_drop_delay: true}' the retrain leaves out dep_delay: a worse model, which the gate
-- stores but does not deploy, and the test sqlml_is_deployed fails the build.
{{ config(
    materialized='sqlml_model',
    sqlml={'model_type': 'logistic_reg', 'input_label_cols': ['is_late'], 'deploy': 'if_not_worse',
           'deploy_tolerance': 0.0},
) }}

select {% if not var('release_drop_delay', false) %}dep_delay, {% endif %}sched_dep_time, distance, carrier, origin, is_late
from {{ ref('flights_train') }}
