{{ config(materialized='table') }}

select * from {{ sqlml.detect_anomalies(ref('flights_forecast'), anomaly_prob_threshold=0.99) }}
