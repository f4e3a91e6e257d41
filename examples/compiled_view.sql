-- A view over ML.PREDICT that any DuckDB client reads without sqlml, and that follows releases.
-- Run it:  sqlml run examples/compiled_view.sql --dataset penguins --db penguins.duckdb
-- then, with DuckDB alone (no sqlml installed):  duckdb penguins.duckdb "SELECT * FROM sex_scored LIMIT 5"
-- See docs/compiled_sql.md ("Views").

CREATE OR REPLACE TABLE birds AS
SELECT row_number() OVER () AS id, * FROM (SELECT * FROM penguins ORDER BY ALL);

CREATE OR REPLACE MODEL sex
OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex'])
AS SELECT island, bill_length_mm, bill_depth_mm, body_mass_g, sex FROM birds WHERE sex IS NOT NULL;

-- Version 2, without the birds of Dream island, deployed whatever the gate says.
CREATE OR REPLACE MODEL sex
OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex'], deploy = 'always')
AS SELECT island, bill_length_mm, bill_depth_mm, body_mass_g, sex FROM birds
WHERE sex IS NOT NULL AND island <> 'Dream';

-- The model compiles: the view is stored as plain SQL (no sqlml function in its text).
CREATE OR REPLACE VIEW sex_scored AS SELECT * FROM ML.PREDICT(MODEL sex, TABLE birds);
SELECT view_name, contains(sql, 'sqlml_serve_') AS calls_sqlml FROM duckdb_views() WHERE view_name = 'sex_scored';

-- A/B: 30 % of the birds, chosen by a hash of their id, scored by version 1 (the challenger).
ALTER MODEL sex VERSION 1 SET ALIAS challenger;
CREATE OR REPLACE VIEW sex_ab AS
SELECT * FROM ML.PREDICT(MODEL sex, TABLE birds, STRUCT(0.3 AS challenger_fraction, 'id' AS split_key));
SELECT model_version, count(*) AS birds FROM sex_ab GROUP BY ALL ORDER BY ALL;

-- Every release rewrites the views in its own transaction: the kill switch serves the baseline ...
ALTER MODEL sex DISABLE;
SELECT predicted_sex, count(*) AS birds FROM sex_scored GROUP BY ALL;
ALTER MODEL sex ENABLE;

-- ... a rollback serves version 1 again.
ALTER MODEL sex ROLLBACK;
SELECT count(*) AS same_as_version_1
FROM sex_scored AS v JOIN ML.PREDICT(MODEL sex VERSION 1, TABLE birds) AS p USING (id)
WHERE v.predicted_sex = p.predicted_sex;

-- Each view's text is recorded, signed: sqlml refuses a view edited outside it.
SELECT view_name, length(sql) AS characters, left(signature, 16) AS signature FROM sqlml.views ORDER BY view_name;
