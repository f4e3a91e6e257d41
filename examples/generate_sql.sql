-- A model compiled to plain SQL, and a cheaper student distilled from an expensive teacher.
-- Run it:  sqlml run examples/generate_sql.sql --dataset flights
-- See docs/compiled_sql.md.

CREATE OR REPLACE TABLE flights_labelled AS
SELECT month, day, sched_dep_time, dep_delay, distance, carrier, origin, dest,
       arr_delay > 15 AS is_late
FROM flights
WHERE arr_delay IS NOT NULL AND day IN (1, 15);

-- The teacher: 50 boosted trees, trained on January to September.
CREATE OR REPLACE MODEL late_teacher
OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['is_late'], max_iterations = 50,
         random_seed = 42) AS
SELECT * FROM flights_labelled WHERE month <= 9;

-- The student: a logistic regression that learns the teacher's probabilities on the same rows, without
-- their labels. Training says how much faster it scores and how often it agrees with the teacher.
CREATE OR REPLACE MODEL late_student
OPTIONS (model_type = 'logistic_reg', distill_from = 'late_teacher') AS
SELECT * EXCLUDE (is_late) FROM flights_labelled WHERE month <= 9;

-- On October to December, with their true labels: the student's metrics, and its agreement with the teacher.
SELECT accuracy, roc_auc, teacher_agreement
FROM ML.EVALUATE(MODEL late_student, (SELECT * FROM flights_labelled WHERE month > 9));

-- The student as one SELECT over flights_labelled, for Spark: it needs no sqlml (and no Python) to run.
SELECT dialect, length(sql) AS characters, sql
FROM ML.GENERATE_SQL(MODEL late_student, STRUCT('spark' AS dialect, 'flights_labelled' AS input_table));

-- Given the table, the SELECT names ML.PREDICT's columns one by one (here for DuckDB, to run anywhere
-- DuckDB runs). Without a table or input_table, it reads a {input} placeholder.
SELECT sql FROM ML.GENERATE_SQL(MODEL late_teacher, TABLE flights_labelled);
