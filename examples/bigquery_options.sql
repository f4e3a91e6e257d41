-- BigQuery ML's own CREATE MODEL examples, options and all, on the penguins, in BigQuery's dialect.
-- Run it:  sqlml run examples/bigquery_options.sql --dataset penguins --dialect bigquery
-- Every option is honoured (through XGBoost for boosted trees, scikit-learn otherwise) or is a no-op where
-- it changes nothing (docs/bigquery.md).

-- The boosted tree page's example: GBTREE, one tree per iteration, the histogram method, no early stop.
CREATE OR REPLACE MODEL `bqml_tutorial.species_trees`
OPTIONS (MODEL_TYPE = 'BOOSTED_TREE_CLASSIFIER', BOOSTER_TYPE = 'GBTREE', NUM_PARALLEL_TREE = 1,
         MAX_ITERATIONS = 50, TREE_METHOD = 'HIST', EARLY_STOP = FALSE, SUBSAMPLE = 1.0,
         COLSAMPLE_BYNODE = 0.8, INPUT_LABEL_COLS = ['species'], DEPLOY = 'always',)
AS SELECT species, island, bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, sex
FROM `penguins`;

-- 344 rows is under the 500 rows AUTO_SPLIT holds none out for: these are figures on the training rows.
SELECT accuracy, roc_auc, log_loss FROM ML.EVALUATE(MODEL `bqml_tutorial.species_trees`);

-- Its DART booster, with row subsampling and column sampling per tree and per level, as XGBoost has them.
CREATE OR REPLACE MODEL `bqml_tutorial.species_dart`
OPTIONS (MODEL_TYPE = 'BOOSTED_TREE_CLASSIFIER', BOOSTER_TYPE = 'DART', DART_NORMALIZE_TYPE = 'FOREST',
         DROPOUT = 0.1, SUBSAMPLE = 0.85, COLSAMPLE_BYTREE = 0.8, COLSAMPLE_BYLEVEL = 0.9, MIN_SPLIT_LOSS = 0.1,
         L1_REG = 0.1, MAX_ITERATIONS = 30, EARLY_STOP = FALSE, INPUT_LABEL_COLS = ['species'], RANDOM_SEED = 1)
AS SELECT species, island, bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, sex
FROM `penguins`;

SELECT accuracy, roc_auc FROM ML.EVALUATE(MODEL `bqml_tutorial.species_dart`);

-- The DNN page's options, with the optimizer and activation scikit-learn has (ADAM/SGD; RELU/SIGMOID/TANH).
CREATE OR REPLACE MODEL `bqml_tutorial.species_dnn`
OPTIONS (MODEL_TYPE = 'DNN_CLASSIFIER', ACTIVATION_FN = 'TANH', BATCH_SIZE = 16, DROPOUT = 0,
         HIDDEN_UNITS = [32, 16], LEARN_RATE = 0.001, MAX_ITERATIONS = 200, OPTIMIZER = 'ADAM',
         INPUT_LABEL_COLS = ['species'], RANDOM_SEED = 1, ENABLE_GLOBAL_EXPLAIN = TRUE)
AS SELECT species, island, bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, sex
FROM `penguins` WHERE body_mass_g IS NOT NULL;

SELECT accuracy, roc_auc FROM ML.EVALUATE(MODEL `bqml_tutorial.species_dnn`);

-- The k-means page's CUSTOM initialization: the rows marked TRUE are the initial centroids, one per cluster.
CREATE OR REPLACE MODEL `bqml_tutorial.penguin_clusters`
OPTIONS (MODEL_TYPE = 'KMEANS', NUM_CLUSTERS = 3, KMEANS_INIT_METHOD = 'CUSTOM', KMEANS_INIT_COL = 'init_col')
AS SELECT bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g,
          ROW_NUMBER() OVER (PARTITION BY species ORDER BY body_mass_g) = 1 AS init_col
FROM `penguins` WHERE body_mass_g IS NOT NULL;

SELECT centroid_id, COUNT(*) AS penguins
FROM ML.PREDICT(MODEL `bqml_tutorial.penguin_clusters`, (SELECT * FROM `penguins` WHERE body_mass_g IS NOT NULL))
GROUP BY centroid_id ORDER BY centroid_id;

-- ALTER MODEL's labels and expiration, as BigQuery writes them; `sqlml models` lists both.
ALTER MODEL `bqml_tutorial.species_trees`
SET OPTIONS (labels = [("team", "ml"), ("stage", "example")],
             expiration_timestamp = TIMESTAMP "2030-01-01 00:00:00 UTC",
             description = "penguin species from the measurements");

SELECT name, options->>'expiration_timestamp' AS expires, options->'labels' AS labels
FROM sqlml.models WHERE name = 'bqml_tutorial.species_trees';
