-- The same predictions with a decision threshold of 0.8 instead of the model's 0.5.
{{ config(materialized='table') }}

select predicted_is_late, predicted_is_late_probs, month, carrier, origin, dep_delay, is_late
from {{ sqlml.predict(ref('delay_model'), ref('flights_recent'), threshold=0.8) }}
