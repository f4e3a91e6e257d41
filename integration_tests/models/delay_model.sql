-- Will a flight arrive more than 15 minutes late? A logistic regression; late flights are a
-- minority, so the classes are weighted by their inverse frequency.
{{ config(
    materialized='sqlml_model',
    sqlml={'model_type': 'logistic_reg', 'input_label_cols': ['is_late'], 'auto_class_weights': true},
) }}

select sched_dep_time, dep_delay, distance, carrier, origin, is_late
from {{ ref('flights_train') }}
