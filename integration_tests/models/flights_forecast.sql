-- How many flights will leave each New York airport every day of December 2013? An ARIMA_PLUS model
-- per origin (weekly seasonality, US holidays), trained on January to November.
{{ config(
    materialized='sqlml_model',
    sqlml={'model_type': 'arima_plus', 'time_series_timestamp_col': 'day', 'time_series_data_col': 'flights',
           'time_series_id_col': 'origin', 'holiday_region': 'US', 'horizon': 31},
) }}

select day, origin, flights
from {{ ref('daily_flights') }}
where day < date '2013-12-01'
