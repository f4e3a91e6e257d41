"""Matrix factorization on MovieLens (100,004 ratings, 671 users × 9,066 movies), in one run:

    python benchmarks/recommend.py [--repeat 3] [--skip-memory]

1. Training time: ``implicit``'s ALS called directly (the peer: the same confidence matrix, factors,
   regularization, iterations and seed) beside CREATE MODEL of an implicit and of an explicit model with
   the same settings. For sqlml both the whole statement (read, split, fit, evaluation beside the baseline,
   signing) and its fit (the ALS iterations with their loss, ML.TRAINING_INFO's durations) are shown, as
   medians of ``--repeat`` interleaved runs.
2. ML.RECOMMEND throughput: every user × every movie (≈ 6.1 M pairs) aggregated by DuckDB as it streams,
   in pairs per second; and each user's 10 best movies, by ``top_k = 10`` beside a window over every pair.
3. Memory: peak RSS growth of a statement reading every pair of ML.RECOMMEND (an aggregate; a COPY to
   Parquet, beside DuckDB alone writing as many rows to Parquet) for every user and for a tenth of them,
   each in a fresh child process (target: ≤ 1.3× between the two).
4. Quality on a per-user hold-out of each user's latest 20 % of ratings: the explicit model's RMSE beside
   the user + item bias baseline, the implicit model's MAP@10 and NDCG@10 beside the most popular movies
   (the figures in docs/recommendations.md).

The machine may be shared: ratios against a peer measured in the same run are the figures to read.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("SQLML_SECRET_KEY", "recommend-benchmark-" + "0123456789abcdef" * 3)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

FACTORS, L2, ITERATIONS, ALPHA, SEED = 32, 10.0, 15, 1.0, 7
MF = "model_type = 'matrix_factorization', user_col = 'userId', item_col = 'movieId', rating_col = 'rating'"
SAME = f"num_factors = {FACTORS}, l2_reg = {L2}, max_iterations = {ITERATIONS}, early_stop = FALSE, random_seed = {SEED}"
HELD_OUT = """row_number() OVER (PARTITION BY userId ORDER BY timestamp DESC, movieId)
              <= greatest(1, round(0.2 * count(*) OVER (PARTITION BY userId))) AS is_held_out"""


def connect(path: str | None = None):
    import sqlml
    from sqlml import datasets

    conn = sqlml.connect(path, progress=lambda message: None) if path else sqlml.connect(progress=lambda m: None)
    if not conn.duckdb.sql("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'movielens'").fetchall()[0][0]:
        datasets.load(conn.duckdb, "movielens")
        conn.sql(f"CREATE TABLE ratings AS SELECT userId, movieId, rating, {HELD_OUT} FROM movielens")
    return conn


def implicit_direct(conn) -> float:
    """Seconds of ``implicit``'s fit on the same confidence matrix sqlml builds (1 + wals_alpha · rating)."""
    import numpy as np
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    users, items, ratings = conn.duckdb.sql("SELECT userId, movieId, rating FROM ratings").fetchnumpy().values()
    u, i = np.unique(users, return_inverse=True)[1], np.unique(items, return_inverse=True)[1]
    confidence = sp.csr_matrix((np.asarray(ratings, float), (u, i)))
    confidence.data = 1 + ALPHA * confidence.data
    confidence = confidence.astype(np.float32)
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=FACTORS, regularization=L2, alpha=1.0, iterations=ITERATIONS,
                                        random_state=SEED)
        started = time.perf_counter()
        model.fit(confidence, show_progress=False)
        return time.perf_counter() - started


def sqlml_training(conn, feedback: str, factors: int = FACTORS) -> tuple[float, float]:
    """Seconds of CREATE MODEL, and of its fit (ML.TRAINING_INFO's durations)."""
    alpha = f", wals_alpha = {ALPHA}" if feedback == "implicit" else ""
    same = SAME.replace(f"num_factors = {FACTORS}", f"num_factors = {factors}")
    started = time.perf_counter()
    conn.sql(f"CREATE OR REPLACE MODEL bench_{feedback} OPTIONS ({MF}, feedback_type = '{feedback}', {same}{alpha}, "
             "deploy = 'always') AS SELECT userId, movieId, rating FROM ratings")
    whole = time.perf_counter() - started
    fit = conn.sql(f"SELECT sum(duration_ms) / 1000 FROM ML.TRAINING_INFO(MODEL bench_{feedback})").fetchall()[0][0]
    return whole, fit


