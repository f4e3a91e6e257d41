-- Deliberately useless: is_late from a column of noise. Its sqlml_beats_baseline test fails, so it
-- is left out of the default `dbt build` (selectors.yml) and built alone by the pytest.
{{ config(
    materialized='sqlml_model',
    tags=['deliberately_failing'],
    meta={'sqlml': {'model_type': 'logistic_reg', 'input_label_cols': ['is_late']}},
) }}

select noise, is_late
from {{ ref('flights_train') }}
