-- Classification on real data: will a New York flight of 2013 arrive more than 15 minutes late?
-- Run it:  sqlml run examples/flights_delays.sql --dataset flights

CREATE OR REPLACE TABLE flights_labelled AS
SELECT month, day, sched_dep_time, dep_delay, distance, carrier, origin, dest,
       arr_delay > 15 AS is_late
FROM flights
WHERE arr_delay IS NOT NULL;

-- Train on January to October, keep November and December to test on.
CREATE OR REPLACE MODEL delays
OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['is_late'], random_seed = 42) AS
SELECT * EXCLUDE (month, day) FROM flights_labelled WHERE month <= 10;

SELECT * FROM ML.EVALUATE(MODEL delays, (SELECT * FROM flights_labelled WHERE month > 10));

SELECT * FROM ML.CONFUSION_MATRIX(MODEL delays, (SELECT * FROM flights_labelled WHERE month > 10));

-- ML.PREDICT composes with ordinary SQL: late-arrival risk by carrier for December.
SELECT carrier, count(*) AS flights, round(avg(p.prob), 3) AS mean_late_probability
FROM ML.PREDICT(MODEL delays, (SELECT * FROM flights_labelled WHERE month = 12)) AS scored,
     UNNEST(scored.predicted_is_late_probs) AS u(p)
WHERE p.label
GROUP BY carrier
ORDER BY mean_late_probability DESC;