def training_section(repeat: int) -> None:
    conn = connect()
    sqlml_training(conn, "implicit")  # imports, first-call costs
    runs = {"implicit direct": [], "implicit": [], "implicit fit": [], "explicit": [], "explicit fit": [],
            "explicit 16": []}
    for _ in range(repeat):
        runs["implicit direct"].append(implicit_direct(conn))
        for feedback in ("implicit", "explicit"):
            whole, fit = sqlml_training(conn, feedback)
            runs[feedback].append(whole)
            runs[f"{feedback} fit"].append(fit)
        runs["explicit 16"].append(sqlml_training(conn, "explicit", 16)[0])
    peer = statistics.median(runs["implicit direct"])
    print(f"Training on MovieLens ({FACTORS} factors, {ITERATIONS} iterations, l2_reg {L2}), median of {repeat}:")
    print(f"{'':34} {'seconds':>8} {'× implicit direct':>18}")
    for name, label in (("implicit direct", "implicit's ALS called directly"),
                        ("implicit fit", "sqlml implicit: its fit"),
                        ("implicit", "sqlml implicit: CREATE MODEL"),
                        ("explicit fit", "sqlml explicit: its fit (NumPy)"),
                        ("explicit", "sqlml explicit: CREATE MODEL"),
                        ("explicit 16", "… explicit with 16 factors")):
        value = statistics.median(runs[name])
        print(f"{label:34} {value:>8.2f} {value / peer:>17.2f}×")
    conn.close()


def throughput_section() -> None:
    conn = connect()
    conn.sql(f"CREATE MODEL m OPTIONS ({MF}, {SAME}, data_split_method = 'NO_SPLIT') AS "
             "SELECT userId, movieId, rating FROM ratings")
    pairs = conn.sql("SELECT count(DISTINCT userId) * count(DISTINCT movieId) FROM ratings").fetchall()[0][0]
    started = time.perf_counter()
    count, _ = conn.sql("SELECT count(*), sum(predicted_rating) FROM ML.RECOMMEND(MODEL m)").fetchall()[0]
    every = time.perf_counter() - started
    assert count == pairs, (count, pairs)
    started = time.perf_counter()
    windowed = conn.sql("SELECT count(*) FROM (SELECT *, row_number() OVER (PARTITION BY userId ORDER BY "
                        "predicted_rating DESC) AS place FROM ML.RECOMMEND(MODEL m)) WHERE place <= 10").fetchall()[0][0]
    window = time.perf_counter() - started
    started = time.perf_counter()
    best = conn.sql("SELECT count(*) FROM ML.RECOMMEND(MODEL m, STRUCT(10 AS top_k))").fetchall()[0][0]
    top = time.perf_counter() - started
    assert best == windowed, (best, windowed)
    print(f"\nML.RECOMMEND, every user × every movie ({pairs:,} pairs) summed by DuckDB: {every:.2f} s, "
          f"{pairs / every / 1e6:.2f} M pairs/s")
    print(f"each user's 10 best movies, by a window over every pair in SQL: {window:.2f} s; "
          f"by 10 AS top_k: {top:.2f} s ({top / window:.2f}× the window's time, {top / every:.2f}× the sum's)")
    conn.close()


STATEMENTS = {
    "sum": "SELECT count(*), sum(predicted_rating) FROM ML.RECOMMEND(MODEL m, {users})",
    "parquet": "COPY (SELECT * FROM ML.RECOMMEND(MODEL m, {users})) TO '{target}' (FORMAT parquet)",
    "duckdb parquet": "COPY (SELECT * FROM stream) TO '{target}' (FORMAT parquet)",
}


def child_memory(path: str, users: int, what: str, copies: int = 1) -> dict:
    """In this fresh process: the peak RSS growth of one statement over the first ``users`` users' pairs
    (each user ``copies`` times)."""
    from memory import reset_peak, rss_kb

    conn = connect(path)
    conn.sql("SELECT * FROM ML.RECOMMEND(MODEL m, (SELECT 1 AS userId))").fetchall()  # the model loaded
    pairs = users * copies * conn.sql("SELECT count(DISTINCT movieId) FROM ratings").fetchall()[0][0]
    target = os.path.join(os.path.dirname(path), f"recs_{users}.parquet")
    chosen = f"(SELECT userId FROM (SELECT DISTINCT userId FROM ratings WHERE userId <= {users}), range({copies}))"
    statement = STATEMENTS[what].format(users=chosen, target=target, pairs=pairs)
    if what == "duckdb parquet":  # DuckDB alone reading an Arrow stream of as many rows, as ML.RECOMMEND's
        conn.duckdb.register("stream", _stream(pairs))
    reset = reset_peak()
    before = rss_kb("VmRSS")
    started = time.perf_counter()
    (conn.duckdb if what == "duckdb parquet" else conn).sql(statement)
    seconds = time.perf_counter() - started
    peak = rss_kb("VmHWM")
    conn.close()
    return {"users": users, "pairs": pairs, "growth_mb": (peak - before) / 1024, "seconds": seconds, "reset": reset}


