"""Peak memory of sqlml's big statements, each measured in a fresh child process.

    python benchmarks/memory.py [--rows 1000000 5000000 20000000] [--model logistic_reg]
                                [--memory-limit 128MB] [--dir /tmp/x] [--training-rows N | --skip-training]

Scoring: peak RSS growth of ``CREATE TABLE scored AS SELECT * FROM ML.PREDICT(MODEL m, TABLE big)``
over a file-backed DuckDB database (``big``: 10 DOUBLE columns and one VARCHAR of 20 levels, ~88 bytes
a row). Each size runs in its own child: it opens the database, sets DuckDB's ``memory_limit``, loads
the model (a one-row ML.PREDICT), resets the kernel's peak-RSS mark, runs the statement and reports its
peak RSS (VmHWM) minus its RSS before the statement. Streaming keeps that flat: the ratio between the
largest and the smallest size is the figure to watch (target ≤ 1.3×).

Beside it, the same for DuckDB alone (``CREATE TABLE scored AS SELECT x0 > 1 AS p, * FROM big``): the
memory DuckDB itself takes. Without a ``memory_limit`` (``--memory-limit none``) DuckDB's buffer pool
keeps the new table's blocks cached up to 80 % of RAM, so both columns then grow with the rows.

Training: ``measure_training`` of ``benchmarks/memory_training.py`` when that module is present.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("SQLML_SECRET_KEY", "memory-benchmark-" + "0123456789abcdef" * 3)

ROWS = (1_000_000, 5_000_000, 20_000_000)
MODELS = {
    "logistic_reg": "model_type = 'logistic_reg'",
    "boosted_tree_classifier": "model_type = 'boosted_tree_classifier', max_iterations = 20, max_tree_depth = 4",
}
COLUMNS = ", ".join(f"random() * {i + 1} AS x{i}" for i in range(10)) + ", 'c' || (range % 20)::VARCHAR AS s1"
MB = 2**20


def setup(path: str, sizes: list[int], model: str) -> None:
    """The database: a model trained on 100,000 rows and one table ``big_<rows>`` per size."""
    import sqlml

    with sqlml.connect(path, progress=lambda message: None) as conn:
        conn.sql(f"CREATE OR REPLACE TABLE train AS SELECT {COLUMNS} FROM range(100000)")
        conn.sql("ALTER TABLE train ADD COLUMN label BOOLEAN")
        conn.sql("UPDATE train SET label = (x0 + x3 / 4 + (s1 IN ('c1', 'c2'))::INT) > 0.9")
        conn.sql(f"CREATE OR REPLACE MODEL m OPTIONS ({MODELS[model]}, random_seed = 1) AS SELECT * FROM train")
        for rows in sizes:
            conn.sql(f"CREATE OR REPLACE TABLE big_{rows} AS SELECT {COLUMNS} FROM range({rows})")


def rss_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


STATEMENTS = {"sqlml": "SELECT * FROM ML.PREDICT(MODEL m, TABLE big_{rows})",
              "duckdb": "SELECT x0 > 1 AS p, * FROM big_{rows}"}


def child_scoring(path: str, rows: int, what: str, memory_limit: str) -> dict:
    """In this (fresh) process: the CTAS over ``big_<rows>``, its peak RSS growth and its time."""
    import sqlml

    with sqlml.connect(path, progress=lambda message: None) as conn:
        if memory_limit != "none":
            conn.sql(f"SET memory_limit = '{memory_limit}'")
        conn.sql(f"SELECT * FROM ML.PREDICT(MODEL m, (SELECT * FROM big_{rows} LIMIT 1))").fetchall()
        conn.sql("DROP TABLE IF EXISTS scored")
        reset = reset_peak()
        before = rss_kb("VmRSS")
        started = time.perf_counter()
        conn.sql("CREATE TABLE scored AS " + STATEMENTS[what].format(rows=rows))
        seconds = time.perf_counter() - started
        scored = conn.sql("SELECT count(*) FROM scored").fetchall()[0][0]
        peak = rss_kb("VmHWM")
        conn.sql("DROP TABLE scored")
    return {"rows": rows, "scored": scored, "before_mb": before / 1024, "growth_mb": (peak - before) / 1024,
            "seconds": seconds, "peak_reset": reset}


def measure(path: str, rows: int, what: str, memory_limit: str) -> dict:
    """One size in a fresh child process (this script with --child), so no size inherits another's heap."""
    out = subprocess.run([sys.executable, __file__, "--child", path, str(rows), what, memory_limit], check=True,
                         stdout=subprocess.PIPE, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def scoring_section(directory: str, sizes: list[int], model: str, memory_limit: str) -> None:
    path = os.path.join(directory, "memory.duckdb")
    print(f"Setting up {path}: {', '.join(f'{n:,}' for n in sizes)} rows × 11 columns, model {model} ...",
          file=sys.stderr)
    subprocess.run([sys.executable, __file__, "--setup", path, model, *map(str, sizes)], check=True)
    results = [(measure(path, rows, "sqlml", memory_limit), measure(path, rows, "duckdb", memory_limit))
               for rows in sizes]
    print(f"\nScoring: CREATE TABLE scored AS SELECT * FROM ML.PREDICT(MODEL m, TABLE big) — {model}, "
          f"DuckDB memory_limit {memory_limit}")
    print(f"{'rows':>12} {'input MB':>9} {'peak RSS growth MB':>19} {'seconds':>8} {'M rows/s':>9}"
          f" {'DuckDB alone: MB':>17} {'seconds':>8}")
    for r, alone in results:
        assert r["scored"] == r["rows"] == alone["scored"], (r, alone)
        print(f"{r['rows']:>12,} {r['rows'] * 88 / MB:>9.0f} {r['growth_mb']:>19.0f} {r['seconds']:>8.1f} "
              f"{r['rows'] / r['seconds'] / 1e6:>9.1f} {alone['growth_mb']:>17.0f} {alone['seconds']:>8.1f}")
    if len(results) > 1:
        first, last = results[0][0], results[-1][0]
        print(f"growth at {last['rows']:,} rows / at {first['rows']:,} rows: "
              f"{last['growth_mb'] / max(first['growth_mb'], 1):.2f}× (target ≤ 1.3×)")
    if not all(r["peak_reset"] for pair in results for r in pair):
        print("note: the kernel refused to reset the peak-RSS mark; growth includes loading the model")


def training_section(rows: int) -> None:
    """CREATE MODEL per model type, from benchmarks/memory_training.py when it is present."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        import memory_training
    except ImportError:
        print("\nTraining: skipped (benchmarks/memory_training.py is not present)")
        return
    print(f"\nTraining: peak RSS growth of CREATE MODEL at {rows:,} rows, as a ratio to its feature matrix")
    memory_training.print_table(memory_training.measure_training(rows))


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child_scoring(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])))
        return
    if sys.argv[1:2] == ["--setup"]:
        setup(sys.argv[2], [int(n) for n in sys.argv[4:]], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=list(ROWS))
    parser.add_argument("--model", default="logistic_reg", choices=list(MODELS))
    parser.add_argument("--memory-limit", default="128MB", help="DuckDB's SET memory_limit, or 'none'")
    parser.add_argument("--dir", default=None, help="where the database goes (default: a temporary folder)")
    parser.add_argument("--training-rows", type=int, default=2_000_000)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        scoring_section(directory, sorted(args.rows), args.model, args.memory_limit)
    if not args.skip_training:
        training_section(args.training_rows)


if __name__ == "__main__":
    main()
