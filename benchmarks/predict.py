"""ML.PREDICT and CREATE MODEL against plain scikit-learn on NumPy, measured in the same run.

    python benchmarks/predict.py [--rows 1000000] [--repeat 3]

The floor for scoring is ``predict_proba`` on the already-encoded NumPy matrix held in memory;
sqlml's figure is end to end: read the table from DuckDB, preprocess, score, and hand back the
whole result as Arrow. The floor for training is ``fit`` on the prepared matrix of the same
training rows. Ratios are best-of-``repeat`` times.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("SQLML_SECRET_KEY", "benchmark")

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import sqlml  # noqa: E402

MODELS = {
    "logistic_reg": "model_type = 'logistic_reg'",
    "boosted_tree_classifier": "model_type = 'boosted_tree_classifier', max_iterations = 20, max_tree_depth = 4, early_stop = FALSE",
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
    create = f"CREATE OR REPLACE MODEL {name} OPTIONS ({options}, data_split_method = 'NO_SPLIT', random_seed = 1) AS SELECT * FROM data"
    train_time = best(lambda: conn.sql(create), repeat=1)
    model = conn.executor.load(name)
    table = conn.duckdb.sql("SELECT * FROM data").to_arrow_table()
    X = model.features(table)
    y = np.asarray(table["label"]).astype(int)

    def bare_fit():
        estimator = model.estimator.__class__(**model.estimator.get_params())
        estimator.fit(X, y)
    fit_time = best(bare_fit, repeat=1)

    def floor():
        with threadpool_limits(1):
            model.estimator.predict_proba(X)
    floor_time = best(floor, repeat)
    query = f"SELECT * FROM ML.PREDICT(MODEL {name}, TABLE data)"
    end_to_end = best(lambda: conn.sql(query).to_arrow_table(), repeat)
    ctas = best(lambda: conn.sql(f"CREATE OR REPLACE TABLE scored AS {query}"), repeat)
    conn.sql(f"CREATE OR REPLACE VIEW lazy AS {query}")
    lazy = best(lambda: conn.duckdb.sql("SELECT * FROM lazy").to_arrow_table(), repeat)
    print(f"{name:26s} rows={rows:,}")
    print(f"  scoring  numpy floor {floor_time:6.2f}s | ML.PREDICT → Arrow {end_to_end:6.2f}s  ratio {end_to_end / floor_time:5.2f}x"
          f"  ({rows / end_to_end / 1e6:4.1f} M rows/s) | CTAS {ctas:6.2f}s ratio {ctas / floor_time:5.2f}x"
          f" | lazy view (Arrow UDF) {lazy:6.2f}s ratio {lazy / floor_time:5.2f}x")
    print(f"  training bare fit    {fit_time:6.2f}s | CREATE MODEL      {train_time:6.2f}s  ratio {train_time / fit_time:5.2f}x")


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
