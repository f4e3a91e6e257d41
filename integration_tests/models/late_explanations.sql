-- Why the model thinks the first December flights will be late: each row's top two features.
{{ config(materialized='table') }}

select *
from {{ sqlml.explain_predict(ref('delay_model'),
                              "select * from " ~ ref('flights_recent') ~ " where month = 12 order by sched_dep_time, carrier limit 20",
                              top_k_features=2) }}
