"""Models compiled to SQL against eager ML.PREDICT and orbital's SQL, measured in one run.

    python benchmarks/compiled.py [--rows 1000000] [--repeat 3] [--orbital-python PATH]

Scoring ``--rows`` rows of 10 numbers and 2 strings of 20 levels (benchmarks/predict.py's data), each
written to a table (``CREATE TABLE … AS``), for

* logistic regression and boosted trees (100 trees of depth 6: XGBoost, sqlml's engine now; the figures in
  docs/compiled_sql.md were measured on HistGradientBoosting, the engine before) trained by sqlml:
  eager ``ML.PREDICT``, the view over it (Arrow UDF), and the compiled SQL of ``ML.GENERATE_SQL`` (given
  the table, as a view would store it) run in DuckDB, with the time to generate that SQL;
* orbital's SQL for the same fitted scikit-learn estimators: the logistic regression in a scikit-learn
  pipeline doing sqlml's preprocessing (StandardScaler, OneHotEncoder), and, since orbital reads
  neither sqlml's XGBoost wrapper (not a scikit-learn estimator) nor HistGradientBoosting (skl2onnx
  1.20), a GradientBoostingClassifier of 100 trees of depth 6 on the numbers, compiled by both sqlml
  and orbital.

orbital 0.6 pins ibis-framework ~= 12.0, skl2onnx ~= 1.20 and onnx < 1.23, so it runs in a virtual
environment of its own, which keeps sqlml's clean::

    python3 -m venv /work/venv-orbital
    /work/venv-orbital/bin/pip install "orbital==0.6.*" "scikit-learn==1.9.*" skops duckdb

(the ``bench`` extra names the same orbital; it also resolves beside sqlml's own pins).

The fitted estimators reach it as skops files; it writes its SQL, which runs here in the same DuckDB.
Without that interpreter the orbital rows are skipped. Ratios are best-of-``repeat``; each round runs
every form one after the other (benchmarks/predict.py's ``best_of``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("SQLML_SECRET_KEY", "compiled-benchmark-" + "0123456789abcdef" * 3)

import numpy as np  # noqa: E402
import skops.io  # noqa: E402
import sqlglot  # noqa: E402
from sqlglot import exp  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.ensemble import GradientBoostingClassifier  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

import sqlml  # noqa: E402
from sqlml.compile import generate_sql  # noqa: E402
from sqlml.model.preprocess import Preprocessor  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from predict import best_of, make_data  # noqa: E402

NUMBERS, STRINGS = [f"x{i}" for i in range(10)], ["s1", "s2"]
MODELS = {
    "logistic_reg": "model_type = 'logistic_reg'",
    "boosted_tree_100": "model_type = 'boosted_tree_classifier', max_iterations = 100, max_tree_depth = 6, "
                        "early_stop = FALSE",
}
TRAINING_ROWS = 100_000  # the models train on a sample; scoring reads every row
ORBITAL_SCRIPT = r"""
import json, sys, time
import orbital, orbital.types as types, skops.io
path, out, numbers, strings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
pipeline = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
features = {**{n: types.DoubleColumnType() for n in numbers}, **{s: types.StringColumnType() for s in strings}}
started = time.perf_counter()
sql = orbital.export_sql("data", orbital.parse_pipeline(pipeline, features=features), dialect="duckdb")
json.dump({"sql": sql, "seconds": time.perf_counter() - started}, open(out, "w"))
"""


def generation_seconds(model, repeat: int, columns: list[str]) -> tuple[str, float]:
    """The compiled SQL of ``model`` over ``data`` and the best time to generate it."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        sql = generate_sql(model, "duckdb", "data", columns=columns)
        times.append(time.perf_counter() - started)
    return sql, min(times)


def orbital_sql(python: str, pipeline, numbers: list[str], strings: list[str]) -> tuple[str, float] | str:
    """orbital's SQL for a fitted scikit-learn pipeline and its generation time, or why there is none."""
    if not pathlib.Path(python).exists():
        return f"no orbital interpreter at {python}"
    with tempfile.TemporaryDirectory() as folder:
        model, out = pathlib.Path(folder, "pipeline.skops"), pathlib.Path(folder, "sql.json")
        skops.io.dump(pipeline, model)
        done = subprocess.run([python, "-c", ORBITAL_SCRIPT, str(model), str(out), json.dumps(numbers),
                               json.dumps(strings)], capture_output=True, text=True)
        if done.returncode:
            return "orbital failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:200]
        result = json.loads(out.read_text())
    return result["sql"], result["seconds"]


def logistic_pipeline(conn: sqlml.Connection, model) -> Pipeline:
    """The logistic regression sqlml fitted, behind scikit-learn's version of its preprocessing (fitted on the
    same rows: population standard deviations; categories sorted, unseen ones all zeros)."""
    rows = conn.duckdb.sql(f"SELECT * FROM data LIMIT {TRAINING_ROWS}").df()
    categories = [c["categories"] for c in model.preprocessor.columns if c["name"] in STRINGS]
    encode = ColumnTransformer([("num", StandardScaler(), NUMBERS),
                                ("cat", OneHotEncoder(categories=categories, handle_unknown="ignore"), STRINGS)])
    return Pipeline([("encode", encode.fit(rows)), ("model", model.estimator)])


