-- Explanations on the palmerpenguins table (sqlml run examples/explain.sql --dataset penguins).

CREATE OR REPLACE MODEL penguin_sex
OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['sex'], random_seed = 1) AS
SELECT species, island, bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, sex
FROM penguins WHERE sex IS NOT NULL;

-- Why each prediction: the three columns that moved it most, in log-odds of 'male'.
SELECT predicted_sex, probability, top_feature_attributions, baseline_prediction_value, prediction_value
FROM ML.EXPLAIN_PREDICT(MODEL penguin_sex, (SELECT * FROM penguins LIMIT 5), STRUCT(3 AS top_k_features));

-- Which columns matter overall: mean |attribution| over (a sample of) the training query.
SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL penguin_sex);

-- How the trees use each column.
SELECT * FROM ML.FEATURE_IMPORTANCE(MODEL penguin_sex);
