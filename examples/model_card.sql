-- A model card for a delay model, and a what-if question asked of it.
-- Run it:  sqlml run examples/model_card.sql --dataset flights --db flights.duckdb
-- Then:    sqlml card late_model --db flights.duckdb -o late_model.html \
--              --data "SELECT * FROM late_flights WHERE month > 9" --slice-by carrier --slice-by origin --sensitive-col origin

CREATE OR REPLACE TABLE late_flights AS
SELECT month, dep_delay, sched_dep_time, distance, carrier, origin, dest, arr_delay > 15 AS is_late
FROM flights
WHERE arr_delay IS NOT NULL AND day IN (1, 15);

CREATE OR REPLACE MODEL late_model
OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late']) AS
SELECT * EXCLUDE (month) FROM late_flights WHERE month <= 9;

-- The owner's words, shown on the card; no retraining needed.
ALTER MODEL late_model SET OPTIONS (
  description = 'Will a flight from New York arrive more than 15 minutes late? Scored at departure.',
  intended_use = 'Ranking departed flights for gate and connection planning.',
  limitations = 'Trained on the 1st and 15th of January to September 2013; dep_delay must be known.'
);

-- The card as Markdown, evaluated on October to December, sliced by carrier and airport.
SELECT model_card
FROM ML.MODEL_CARD(MODEL late_model, (SELECT * FROM late_flights WHERE month > 9),
                   STRUCT(['carrier', 'origin'] AS slice_by, 'origin' AS sensitive_col));

-- What if every October flight had left 30 minutes later? Original and counterfactual side by side.
CREATE OR REPLACE TABLE october AS
SELECT row_number() OVER (ORDER BY dep_delay, sched_dep_time, carrier, dest, distance) AS flight_id, *
FROM late_flights WHERE month = 10;

SELECT count(*) AS flights,
       count(*) FILTER (WHERE NOT o.predicted_is_late AND c.predicted_is_late) AS flip_to_late,
       avg(list_filter(c.predicted_is_late_probs, lambda p: p.label)[1].prob
           - list_filter(o.predicted_is_late_probs, lambda p: p.label)[1].prob) AS mean_change_in_p_late
FROM ML.PREDICT(MODEL late_model, TABLE october) AS o
JOIN ML.PREDICT(MODEL late_model, (SELECT * REPLACE (dep_delay + 30 AS dep_delay) FROM october)) AS c
  USING (flight_id);
