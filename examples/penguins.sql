-- The BigQuery ML tutorial "Create a linear regression model" on the real penguins data:
-- predict a penguin's weight from its species, island, measurements and sex.
-- Run it:  sqlml run examples/penguins.sql --dataset penguins
-- BigQuery publishes mean_absolute_error ≈ 227 g and r2_score ≈ 0.87 for this model.

CREATE OR REPLACE MODEL penguins_model
OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g']) AS
SELECT species, island, bill_length_mm, bill_depth_mm, flipper_length_mm, sex, body_mass_g
FROM penguins
WHERE body_mass_g IS NOT NULL;

-- 342 rows is under BigQuery's 500-row AUTO_SPLIT threshold: the model is evaluated on its training data.
SELECT * FROM ML.EVALUATE(MODEL penguins_model);

-- What the model learned, per input column (categories one by one).
SELECT * FROM ML.WEIGHTS(MODEL penguins_model);

-- Predict the weight of the Biscoe penguins, beside their measured weight.
SELECT predicted_body_mass_g, body_mass_g, species, sex
FROM ML.PREDICT(MODEL penguins_model, (SELECT * FROM penguins WHERE island = 'Biscoe'))
ORDER BY abs(predicted_body_mass_g - body_mass_g) DESC
LIMIT 5;
