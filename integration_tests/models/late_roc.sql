{{ config(materialized='table') }}

select * from {{ sqlml.roc_curve(ref('delay_model'), ref('flights_recent')) }}
