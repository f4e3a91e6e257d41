-- A plain dbt view over sqlml.predict: rows are scored each time the view is read.
{{ config(materialized='view') }}

select * from {{ sqlml.predict(ref('delay_model'), "select * from " ~ ref('flights_recent') ~ " where month = 12") }}
