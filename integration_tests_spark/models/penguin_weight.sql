-- integration_tests/models/penguin_weight.sql, on Spark: the BigQuery ML linear regression tutorial.
-- The relation dbt builds is one row of evaluation metrics.
{{ config(
    materialized='sqlml_model',
    sqlml={'model_type': 'linear_reg', 'input_label_cols': ['body_mass_g']},
) }}

select species, island, bill_length_mm, bill_depth_mm, flipper_length_mm, sex, body_mass_g
from {{ ref('penguins') }}
where body_mass_g is not null
