-- The flights of the 20th of October and December: the rows the delay model has not seen.
{{ config(materialized='view') }}

select month, sched_dep_time, dep_delay, distance, carrier, origin, arr_delay > 15 as is_late,
       (hash(sched_dep_time, distance, carrier) % 1000)::double as noise  -- for delay_model_noise
from {{ ref('flights') }}
where month >= 10
