-- Does the model beat a trivial baseline, which groups does it serve worst, and is it fair to each airport?
-- Run it:  sqlml run examples/evaluate_baselines_slices.sql --dataset flights

CREATE OR REPLACE TABLE late_flights AS
SELECT month, dep_delay, sched_dep_time, distance, carrier, origin, dest, arr_delay > 15 AS is_late
FROM flights
WHERE arr_delay IS NOT NULL AND day IN (1, 15);

-- Train on January to September, keep October to December for evaluation.
CREATE OR REPLACE MODEL late_model
OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late']) AS
SELECT * EXCLUDE (month) FROM late_flights WHERE month <= 9;

-- The model's metrics, the majority-class / class-prior baseline's, and the lift over it.
SELECT roc_auc, baseline_roc_auc, lift_roc_auc, accuracy, baseline_accuracy, primary_metric, beats_baseline
FROM ML.EVALUATE(MODEL late_model, (SELECT * FROM late_flights WHERE month > 9));

-- The same, judged on f1_score, for the evaluation split kept at training (no data argument).
SELECT f1_score, baseline_f1_score, lift_f1_score, beats_baseline
FROM ML.EVALUATE(MODEL late_model, STRUCT('f1_score' AS primary_metric));

-- What the baseline itself predicts.
SELECT predicted_is_late, predicted_is_late_probs, carrier, origin
FROM ML.BASELINE(MODEL late_model, (SELECT * FROM late_flights WHERE month > 9))
LIMIT 3;

-- Which carriers and airports does it serve worst? One row per slice, worst first.
SELECT slice_column, slice_value, row_count, roc_auc, baseline_roc_auc, unreliable, worse_than_overall
FROM ML.EVALUATE(MODEL late_model, (SELECT * FROM late_flights WHERE month > 9),
                 STRUCT(['carrier', 'origin'] AS slice_by, TRUE AS slice_combinations, 100 AS min_slice_size))
ORDER BY slice_column NULLS FIRST, roc_auc
LIMIT 15;

-- Is "predicted late" handed out alike at the three New York airports?
SELECT group_value AS origin, row_count, selection_rate, true_positive_rate, false_positive_rate, precision,
       demographic_parity_difference, equalized_odds_difference
FROM ML.FAIRNESS(MODEL late_model, (SELECT * FROM late_flights WHERE month > 9), STRUCT('origin' AS sensitive_col));
