-- The BigQuery ML linear regression tutorial: a penguin's weight from its species, island,
-- measurements and sex. The relation dbt builds is one row of evaluation metrics.
{{ config(
    materialized='sqlml_model',
    sqlml={'model_type': 'linear_reg', 'input_label_cols': ['body_mass_g']},
) }}

select species, island, bill_length_mm, bill_depth_mm, flipper_length_mm, sex, body_mass_g
from {{ ref('penguins') }}
where body_mass_g is not null
