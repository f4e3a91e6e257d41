-- Predicted species, computed each time the view is read.
{{ config(materialized='sqlml_view') }}

select * from ML.PREDICT(MODEL {{ ref('penguin_species') }}, TABLE {{ ref('penguins') }})
