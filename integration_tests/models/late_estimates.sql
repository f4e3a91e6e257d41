-- Scheduled monitoring before the labels arrive: the delay model's accuracy, precision, recall, F1
-- and ROC AUC estimated from its probabilities alone (CBPE), per month of the recent flights.
{{ config(materialized='table') }}

select *
from {{ sqlml.estimate_performance(ref('delay_model'),
        "select *, make_date(2013, month, 20) as flight_date from " ~ ref('flights_recent'),
        time_column='flight_date', time_window='month') }}
