-- Imbalanced classes on real data: which New York flights of 2013 arrive more than an hour late?
-- Only about 7 % do, so a model can score 93 % accuracy by never predicting "late".
-- Run it:  sqlml run examples/imbalanced_flights.sql --dataset flights

CREATE OR REPLACE TABLE rare_flights AS
SELECT month, dep_delay, sched_dep_time, distance, carrier, origin, arr_delay > 60 AS very_late
FROM flights
WHERE arr_delay IS NOT NULL AND day IN (1, 15);

-- 1. Unweighted: CREATE MODEL warns that the label is imbalanced (see ML.TRAINING_INFO's notes).
CREATE OR REPLACE MODEL late_plain
OPTIONS (model_type = 'logistic_reg', input_label_cols = ['very_late'], random_seed = 1) AS
SELECT * EXCLUDE (month) FROM rare_flights WHERE month <= 9;

-- 2. Inverse-frequency class weights (BigQuery's auto_class_weights).
CREATE OR REPLACE MODEL late_weighted
OPTIONS (model_type = 'logistic_reg', input_label_cols = ['very_late'], random_seed = 1,
         auto_class_weights = TRUE) AS
SELECT * EXCLUDE (month) FROM rare_flights WHERE month <= 9;

-- 3. SMOTE on the training split only, to one late flight per two on-time ones.
CREATE OR REPLACE MODEL late_smote
OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['very_late'], random_seed = 1,
         sampling = 'smote', sampling_ratio = 0.5) AS
SELECT * EXCLUDE (month) FROM rare_flights WHERE month <= 9;

-- Compare on the held-out months: recall of the rare class, and the area under the PR curve.
SELECT 'plain' AS model, recall, precision, pr_auc, accuracy
FROM ML.EVALUATE(MODEL late_plain, (SELECT * FROM rare_flights WHERE month > 9))
UNION ALL
SELECT 'auto_class_weights', recall, precision, pr_auc, accuracy
FROM ML.EVALUATE(MODEL late_weighted, (SELECT * FROM rare_flights WHERE month > 9))
UNION ALL
SELECT 'smote', recall, precision, pr_auc, accuracy
FROM ML.EVALUATE(MODEL late_smote, (SELECT * FROM rare_flights WHERE month > 9))
ORDER BY recall DESC;

-- Choose a decision threshold: the one with the best F1 on the held-out months...
SELECT threshold, precision, recall, f1_score, false_positive_rate
FROM ML.THRESHOLD_METRICS(MODEL late_plain, (SELECT * FROM rare_flights WHERE month > 9),
                          GENERATE_ARRAY(0.05, 0.95, 0.05))
ORDER BY f1_score DESC
LIMIT 3;

-- ...store it with the model: PREDICT, EVALUATE and CONFUSION_MATRIX use it from now on.
ALTER MODEL late_plain SET OPTIONS (threshold = 0.3);

SELECT * FROM ML.CONFUSION_MATRIX(MODEL late_plain, (SELECT * FROM rare_flights WHERE month > 9));

-- The precision-recall curve is one query.
SELECT threshold, recall, precision
FROM ML.ROC_CURVE(MODEL late_plain, (SELECT * FROM rare_flights WHERE month > 9))
ORDER BY threshold;
