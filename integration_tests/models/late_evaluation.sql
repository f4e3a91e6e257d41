-- How the delay model does on flights it has not seen: overall, with the baseline's figures and
-- the lift, then per carrier and per origin airport.
{{ config(materialized='table') }}

select *
from {{ sqlml.evaluate(ref('delay_model'), ref('flights_recent'), slice_by=['carrier', 'origin']) }}
