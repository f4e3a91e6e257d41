{{ config(materialized='table') }}

select * from {{ sqlml.confusion_matrix(ref('delay_model'), ref('flights_recent')) }}
