{{ config(materialized='table') }}

select * from {{ sqlml.forecast(ref('flights_forecast'), horizon=31, confidence_level=0.9) }}
