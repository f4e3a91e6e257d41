-- A penguin's species from its measurements: a logistic regression evaluated on a random 30 %.
{{ config(
    materialized='sqlml_model',
    sqlml={
        'model_type': 'logistic_reg',
        'input_label_cols': ['species'],
        'data_split_method': 'random',
        'data_split_eval_fraction': 0.3,
    },
) }}

select species, bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g
from {{ ref('penguins') }}
where body_mass_g is not null
