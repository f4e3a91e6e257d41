-- What the dbt models of integration_tests/ run, written out as one sqlml script (see docs/dbt.md).
-- Run it:  sqlml run examples/dbt_penguins.sql --dataset penguins
-- In dbt the names are the relations' full names (dev.main.penguin_weight); here they are plain.

-- models/penguin_weight.sql (sqlml_model): train a new version, then a one-row metrics table.
CREATE OR REPLACE MODEL penguin_weight
OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g']) AS
SELECT species, island, bill_length_mm, bill_depth_mm, flipper_length_mm, sex, body_mass_g
FROM penguins
WHERE body_mass_g IS NOT NULL;

CREATE OR REPLACE TABLE penguin_weight AS
SELECT 'penguin_weight' AS model_name, latest.version AS model_version, metrics.*
FROM ML.EVALUATE(MODEL penguin_weight) AS metrics,
     (SELECT max(version) AS version FROM sqlml.models WHERE name = 'penguin_weight') AS latest;

-- models/penguin_species.sql (sqlml_model), evaluated on a random 30 %.
CREATE OR REPLACE MODEL penguin_species
OPTIONS (model_type = 'logistic_reg', input_label_cols = ['species'],
         data_split_method = 'random', data_split_eval_fraction = 0.3) AS
SELECT species, bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g
FROM penguins
WHERE body_mass_g IS NOT NULL;

CREATE OR REPLACE TABLE penguin_species AS
SELECT 'penguin_species' AS model_name, latest.version AS model_version, metrics.*
FROM ML.EVALUATE(MODEL penguin_species) AS metrics,
     (SELECT max(version) AS version FROM sqlml.models WHERE name = 'penguin_species') AS latest;

-- models/penguin_weight_predictions.sql (sqlml_table): computed once.
CREATE OR REPLACE TABLE penguin_weight_predictions AS
SELECT predicted_body_mass_g, body_mass_g, species, island, sex
FROM ML.PREDICT(MODEL penguin_weight, (SELECT * FROM penguins WHERE body_mass_g IS NOT NULL));

-- models/penguin_species_scored.sql (sqlml_view): scored each time it is read.
CREATE OR REPLACE VIEW penguin_species_scored AS
SELECT * FROM ML.PREDICT(MODEL penguin_species, TABLE penguins);

-- models/species_confusion.sql (a plain dbt table over the view).
CREATE OR REPLACE TABLE species_confusion AS
SELECT species, predicted_species, count(*) AS penguins
FROM penguin_species_scored
WHERE body_mass_g IS NOT NULL
GROUP BY ALL;

-- tests/penguin_weight_is_useful.sql: dbt fails the build if this returns rows.
SELECT * FROM penguin_weight WHERE r2_score < 0.8;

SELECT model_name, model_version, r2_score, mean_absolute_error FROM penguin_weight;
SELECT * FROM species_confusion ORDER BY species, predicted_species;
