"""``sqlml.connect()`` + ``SELECT 42`` against ``duckdb.connect()`` + ``SELECT 42``, in fresh processes.

    python benchmarks/connect.py [--repeat 7] [--db]

What a user waits for before the first answer: a new Python process imports the library, connects
(in memory, or to a database file holding a model with ``--db``) and fetches ``SELECT 42``. Each
round runs both sides one after the other; the median of each side over ``--repeat`` rounds is
printed with the ratio and the target (1.5 x DuckDB + 50 ms). The modules the sqlml process loaded
among scikit-learn, skops, scipy and pandas are printed too.
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

HEAVY = ("sklearn", "skops", "scipy", "pandas")
PROBE = """
import sys, time
started = time.perf_counter()
import {module}
conn = {module}.connect({path!r})
assert conn.sql("SELECT 42").fetchall() == [(42,)]
elapsed = time.perf_counter() - started
import json
print(json.dumps([elapsed, sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r}))]))
"""


def run(module: str, path: str, env: dict) -> tuple[float, float, list[str]]:
    """(wall seconds of the whole process, seconds from the import to the answer, heavy modules loaded)."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PROBE.format(module=module, path=path, heavy=HEAVY)], env=env,
                         capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - started
    inside, loaded = json.loads(out.strip().splitlines()[-1])
    return wall, inside, loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--db", action="store_true", help="connect to a database file that holds a model and a view")
    args = parser.parse_args()
    env = {**os.environ, "SQLML_SECRET_KEY": "connect-benchmark-" + "0123456789abcdef" * 3}
    with tempfile.TemporaryDirectory() as folder:
        path = ":memory:"
        if args.db:
            path = os.path.join(folder, "models.duckdb")
            subprocess.run([sys.executable, "-c", f"""
import sqlml
conn = sqlml.connect({path!r}, progress=lambda m: None)
conn.sql("CREATE TABLE t AS SELECT range % 7 AS x, range % 2 = 0 AS y FROM range(200)")
conn.sql("CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['y']) AS SELECT * FROM t")
conn.sql("CREATE VIEW v AS SELECT * FROM ML.PREDICT(MODEL m, TABLE t)")
"""], env=env, check=True)
        sides: dict[str, list[tuple[float, float, list[str]]]] = {"duckdb": [], "sqlml": []}
        for _ in range(args.repeat):
            for module in sides:
                sides[module].append(run(module, path, env))
    duck, sqlml = ({name: statistics.median(r[i] for r in runs) for i, name in enumerate(("wall", "inside"))}
                   for runs in sides.values())
    target = 1.5 * duck["wall"] + 0.05
    print(f"database: {path if not args.db else 'a file with one model and one view'}; {args.repeat} rounds, medians")
    print(f"duckdb  process {duck['wall']:.3f} s   import+connect+SELECT 42 {duck['inside']:.3f} s")
    print(f"sqlml   process {sqlml['wall']:.3f} s   import+connect+SELECT 42 {sqlml['inside']:.3f} s")
    print(f"ratio (process) {sqlml['wall'] / duck['wall']:.2f}x; target 1.5x + 50 ms = {target:.3f} s: "
          f"{'met' if sqlml['wall'] <= target else 'NOT met'}")
    print(f"heavy modules the sqlml process loaded: {sides['sqlml'][-1][2] or 'none'}")


if __name__ == "__main__":
    main()