def boosted_numbers(conn: sqlml.Connection, model) -> tuple[Pipeline, object]:
    """A GradientBoostingClassifier of 100 trees of depth 6 on the numbers, and the same estimator as a
    sqlml model compiles it (its preprocessing reduced to the numbers, which hold no NULLs)."""
    rows = conn.duckdb.sql(f"SELECT * FROM data USING SAMPLE {TRAINING_ROWS // 5} ROWS (reservoir, 1)").fetchnumpy()
    X = np.column_stack([rows[n] for n in NUMBERS])
    estimator = GradientBoostingClassifier(n_estimators=100, max_depth=6, random_state=1).fit(X, rows["label"])
    numbers = Preprocessor("ordinal", False, [c for c in model.preprocessor.columns if c["name"] in NUMBERS])
    schema = [c for c in model.info.input_schema if c["name"] in NUMBERS]
    compiled = dataclasses.replace(model, estimator=estimator, preprocessor=numbers,
                                   info=dataclasses.replace(model.info, input_schema=schema))
    return Pipeline([("model", estimator)]), compiled


def ctas(run_sql, sql: str):
    return lambda: run_sql(f"CREATE OR REPLACE TABLE scored AS {sql}")


def report(title: str, rows: int, times: dict[str, float], peer: str, generated: dict[str, float]) -> None:
    print(f"{title} — {rows:,} rows written to a table (best of the rounds; ratio to {peer})")
    for name, seconds in times.items():
        extra = f"   SQL generated in {generated[name]:.2f}s" if name in generated else ""
        print(f"  {name:58s} {seconds:7.2f}s  {seconds / times[peer]:5.2f}x{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--orbital-python", default="/work/venv-orbital/bin/python")
    args = parser.parse_args()
    with sqlml.connect(progress=lambda message: None) as conn:
        make_data(conn, args.rows)
        columns = conn.duckdb.sql("SELECT * FROM data").columns
        for name, options in MODELS.items():
            conn.sql(f"CREATE OR REPLACE MODEL {name} OPTIONS ({options}, random_seed = 1, "
                     f"data_split_method = 'NO_SPLIT') AS SELECT * FROM data LIMIT {TRAINING_ROWS}")
            model = conn.executor.load(name)
            compiled, generation = generation_seconds(model, args.repeat, columns)
            conn.sql(f"CREATE OR REPLACE VIEW lazy AS SELECT * FROM ML.PREDICT(MODEL {name}, TABLE data)")
            forms = {"eager ML.PREDICT (CREATE TABLE AS SELECT * FROM ML.PREDICT)":
                     ctas(conn.sql, f"SELECT * FROM ML.PREDICT(MODEL {name}, TABLE data)"),
                     "view over ML.PREDICT (Arrow UDF)": ctas(conn.duckdb.sql, "SELECT * FROM lazy"),
                     "compiled SQL (ML.GENERATE_SQL) in DuckDB": ctas(conn.duckdb.sql, compiled)}
            generated = {"compiled SQL (ML.GENERATE_SQL) in DuckDB": generation}
            if name == "logistic_reg":
                found = orbital_sql(args.orbital_python, logistic_pipeline(conn, model), NUMBERS, STRINGS)
                if isinstance(found, str):
                    print(f"  orbital: {found}")
                else:
                    forms["orbital's SQL, same fitted logistic regression"] = ctas(conn.duckdb.sql, found[0])
                    generated["orbital's SQL, same fitted logistic regression"] = found[1]
            times = best_of(args.repeat, **forms)
            report(name, args.rows, times, next(iter(forms)), generated)
            if name == "boosted_tree_100":
                bench_gradient_boosting(conn, model, args, columns)


def bench_gradient_boosting(conn: sqlml.Connection, model, args: argparse.Namespace, columns: list[str]) -> None:
    """The same 100 trees of depth 6 compiled by sqlml and by orbital (which reads none of sqlml's boosted trees)."""
    pipeline, compiled_model = boosted_numbers(conn, model)
    compiled, generation = generation_seconds(compiled_model, args.repeat, columns)
    forms = {"sqlml's compiled SQL": ctas(conn.duckdb.sql, compiled)}
    generated = {"sqlml's compiled SQL": generation}
    found = orbital_sql(args.orbital_python, pipeline, NUMBERS, [])
    if isinstance(found, str):
        print(f"  orbital: {found}")
    else:
        forms["orbital's SQL"] = ctas(conn.duckdb.sql, found[0])
        generated["orbital's SQL"] = found[1]
        agree(conn, compiled_model, found[0], pipeline)
    report("GradientBoostingClassifier, 100 trees of depth 6, on the 10 numbers", args.rows,
           best_of(args.repeat, **forms), "sqlml's compiled SQL", generated)


def agree(conn: sqlml.Connection, compiled_model, orbital: str, pipeline: Pipeline) -> None:
    """How far each SQL's positive-class probability is from scikit-learn's on 10,000 rows (a table of its
    own: DuckDB keeps a table's row order through a projection)."""
    conn.duckdb.sql("CREATE OR REPLACE TABLE probe AS SELECT * FROM data LIMIT 10000")
    rows = conn.duckdb.sql("SELECT * FROM probe").fetchnumpy()
    truth = pipeline.predict_proba(np.column_stack([rows[n] for n in NUMBERS]))[:, 1]
    ours = conn.duckdb.sql(f"SELECT predicted_label_probs[2].prob AS p FROM "
                           f"({generate_sql(compiled_model, 'duckdb', 'probe')})").fetchnumpy()["p"]
    on_probe = sqlglot.parse_one(orbital, read="duckdb").transform(
        lambda n: exp.Table(this=exp.to_identifier("probe"), alias=n.args.get("alias"))
        if isinstance(n, exp.Table) and n.name == "data" else n)
    theirs = conn.duckdb.sql(on_probe.sql("duckdb")).fetchnumpy()
    column = next(c for c in theirs if "prob" in c and c.endswith("1"))
    print(f"  largest |probability − scikit-learn's| over 10,000 rows: sqlml {np.max(np.abs(ours - truth)):.1e}, "
          f"orbital {np.max(np.abs(theirs[column] - truth)):.1e}")


if __name__ == "__main__":
    main()
