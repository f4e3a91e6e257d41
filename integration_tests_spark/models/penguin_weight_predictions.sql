-- Predicted weights, scored on Spark's executors when dbt builds this table.
{{ config(materialized='sqlml_table') }}

select predicted_body_mass_g, body_mass_g, species, island, sex
from ML.PREDICT(MODEL {{ ref('penguin_weight') }}, (select * from {{ ref('penguins') }} where body_mass_g is not null))
