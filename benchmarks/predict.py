"""ML.PREDICT and CREATE MODEL against plain scikit-learn on NumPy, measured in the same run.

    python benchmarks/predict.py [--rows 1000000] [--repeat 3]

The floor for scoring is ``predict_proba`` on the already-encoded NumPy matrix held in memory.
sqlml's figures are end to end from the DuckDB table: read, preprocess, score, and (1) register the
result as the statement's relation, (2) also fetch it back as Arrow, (3) write it to a table, or
(4) score lazily through a view. The floor for training is ``fit`` on the prepared matrix of as
many rows as CREATE MODEL trains on. Ratios are best-of-``repeat`` times.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("SQLML_SECRET_KEY", "benchmark")

import numpy as np  # noqa: E402

import sqlml  # noqa: E402

MODELS = {
    "logistic_reg": "model_type = 'logistic_reg'",
    "boosted_tree_classifier": "model_type = 'boosted_tree_classifier', max_iterations = 20, max_tree_depth = 4, early_stop = FALSE",
    "boosted_tree_100": "model_type = 'boosted_tree_classifier', max_iterations = 100, max_tree_depth = 6, early_stop = FALSE",
}


def best(action, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def make_data(conn: sqlml.Connection, rows: int) -> None:
    numbers = ", ".join(f"random() * {i + 1} AS x{i}" for i in range(10))
    conn.sql(f"""CREATE OR REPLACE TABLE data AS
                 SELECT {numbers}, 'c' || (range % 20)::VARCHAR AS s1, 'd' || ((range * 7) % 20)::VARCHAR AS s2,
                        random() < 0.3 AS label
                 FROM range({rows})""")
    conn.sql("UPDATE data SET label = (x0 + x3 / 4 + (s1 IN ('c1', 'c2'))::INT) > 0.9")


def bench_model(conn: sqlml.Connection, name: str, options: str, rows: int, repeat: int) -> None:
    create = f"CREATE OR REPLACE MODEL {name} OPTIONS ({options}, random_seed = 1) AS SELECT * FROM data"
    train_time = best(lambda: conn.sql(create), repeat=1)
    model = conn.executor.load(name)
    table = conn.duckdb.sql("SELECT * FROM data").to_arrow_table()
    X = model.features(table)
    y = np.asarray(table["label"]).astype(int)
    n_train = model.info.training_rows  # AUTO_SPLIT keeps 10,000 rows apart; fit the floor on as many

    def bare_fit():
        model.estimator.__class__(**model.estimator.get_params()).fit(X[:n_train], y[:n_train])
    fit_time = best(bare_fit, repeat=1)

    def floor():
        model.estimator.predict_proba(X)
    floor_time = best(floor, repeat)
    query = f"SELECT * FROM ML.PREDICT(MODEL {name}, TABLE data)"
    computed = best(lambda: conn.sql(query), repeat)
    fetched = best(lambda: conn.sql(query).to_arrow_table(), repeat)
    ctas = best(lambda: conn.sql(f"CREATE OR REPLACE TABLE scored AS {query}"), repeat)
    conn.sql(f"CREATE OR REPLACE VIEW lazy AS {query}")
    lazy = best(lambda: conn.duckdb.sql("SELECT * FROM lazy").to_arrow_table(), repeat)
    print(f"{name} — {rows:,} rows, 10 numbers + 2 strings of 20 levels")
    print(f"  numpy floor: predict_proba on the encoded matrix      {floor_time:7.3f}s")
    for label, seconds in [("ML.PREDICT, scored and registered (conn.sql)", computed),
                           ("ML.PREDICT, then fetched as Arrow", fetched),
                           ("CREATE TABLE … AS SELECT * FROM ML.PREDICT", ctas),
                           ("view over ML.PREDICT (Arrow UDF, 2,048 rows/call)", lazy)]:
        print(f"  {label:52s} {seconds:7.3f}s  {seconds / floor_time:5.2f}x  {rows / seconds / 1e6:5.1f} M rows/s")
    print(f"  training: bare fit on {n_train:,} prepared rows {fit_time:7.2f}s | CREATE MODEL {train_time:7.2f}s"
          f"  {train_time / fit_time:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    with sqlml.connect(progress=lambda message: None) as conn:
        make_data(conn, args.rows)
        for name in args.models:
            bench_model(conn, name, MODELS[name], args.rows, args.repeat)


if __name__ == "__main__":
    main()
