-- Predictions into a plain dbt table: the SQL sqlml.predict renders calls the model version's
-- scoring function, so DuckDB scores the rows while it builds the table.
{{ config(materialized='table') }}

select predicted_is_late, predicted_is_late_probs, month, carrier, origin, dep_delay, is_late
from {{ sqlml.predict(ref('delay_model'), ref('flights_recent')) }}
