-- Feature engineering with TRANSFORM: fitted once, replayed by every ML.* call.
CREATE OR REPLACE MODEL penguin_weight_tf
TRANSFORM (
    ML.STANDARD_SCALER(bill_length_mm) OVER () AS bill,
    ML.MIN_MAX_SCALER(flipper_length_mm) OVER () AS flipper,
    ML.QUANTILE_BUCKETIZE(bill_depth_mm, 4) OVER () AS depth_bin,
    ML.ONE_HOT_ENCODER(island) OVER () AS island,
    ML.IMPUTER(sex, 'most_frequent') OVER () AS sex,
    ML.FEATURE_CROSS(STRUCT(species, island)) AS cross,
    year >= 2008 AS recent,
    body_mass_g
)
OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g'])
AS SELECT * FROM penguins WHERE body_mass_g IS NOT NULL;

-- The features the model sees (compiled SQL is in sqlml.models.input_schema).
SELECT * FROM ML.TRANSFORM(MODEL penguin_weight_tf, TABLE penguins) LIMIT 5;

SELECT * FROM ML.EVALUATE(MODEL penguin_weight_tf, (SELECT * FROM penguins WHERE body_mass_g IS NOT NULL));

SELECT predicted_body_mass_g, species, island FROM ML.PREDICT(MODEL penguin_weight_tf, TABLE penguins) LIMIT 5;
