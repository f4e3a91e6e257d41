"""The data checks of ML.DESCRIBE_DATA's ``findings`` and of CREATE MODEL before fitting.

    SELECT name, findings FROM ML.DESCRIBE_DATA((SELECT * FROM flights), STRUCT('is_late' AS label_col))

Per column, statistics (type, counts, null share, distinct count, numeric summary or top values) and
``findings``: problems that make a model fail or mislead, each saying why it matters and what to do.
BigQuery's output columns of ML.DESCRIBE_DATA are :mod:`sqlml.functions.describe`'s.

* constant column, nearly-all-NULL column (share ≥ ``MOSTLY_NULL_SHARE``);
* identifier-like column: a string or integer unique on every row (a model memorizes it);
* label imbalance (the same threshold as :mod:`sqlml.imbalance`);
* likely label leakage: one feature alone predicts the label almost perfectly on held-out rows
  (a depth-``LEAK_TREE_DEPTH`` tree for numbers, per-value label rates for other values, on at most
  ``LEAK_SAMPLE_ROWS`` sampled rows), or equals the label under another name.

Statistics are exact over all rows (Arrow kernels); only the leakage check samples.
"""

from __future__ import annotations

import typing as t

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.metrics import balanced_accuracy_score, r2_score, roc_auc_score
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from ..errors import DataError
from ..model.kinds import REGRESSION
from ..model.preprocess import (
    as_categories,
    category_counts,
    category_indices,
    to_float64,
)
from . import imbalance
from .labels import label_task

MOSTLY_NULL_SHARE = 0.95
IDENTIFIER_MIN_ROWS = 50  # below this, unique values are common and say little
TOP_VALUES = 5
LEAK_SAMPLE_ROWS = 20_000
LEAK_TREE_DEPTH = 3
#: A single feature scoring at least this on held-out rows is almost certainly leaking the label.
LEAK_SCORE = {"binary": 0.99, "multiclass": 0.99, "regression": 0.98}
MAX_CLASSES = 50  # an integer label with more distinct values than this is checked as a regression target
FINDING = pa.struct([("check", pa.string()), ("message", pa.string())])


def _value_type(dtype: pa.DataType) -> pa.DataType:
    return dtype.value_type if pa.types.is_dictionary(dtype) else dtype


def _numeric(dtype: pa.DataType) -> bool:
    dtype = _value_type(dtype)
    return pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype)


def column_stats(column: pa.ChunkedArray, name: str, float_distincts: bool = True) -> dict:
    """The per-column statistics of ML.DESCRIBE_DATA (stddev is the sample one, like pandas).
    Without ``float_distincts`` a floating column's distinct count is left NULL: hashing every double
    is the costliest statistic, and no check needs it (min = max tells a constant)."""
    rows, nulls = len(column), column.null_count
    floating = pa.types.is_floating(_value_type(column.type))
    row = {"column_name": name, "data_type": str(_value_type(column.type)), "row_count": rows, "null_count": nulls,
           "null_share": nulls / rows if rows else None,
           "distinct_count": pc.count_distinct(column, mode="only_valid").as_py()
           if _numeric(column.type) and (float_distincts or not floating) else None,
           "min": None, "max": None, "mean": None, "stddev": None, "top_values": [], "findings": []}
    if _numeric(column.type):
        values = to_float64(column)
        bounds = pc.min_max(values).as_py()
        row.update(min=bounds["min"], max=bounds["max"], mean=pc.mean(values).as_py(),
                   stddev=pc.stddev(values, ddof=1).as_py())
    else:
        ranked = sorted(((v, n) for v, n in category_counts(column) if v is not None), key=lambda vc: (-vc[1], vc[0]))
        row["distinct_count"] = len(ranked)
        row["top_values"] = [{"value": value, "count": count} for value, count in ranked[:TOP_VALUES]]
    return row


