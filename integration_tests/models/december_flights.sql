-- The actuals the December forecast is judged on.
{{ config(materialized='view') }}

select day, origin, flights
from {{ ref('daily_flights') }}
where day >= date '2013-12-01'
