"""Peak memory of CREATE MODEL, as a ratio to the feature matrix it fits on.

    python benchmarks/memory_training.py [--rows 2000000] [--models logistic_reg ...]

Each model trains in a fresh child process on a DuckDB table of ``rows`` × (10 floats + 2 strings of
20 levels) and a 0/1 label. The child's peak RSS is reset (``/proc/self/clear_refs``) after the table
exists, so ``peak_growth_mb`` is what CREATE MODEL itself adds: the rows read into Python, the matrix,
the fit, evaluation and storing. ``matrix_mb`` is the matrix's own bytes (dense float64 or, for forests, float32; or CSR data +
indices + indptr where logistic regression fits on CSR; for boosted trees, which CREATE MODEL never
builds, the dense float64 matrix they would have). ``sklearn_mb`` is the growth of the same
estimator's ``fit`` alone on that matrix already in memory (the library's own working memory: XGBoost's
quantile matrix, gradients and trees, the buffers of lbfgs, of a forest's trees or of an MLP), measured
in another child; ``without_fit_ratio`` is the peak growth less that, over the matrix.
Options keep each fit short; the memory of reading and encoding does not depend on them.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys

import numpy as np

MODELS = {
    "logistic_reg": "model_type = 'logistic_reg', max_iterations = 20",
    "boosted_tree_classifier": "model_type = 'boosted_tree_classifier', max_iterations = 5, max_tree_depth = 4, "
                               "early_stop = FALSE",
    "random_forest_classifier": "model_type = 'random_forest_classifier', num_parallel_tree = 2, max_tree_depth = 6",
    "dnn_classifier": "model_type = 'dnn_classifier', hidden_units = [16], max_iterations = 2, early_stop = FALSE",
}
MIB = 2**20


def table_sql(rows: int) -> str:
    """The benchmark table: 10 uniform floats, 2 strings of 20 levels, and a label that depends on them."""
    floats = ", ".join(f"hash(i * 13 + {j}) % 1000000 / 1e6 AS f{j}" for j in range(10))
    return (f"CREATE TABLE big AS SELECT {floats}, 'level_' || (hash(i * 7) % 20) AS s0, "
            f"'kind_' || (hash(i * 11) % 20) AS s1, "
            f"CAST((hash(i * 13) % 1000000 / 1e6) + (hash(i * 13 + 1) % 1000000 / 1e6) "
            f"+ (hash(i * 17) % 1000) / 2000.0 > 1.25 AS INTEGER) AS label FROM range({rows}) t(i)")


def _status(field: str) -> int:
    """A ``VmRSS`` / ``VmHWM`` line of /proc/self/status, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> int:
    """Reset the kernel's peak-RSS counter of this process; return the RSS now."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS")


def _matrix_bytes(model, rows: int) -> int:
    """Bytes of the matrix CREATE MODEL fits ``model`` on (the layout :func:`training_matrix` builds)."""
    prep = model.preprocessor
    if model.kind.sparse_fit and prep.sparse_pays():
        per_row = len(prep.columns)
        index = 4 if rows * per_row < 2**31 else 8
        return rows * per_row * (8 + index) + (rows + 1) * index
    return rows * sum(prep.width(c) for c in prep.columns) * np.dtype(model.kind.matrix_dtype).itemsize


def child(model_type: str, rows: int) -> dict:
    """CREATE MODEL in this (fresh) process: peak growth and matrix size, in MiB."""
    os.environ.setdefault("SQLML_SECRET_KEY", "benchmark-key-0123456789abcdef-0123456789")
    import sqlml
    conn = sqlml.connect(progress=lambda message: None)
    conn.sql(table_sql(rows))
    start = _reset_peak()
    conn.sql(f"CREATE MODEL m OPTIONS ({MODELS[model_type]}, input_label_cols = ['label'], deploy = 'always') "
             "AS SELECT * FROM big")
    peak = _status("VmHWM") - start
    model = conn.executor.load("m")
    matrix = _matrix_bytes(model, model.info.training_rows)
    return {"model_type": model_type, "matrix_mb": matrix / MIB, "peak_growth_mb": peak / MIB,
            "ratio": peak / matrix}


def child_fit_only(model_type: str, rows: int) -> dict:
    """The growth of the estimator's own ``fit`` on the matrix already in memory (scikit-learn's share)."""
    os.environ.setdefault("SQLML_SECRET_KEY", "benchmark-key-0123456789abcdef-0123456789")
    import duckdb

    from sqlml.model.kinds import MODEL_KINDS, build_estimator
    from sqlml.model.preprocess import Preprocessor, encode_categories
    from sqlml.train import matrix
    con = duckdb.connect()
    con.sql(table_sql(rows))
    table = con.sql("SELECT * FROM big").to_arrow_table()
    options = _options(model_type)
    kind = MODEL_KINDS[model_type]
    features = [c for c in table.column_names if c != "label"]
    table = encode_categories(table, features)
    prep = Preprocessor.fit(table, features, kind.encoding, kind.standardize)
    X = matrix.training_matrix(prep, kind, table)
    X = X if not isinstance(X, np.ndarray) else X.astype(kind.matrix_dtype, order="K")  # as CREATE MODEL builds it
    y = table["label"].to_numpy()
    del table
    estimator = build_estimator(kind, options)
    start = _reset_peak()
    estimator.fit(X, y, categorical=prep.categorical_mask) if kind.xgboost else estimator.fit(X, y)
    return {"model_type": model_type, "sklearn_mb": (_status("VmHWM") - start) / MIB}


def _options(model_type: str) -> dict:
    """The validated model options of :data:`MODELS` (as CREATE MODEL passes them to the estimator)."""
    from sqlml.model import options as opts
    from sqlml.sql.parse import parse
    from sqlml.sql.plan import Planner
    from sqlml.train.tune import resolve_options
    step = Planner().plan(parse(f"CREATE MODEL m OPTIONS ({MODELS[model_type]}) AS SELECT 1")[0])
    _, checked = resolve_options(step.options)
    return {k: v for k, v in checked.items() if k in opts.OPTIONS}


def _run_child(kind: str, model_type: str, rows: int) -> dict:
    out = subprocess.run([sys.executable, __file__, f"--{kind}", model_type, "--rows", str(rows)],
                         check=True, capture_output=True, text=True, env={**os.environ})
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_training(rows: int = 2_000_000, models: list[str] | None = None, fit_only: bool = True) -> list[dict]:
    """Per model type: matrix_mb, peak_growth_mb and ratio (peak growth / matrix) of CREATE MODEL at
    ``rows`` rows, each measured in a fresh process; with ``fit_only`` also sklearn_mb (see the module)."""
    results = []
    for model_type in models or list(MODELS):
        row = _run_child("child", model_type, rows)
        if fit_only:
            row.update(_run_child("fit-only", model_type, rows))
            row["sklearn_ratio"] = row["sklearn_mb"] / row["matrix_mb"]
            row["without_fit_ratio"] = (row["peak_growth_mb"] - row["sklearn_mb"]) / row["matrix_mb"]
        results.append(row)
    return results


def print_table(results: list[dict]) -> None:
    print(f"{'model_type':26} {'matrix MiB':>10} {'peak growth MiB':>16} {'ratio':>6} {'fit alone MiB':>14} {'ratio':>6} "
          f"{'ratio without the fit':>22}")
    for r in results:
        fit = (f"{r['sklearn_mb']:14.0f} {r['sklearn_ratio']:6.2f} {r['without_fit_ratio']:22.2f}"
               if "sklearn_mb" in r else "")
        print(f"{r['model_type']:26} {r['matrix_mb']:10.0f} {r['peak_growth_mb']:16.0f} {r['ratio']:6.2f} {fit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--no-fit-only", action="store_true", help="skip measuring the estimator's fit alone")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--fit-only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rows)))
    elif args.fit_only:
        print(json.dumps(child_fit_only(args.fit_only, args.rows)))
    else:
        results = measure_training(args.rows, args.models, not args.no_fit_only)
        print(f"CREATE MODEL at {args.rows:,} rows × (10 floats + 2 strings):")
        print_table(results)


if __name__ == "__main__":
    main()