def column_findings(row: dict, is_label: bool) -> list[dict]:
    """Constant, mostly-NULL and identifier-like findings for one column's statistics."""
    found, name = [], row["column_name"]
    present = row["row_count"] - row["null_count"]
    if row["null_share"] is not None and row["null_share"] >= MOSTLY_NULL_SHARE and not is_label:
        found.append({"check": "mostly_null", "message": (
            f"'{name}' is NULL on {row['null_share']:.1%} of rows: the model learns mostly the imputed value, "
            "and the column hides how rows differ. Drop it, or replace it with a flag such as "
            f"{name} IS NOT NULL AS has_{name}.")})
    if not varies(row) and not is_label:
        found.append({"check": "constant", "message": (
            f"'{name}' has {'one value' if present else 'no values'} on every non-NULL row: it "
            "cannot help any model and makes standardization divide by zero. Drop it from the query.")})
    identifier_type = row["data_type"] in ("string", "large_string", "string_view") \
        or row["data_type"].startswith(("int", "uint"))
    if (not is_label and identifier_type and present >= IDENTIFIER_MIN_ROWS
            and row["distinct_count"] == present):
        found.append({"check": "identifier", "message": (
            f"'{name}' is unique on every row, like an identifier: a model memorizes it and learns nothing that "
            f"carries over to new rows. Leave it out of the features (SELECT * EXCLUDE ({name}), or list the "
            "features in TRANSFORM), or derive real features from it.")})
    return found


def varies(row: dict) -> bool:
    """Whether a column takes more than one value on its non-NULL rows."""
    if row["distinct_count"] is not None:
        return row["distinct_count"] > 1
    return row["min"] is not None and row["min"] != row["max"]


def check_task(column: pa.ChunkedArray, distinct: int) -> str:
    """'binary', 'multiclass' or 'regression': :func:`~sqlml.train.labels.label_task`, with classes split by count."""
    if label_task(column, MAX_CLASSES) == REGRESSION:
        return "regression"
    return "binary" if distinct == 2 else "multiclass"


def imbalance_finding(column: pa.ChunkedArray, label: str) -> dict | None:
    """The label-imbalance finding, with :mod:`sqlml.imbalance`'s threshold."""
    counts = pc.value_counts(column.drop_null()).to_pylist()
    if len(counts) < 2:
        return None
    classes = [vc["values"] for vc in counts]
    y = np.repeat(np.arange(len(counts)), [vc["counts"] for vc in counts])
    message = imbalance.imbalance_warning(y, classes, label)
    return {"check": "label_imbalance", "message": message.removeprefix("Warning: ")} if message else None


