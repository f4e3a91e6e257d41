-- Hyperparameter tuning and model_type = 'auto' on scikit-learn's breast cancer data
-- (569 tumours, 30 measurements, target 1 = benign).
-- Run it:  sqlml run examples/tuning_breast_cancer.sql --dataset breast_cancer

-- 1. Tune the L2 penalty of a logistic regression: 12 trials chosen by optuna's TPE sampler, each
--    scored on a validation part of the training split (the evaluation split is kept for ML.EVALUATE).
CREATE OR REPLACE MODEL cancer_tuned
OPTIONS (model_type = 'logistic_reg', input_label_cols = ['target'], random_seed = 1,
         num_trials = 12, hparam_tuning_objectives = ['log_loss'],
         l2_reg = HPARAM_RANGE(0, 10)) AS
SELECT * FROM breast_cancer;

-- Every trial: what it tried, how it scored on the validation rows, which one was kept.
SELECT trial_id, hyperparameters.l2_reg AS l2_reg, hparam_tuning_evaluation_metrics.log_loss AS log_loss,
       training_loss, status, is_optimal
FROM ML.TRIAL_INFO(MODEL cancer_tuned)
ORDER BY trial_id;

-- ML.* functions use the optimal trial; STRUCT(n AS trial_id) picks another one.
SELECT roc_auc, log_loss, baseline_log_loss, beats_baseline FROM ML.EVALUATE(MODEL cancer_tuned);
SELECT roc_auc, log_loss FROM ML.EVALUATE(MODEL cancer_tuned, STRUCT(2 AS trial_id));

-- 2. A grid over a boosted tree's depth and learning rate (4 trials: the whole grid).
CREATE OR REPLACE MODEL cancer_grid
OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['target'], random_seed = 1,
         max_iterations = 10, num_trials = 4, hparam_tuning_algorithm = 'GRID_SEARCH',
         max_tree_depth = HPARAM_CANDIDATES([2, 4]), learn_rate = HPARAM_CANDIDATES([0.1, 0.3])) AS
SELECT * FROM breast_cancer;

SELECT trial_id, hyperparameters.max_tree_depth AS depth, hyperparameters.learn_rate AS learn_rate,
       hparam_tuning_evaluation_metrics.roc_auc AS roc_auc, is_optimal
FROM ML.TRIAL_INFO(MODEL cancer_grid)
ORDER BY trial_id;

-- 3. Let sqlml try every classifier type (the label is a 0/1 integer, so this is classification)
--    and keep the best on the validation log loss; the trivial baseline is ranked among them.
CREATE OR REPLACE MODEL cancer_auto
OPTIONS (model_type = 'auto', input_label_cols = ['target'], random_seed = 1,
         hparam_tuning_objectives = ['log_loss'], max_trials = 4, time_budget_seconds = 120) AS
SELECT * FROM breast_cancer;

SELECT rank, model_type, objective, round(objective_value, 4) AS log_loss, round(training_seconds, 2) AS seconds,
       is_optimal
FROM ML.LEADERBOARD(MODEL cancer_auto);

SELECT predicted_target, target FROM ML.PREDICT(MODEL cancer_auto, (SELECT * FROM breast_cancer LIMIT 5));

-- Trials are stored beside the versions, in sqlml.trials (trial 0 is the baseline).
SELECT name, version, trial_id, model_type, status, is_optimal FROM sqlml.trials ORDER BY name, trial_id;