def _stream(rows: int):
    """An Arrow stream of ``rows`` rows of (DOUBLE, BIGINT, BIGINT), made a batch of 131,072 at a time."""
    import numpy as np
    import pyarrow as pa

    schema = pa.schema([("p", pa.float64()), ("u", pa.int64()), ("i", pa.int64())])

    def batches():
        for start in range(0, rows, 131_072):
            count = min(131_072, rows - start)
            yield pa.record_batch([pa.array(np.random.rand(count)), pa.array(np.arange(count)),
                                   pa.array(np.arange(count) % 9066)], schema=schema)
    return pa.RecordBatchReader.from_batches(schema, batches())


def memory_section() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "recommend.duckdb")
        conn = connect(path)
        conn.sql(f"CREATE MODEL m OPTIONS ({MF}, {SAME}, data_split_method = 'NO_SPLIT') AS "
                 "SELECT userId, movieId, rating FROM ratings")
        conn.close()
        sizes = ((67, 1), (671, 1), (671, 5))  # a tenth of the users, all of them, all of them five times
        results = {what: [] for what in STATEMENTS}
        for what in STATEMENTS:
            for users, copies in sizes:
                out = subprocess.run([sys.executable, __file__, "--child", path, str(users), what, str(copies)],
                                     check=True, stdout=subprocess.PIPE, text=True)
                results[what].append(json.loads(out.stdout.strip().splitlines()[-1]))
    names = {"sum": "SELECT count(*), sum(…) FROM ML.RECOMMEND(MODEL m, users)",
             "parquet": "COPY (SELECT * FROM ML.RECOMMEND(MODEL m, users)) TO parquet",
             "duckdb parquet": "DuckDB alone: COPY (an Arrow stream as big) TO parquet"}
    print("\nMemory: peak RSS growth (MB) of one statement, each in a fresh process (DuckDB's default settings)")
    print(f"{'statement':58} " + " ".join(f"{r['pairs']:>11,}" for r in results['sum']) + f" {'all / tenth':>12}")
    for what, rows in results.items():
        print(f"{names[what]:58} " + " ".join(f"{r['growth_mb']:>11.0f}" for r in rows)
              + f" {rows[1]['growth_mb'] / max(rows[0]['growth_mb'], 1):>11.2f}×")
    print("(target for ML.RECOMMEND's stream: ≤ 1.3× between a tenth of the users and all of them)")
    if not all(r["reset"] for rows in results.values() for r in rows):
        print("note: the kernel refused to reset the peak-RSS mark")


def quality_section() -> None:
    conn = connect()
    split = "data_split_method = 'CUSTOM', data_split_col = 'is_held_out'"
    conn.sql(f"CREATE MODEL explicit_mf OPTIONS ({MF}, num_factors = 16, l2_reg = 15, {split}) AS SELECT * FROM ratings")
    conn.sql(f"CREATE MODEL implicit_mf OPTIONS ({MF}, feedback_type = 'implicit', num_factors = 32, l2_reg = 10, "
             f"wals_alpha = 1, {split}) AS SELECT * FROM ratings")
    rmse, baseline = conn.sql("SELECT sqrt(mean_squared_error), sqrt(baseline_mean_squared_error) "
                              "FROM ML.EVALUATE(MODEL explicit_mf)").fetchall()[0]
    ranking = conn.sql("SELECT mean_average_precision, baseline_mean_average_precision, "
                       "normalized_discounted_cumulative_gain, baseline_normalized_discounted_cumulative_gain "
                       "FROM ML.EVALUATE(MODEL implicit_mf, (SELECT * FROM ratings WHERE is_held_out), "
                       "STRUCT(10 AS top_k))").fetchall()[0]
    print("\nQuality on each user's latest 20 % of ratings (held out):")
    print(f"explicit, 16 factors, l2_reg 15: RMSE {rmse:.4f}; user + item bias baseline {baseline:.4f}")
    print(f"implicit, 32 factors, l2_reg 10, wals_alpha 1: MAP@10 {ranking[0]:.4f} (most popular {ranking[1]:.4f}), "
          f"NDCG@10 {ranking[2]:.4f} (most popular {ranking[3]:.4f})")
    conn.close()


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child_memory(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    training_section(args.repeat)
    throughput_section()
    if not args.skip_memory:
        memory_section()
    quality_section()
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
