-- Check the data before training: statistics and findings per column.
-- arr_delay is left in on purpose: is_late is computed from it, so it leaks the label.
CREATE OR REPLACE TABLE late_flights AS
SELECT row_number() OVER () AS flight_id, month, day, dep_delay, distance, hour, carrier, origin, dest,
       arr_delay, arr_delay > 15 AS is_late
FROM flights WHERE arr_delay IS NOT NULL AND day IN (1, 15);

SELECT name, num_nulls, unique, mean, quantiles, top_values, findings
FROM ML.DESCRIBE_DATA((SELECT * FROM late_flights), STRUCT(4 AS num_quantiles, 3 AS top_k, 'is_late' AS label_col));

-- CREATE MODEL runs the same checks and warns ("Data check: ..."); here it trains on a stratified
-- sample of 5,000 training rows.
CREATE OR REPLACE MODEL late_sampled
OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late'], max_training_rows = 5000, random_seed = 1)
AS SELECT * EXCLUDE (flight_id, arr_delay) FROM late_flights;

SELECT training_rows, eval_rows FROM sqlml.models WHERE name = 'late_sampled';