def leakage_findings(table: pa.Table, label: str, features: list[str], task: str, seed: int = 0) -> dict[str, dict]:
    """Features that alone predict the label almost perfectly on held-out rows, by name."""
    labelled = np.flatnonzero(pc.is_valid(table[label])) if table[label].null_count else np.arange(table.num_rows)
    if len(labelled) < 20:
        return {}
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(labelled, min(len(labelled), LEAK_SAMPLE_ROWS), replace=False))
    sample = table.take(pa.array(rows))  # only the sampled rows are copied, in table order (a faster take)
    fitting = np.zeros(sample.num_rows, dtype=bool)  # a random half to learn from, the rest to score on
    fitting[rng.permutation(sample.num_rows)[: sample.num_rows // 2]] = True
    y = _label_values(sample[label], task)
    found = {}
    for name in features:
        column = sample[name]
        if _identical(column, sample[label]):
            found[name] = {"check": "label_leakage", "message": (
                f"'{name}' equals the label '{label}' on every sampled row: it is the label under another name. "
                "Remove it from the features.")}
            continue
        score = _single_feature_score(column, y, fitting, task)
        if score is not None and score >= LEAK_SCORE[task]:
            metric = {"binary": "ROC AUC", "multiclass": "balanced accuracy", "regression": "R²"}[task]
            found[name] = {"check": "label_leakage", "message": (
                f"'{name}' alone predicts the label '{label}' with {metric} {score:.3f} on held-out rows: it probably "
                "leaks the answer (computed from the label, or known only after it). A model using it looks "
                "excellent in evaluation and fails in production. Remove it unless it is truly known at "
                "prediction time.")}
    return found


def _label_values(column: pa.ChunkedArray, task: str) -> np.ndarray:
    if task == "regression":
        return to_float64(column).to_numpy()
    return _value_codes(column)


def _identical(column: pa.ChunkedArray, label: pa.ChunkedArray) -> bool:
    as_type = pa.float64() if _numeric(column.type) and _numeric(label.type) else pa.string()
    try:
        equal = pc.equal(pc.cast(column, as_type, safe=False), pc.cast(label, as_type, safe=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return bool(pc.all(pc.fill_null(equal, False)).as_py())


def _single_feature_score(column: pa.ChunkedArray, y: np.ndarray, fitting: np.ndarray, task: str) -> float | None:
    """How well this one feature predicts ``y`` on the held-out rows when learned on the ``fitting`` rows:
    numbers through a depth-``LEAK_TREE_DEPTH`` tree (it places its thresholds where the label changes),
    other values through the label's mean or class shares per value."""
    if not _numeric(column.type):
        return _score(y[~fitting], _learned_per_value(_value_codes(column), y, fitting, task), task)
    x = to_float64(column).to_numpy(zero_copy_only=False).astype(float)[:, None]
    x[~np.isfinite(x)] = np.nan  # infinity is refused later, by name, by the preprocessing
    model = (DecisionTreeRegressor if task == "regression" else DecisionTreeClassifier)(
        max_depth=LEAK_TREE_DEPTH, random_state=0).fit(x[fitting], y[fitting])
    if task == "regression":  # a rescaled copy of the label needs more than a shallow tree's steps
        r2 = _score(y[~fitting], model.predict(x[~fitting]), task)
        return max(r2, _squared_correlation(x[:, 0], y)) if r2 is not None else None
    proba = np.zeros((int((~fitting).sum()), int(y.max()) + 1))
    proba[:, model.classes_] = model.predict_proba(x[~fitting])
    return _score(y[~fitting], proba, task)


def _value_codes(column: pa.ChunkedArray) -> np.ndarray:
    """Each row's index among the column's distinct values (NULL last)."""
    return category_indices(as_categories(column)).astype(np.int64)


def _learned_per_value(codes: np.ndarray, y: np.ndarray, fitting: np.ndarray, task: str) -> np.ndarray:
    """For each held-out row, the label's mean (regression) or class shares on the fitting rows with the
    same value code; a value unseen there gets the fitting rows' overall figure."""
    targets = y[:, None].astype(float) if task == "regression" else np.eye(int(y.max()) + 1)[y]
    width = int(codes.max()) + 1
    learned_codes = codes[fitting]
    counts = np.bincount(learned_codes, minlength=width)[:, None]
    sums = np.stack([np.bincount(learned_codes, weights=targets[fitting, j], minlength=width)
                     for j in range(targets.shape[1])], axis=1)
    per_code = np.where(counts > 0, sums / np.maximum(counts, 1), targets[fitting].mean(axis=0))[codes[~fitting]]
    return per_code[:, 0] if task == "regression" else per_code


def _squared_correlation(x: np.ndarray, y: np.ndarray) -> float:
    present = np.isfinite(x)
    if present.sum() < 3 or np.ptp(x[present]) == 0:
        return 0.0
    return float(np.corrcoef(x[present], y[present])[0, 1] ** 2)


def _score(y: np.ndarray, prediction: np.ndarray, task: str) -> float | None:
    if task == "regression":
        return float(r2_score(y, prediction)) if np.ptp(y) > 0 else None
    if task == "binary":
        return float(roc_auc_score(y, prediction[:, 1])) if len(np.unique(y)) == 2 else None
    return float(balanced_accuracy_score(y, prediction.argmax(axis=1)))


def describe(table: pa.Table, label: str | None = None, skip: t.Iterable[str] = (),
             float_distincts: bool = True) -> list[dict]:
    """ML.DESCRIBE_DATA rows for ``table``: statistics and findings per column."""
    if label is not None and label not in table.column_names:
        raise DataError(f"label_col '{label}' is not a column of the data. Columns: {', '.join(table.column_names)}.")
    rows = [column_stats(table[name], name, float_distincts or name == label) for name in table.column_names]
    for row in rows:
        row["findings"] = column_findings(row, row["column_name"] == label)
    if label is None:
        return rows
    label_row = next(r for r in rows if r["column_name"] == label)
    task = check_task(table[label], label_row["distinct_count"])
    if task != "regression":
        finding = imbalance_finding(table[label], label)
        label_row["findings"] += [finding] if finding else []
    features = [r["column_name"] for r in rows if r["column_name"] != label and r["column_name"] not in set(skip)
                and varies(r)]
    leaks = leakage_findings(table, label, features, task) if varies(label_row) else {}
    for row in rows:
        if row["column_name"] in leaks:
            row["findings"].append(leaks[row["column_name"]])
    return rows


def training_findings(table: pa.Table, label: str | None, skip: t.Iterable[str]) -> tuple[list[str], list[dict]]:
    """CREATE MODEL's data checks: the findings of :func:`describe` as warning messages, and the statistics
    rows they came from (ML.FEATURE_INFO reuses them). ``skip`` (the split and weight columns) are described
    but not checked. The label's imbalance is left to :mod:`sqlml.imbalance`, which already warns (and knows
    about weights)."""
    skip = set(skip)
    rows = describe(table, label, skip=skip, float_distincts=False)
    return [f["message"] for r in rows if r["column_name"] not in skip
            for f in r["findings"] if f["check"] != "label_imbalance"], rows
