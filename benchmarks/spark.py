"""Spark beside DuckDB on the same rows: ML.PREDICT written to Parquet, and CREATE MODEL on a sample.

    PYSPARK_PYTHON=$(which python) SPARK_LOCAL_IP=127.0.0.1 python benchmarks/spark.py \
        [--rows 1000000 10000000] [--master 'local[2]'] [--dir /tmp/x]

The rows: Parquet files of 10 DOUBLE columns and one VARCHAR of 20 levels (~88 bytes a row) that both
engines read. Two models (logistic regression; boosted trees, 20 × depth 4) are trained on the same
200,000 rows on each engine. For each model and size, ML.PREDICT of every row is written to Parquet —
DuckDB: ``COPY (SELECT * FROM ML.PREDICT(…)) TO 'out.parquet'``, each size in a fresh child process;
Spark: the ML.PREDICT DataFrame's ``write.parquet`` on ``--master`` (``local[2]``: two executor cores),
in one child with one session — with the wall time, and the peak RSS growth of the driver's Python
process (Spark's executors are the JVM and its Python workers). Streaming keeps the growth flat: the
10 M / 1 M ratio is the figure to watch (target ≤ 1.3×). Then CREATE MODEL (boosted trees) on 1 M rows
with ``max_training_rows = 200000``: time and the driver's peak RSS growth on each engine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memory import COLUMNS, MB, MODELS, reset_peak, rss_kb  # noqa: E402 (the same rows and models as memory.py)

os.environ.setdefault("SQLML_SECRET_KEY", "spark-benchmark-" + "0123456789abcdef" * 3)

ROWS = (1_000_000, 10_000_000)
TRAINING_ROWS = 200_000
LABEL = "(x0 + x3 / 4 + (s1 IN ('c1', 'c2'))::INT) > 0.9 AS label"


def setup(directory: str, sizes: list[int]) -> None:
    """The Parquet files: ``train.parquet`` (200,000 labelled rows), ``big_<rows>.parquet`` (labelled too,
    so the largest 1 M doubles as CREATE MODEL's input)."""
    import duckdb
    with duckdb.connect() as db:
        db.sql("SET threads = 2")
        for name, rows in [("train", TRAINING_ROWS), *((f"big_{n}", n) for n in sizes)]:
            path = os.path.join(directory, f"{name}.parquet")
            db.sql(f"COPY (SELECT *, {LABEL} FROM (SELECT {COLUMNS} FROM range({rows}))) TO '{path}' (FORMAT parquet)")


def create_models(conn, directory: str) -> None:
    for model, options in MODELS.items():
        conn.sql(f"CREATE OR REPLACE MODEL {model} OPTIONS ({options}, random_seed = 1) AS SELECT * FROM train")


def measured(action) -> dict:
    """``action()`` timed, with this process's peak RSS growth while it ran."""
    reset = reset_peak()
    before = rss_kb("VmRSS")
    started = time.perf_counter()
    action()
    return {"seconds": time.perf_counter() - started, "growth_mb": (rss_kb("VmHWM") - before) / 1024, "reset": reset}


def child_duckdb(directory: str, what: str, model: str, rows: int) -> dict:
    """In this (fresh) process, on DuckDB: ML.PREDICT of ``big_<rows>`` to Parquet, or CREATE MODEL."""
    import sqlml
    with sqlml.connect(os.path.join(directory, "models.duckdb"), progress=lambda message: None) as conn:
        conn.sql("SET threads = 2")  # as Spark's local[2]
        for name in os.listdir(directory):
            if name.endswith(".parquet") and not name.startswith("out"):
                conn.sql(f"CREATE OR REPLACE VIEW {name[:-8]} AS SELECT * FROM read_parquet('{os.path.join(directory, name)}')")
        if what == "setup":
            create_models(conn, directory)
            return {}
        if what == "train":
            return measured(lambda: conn.sql(f"CREATE OR REPLACE MODEL trained OPTIONS ({MODELS[model]}, random_seed = 1, "
                                             f"max_training_rows = {TRAINING_ROWS}) AS SELECT * FROM big_{rows}"))
        conn.sql(f"SELECT * FROM ML.PREDICT(MODEL {model}, (SELECT * FROM big_{rows} LIMIT 1))").fetchall()
        out = os.path.join(directory, "out_duckdb.parquet")
        return measured(lambda: conn.sql(f"COPY (SELECT * FROM ML.PREDICT(MODEL {model}, TABLE big_{rows})) "
                                         f"TO '{out}' (FORMAT parquet)"))


def child_spark(directory: str, master: str, sizes: list[int]) -> dict:
    """In this (fresh) process, on one Spark session: every ML.PREDICT, then CREATE MODEL."""
    import sqlml
    from sqlml.engines.spark import local_session
    spark = local_session(master)
    for name in os.listdir(directory):
        if name.endswith(".parquet") and not name.startswith("out"):
            spark.read.parquet(os.path.join(directory, name)).createOrReplaceTempView(name[:-8])
    conn = sqlml.connect(engine="spark", spark=spark, registry=os.path.join(directory, "registry"),
                         progress=lambda message: None)
    create_models(conn, directory)
    results = {}
    for model in MODELS:
        conn.sql(f"SELECT * FROM ML.PREDICT(MODEL {model}, (SELECT * FROM big_{sizes[0]} LIMIT 1))").collect()
        for rows in sizes:  # the ML.PREDICT DataFrame, written by the executors
            out = os.path.join(directory, "out_spark")
            predicted = conn.sql(f"SELECT * FROM ML.PREDICT(MODEL {model}, TABLE big_{rows})")
            results[f"{model} {rows}"] = measured(lambda: predicted.write.mode("overwrite").parquet(out))
            assert spark.read.parquet(out).count() == rows
    results["train"] = measured(lambda: conn.sql(
        f"CREATE OR REPLACE MODEL trained OPTIONS ({MODELS['boosted_tree_classifier']}, random_seed = 1, "
        f"max_training_rows = {TRAINING_ROWS}) AS SELECT * FROM big_{sizes[0]}"))
    results["train_notes"] = conn.executor.registry.versions("trained")[-1].training_info[-1].get("notes")
    return results


def child(*args: str) -> dict:
    return json.loads(subprocess.run([sys.executable, __file__, "--child", *args], check=True, stdout=subprocess.PIPE,
                                     text=True).stdout.strip().splitlines()[-1])


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        engine, directory, *rest = sys.argv[2:]
        result = child_duckdb(directory, rest[0], rest[1], int(rest[2])) if engine == "duckdb" else \
            child_spark(directory, rest[0], [int(n) for n in rest[1:]])
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=list(ROWS))
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--dir", default=None, help="where the Parquet files go (default: a temporary folder)")
    args = parser.parse_args()
    sizes = sorted(args.rows)
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        print(f"Writing {', '.join(f'{n:,}' for n in sizes)} rows × 11 columns as Parquet ...", file=sys.stderr)
        setup(directory, sizes)
        child("duckdb", directory, "setup", "-", "0")
        duck = {f"{model} {rows}": child("duckdb", directory, "predict", model, str(rows))
                for model in MODELS for rows in sizes}
        duck["train"] = child("duckdb", directory, "train", "boosted_tree_classifier", str(sizes[0]))
        spark = child("spark", directory, args.master, *map(str, sizes))
    print(f"\nML.PREDICT of every row written to Parquet — Spark {args.master} beside DuckDB (threads = 2)")
    print(f"{'model':<24} {'rows':>11} {'DuckDB s':>9} {'Spark s':>8} {'Spark/DuckDB':>13} "
          f"{'DuckDB RSS MB':>14} {'Spark driver RSS MB':>20}  (DuckDB without memory_limit: its buffer pool caches)")
    for key in (f"{model} {rows}" for model in MODELS for rows in sizes):
        model, rows = key.split()
        d, s = duck[key], spark[key]
        print(f"{model:<24} {int(rows):>11,} {d['seconds']:>9.1f} {s['seconds']:>8.1f} {s['seconds'] / d['seconds']:>12.2f}× "
              f"{d['growth_mb']:>14.0f} {s['growth_mb']:>20.0f}")
    for model in MODELS:
        first, last = spark[f"{model} {sizes[0]}"], spark[f"{model} {sizes[-1]}"]
        print(f"{model}: Spark driver RSS growth at {sizes[-1]:,} / at {sizes[0]:,} rows: "
              f"{max(last['growth_mb'], 1) / max(first['growth_mb'], 1):.2f}× (target ≤ 1.3×; under 1 MB counts as 1 MB)")
    print(f"\nCREATE MODEL (boosted trees) on {sizes[0]:,} rows, max_training_rows = {TRAINING_ROWS:,}")
    for name, result in (("DuckDB", duck["train"]), ("Spark", spark["train"])):
        print(f"{name:>7}: {result['seconds']:.1f} s, peak RSS growth of the driver {result['growth_mb']:.0f} MB")
    print(f"Spark's training note: {spark['train_notes']}")
    if not all(r.get("reset", True) for r in [*duck.values(), *spark.values()] if isinstance(r, dict)):
        print("note: the kernel refused to reset the peak-RSS mark; growth includes earlier work")


if __name__ == "__main__":
    main()
