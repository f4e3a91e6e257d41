-- The 25 recent flights the delay model is least sure of (confidence at most 0.6), least sure
-- first, with every input column: the rows to send for labelling.
{{ config(materialized='table') }}

select *
from {{ sqlml.review_queue(ref('delay_model'), ref('flights_recent'), top_k=25, max_confidence=0.6) }}
