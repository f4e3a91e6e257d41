"""Imbalanced classes at training time: class and instance weights, resampling, and a warning.

Everything here acts on the *training split's* encoded matrix, after the evaluation rows were set
aside, so evaluation always measures the model on the data as it really is.

==========================  ===================================================================
option                      effect on the training split
==========================  ===================================================================
auto_class_weights = TRUE   ``sample_weight`` = scikit-learn's ``compute_sample_weight('balanced')``
class_weights = [...]       ``sample_weight`` = the listed weight of each row's class
instance_weight_col = 'w'   ``sample_weight`` = column ``w`` (which is then not a feature)
sampling = 'oversample'     imbalanced-learn ``RandomOverSampler``
sampling = 'undersample'    imbalanced-learn ``RandomUnderSampler``
sampling = 'smote'          imbalanced-learn ``SMOTE`` (``SMOTENC`` when trees see categories)
==========================  ===================================================================
"""

from __future__ import annotations

import math
import typing as t

import numpy as np
import pyarrow as pa
from sklearn.utils.class_weight import compute_sample_weight

from ..errors import DataError, OptionError
from ..model.preprocess import as_float, column_kind

#: Warn when the rarest class holds under this share of a binary label's training rows. With k
#: classes the bar scales with the balanced share: warn when the rarest class has under
#: ``2 * MINORITY_SHARE_WARNING / k`` of the rows (a fifth of what a balanced label would give it).
MINORITY_SHARE_WARNING = 0.10
WEIGHT_OPTIONS = ("auto_class_weights", "class_weights", "instance_weight_col")
IMBALANCE_OPTIONS = WEIGHT_OPTIONS + ("sampling",)


def check_options(options: dict) -> None:
    """Rules between options that no single option's type can express (checked before any data is read)."""
    if options.get("auto_class_weights") and "class_weights" in options:
        raise OptionError("auto_class_weights = TRUE and class_weights cannot both be set: "
                          "choose automatic (inverse-frequency) weights or list them yourself.")
    if "instance_weight_col" in options and (options.get("auto_class_weights") or "class_weights" in options):
        raise OptionError("instance_weight_col cannot be combined with auto_class_weights or class_weights; "
                          "fold the class weight into the weight column instead.")
    if "sampling_ratio" in options and "sampling" not in options:
        raise OptionError("sampling_ratio needs sampling = 'oversample', 'undersample' or 'smote'.")
    weighted = [name for name in WEIGHT_OPTIONS if options.get(name) not in (None, False)]
    if "sampling" in options and weighted:
        raise OptionError(f"sampling cannot be combined with {', '.join(weighted)}: both correct the same "
                          "imbalance, and together they over-correct. Use one of them.")
    for label, weight in options.get("class_weights", []):
        if not (math.isfinite(weight) and weight > 0):
            raise OptionError(f"class_weights must be positive numbers; the weight of {label!r} is {weight:g}.")


def prepare(options: dict, classes: list | None, label: str | None, train_rows: pa.Table, X: np.ndarray,
            y: np.ndarray, categorical: list[bool], progress: t.Callable[[str], None]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[str]]:
    """The training matrix, labels and sample weights to fit on, plus notes for ML.TRAINING_INFO."""
    notes: list[str] = []
    weights = None
    if "instance_weight_col" in options:
        weights = instance_weights(train_rows, options["instance_weight_col"])
    if classes is None:
        return X, y, weights, notes
    if options.get("auto_class_weights"):
        weights = compute_sample_weight("balanced", y)
        notes.append("auto_class_weights: " + _describe_weights(classes, y, weights))
    elif "class_weights" in options:
        weights = class_weight_vector(options["class_weights"], classes, label)[y]
        notes.append("class_weights: " + _describe_weights(classes, y, weights))
    if "sampling" in options:
        before = len(y)
        X, y = resample(X, y, options["sampling"], options.get("sampling_ratio", 1.0),
                        options.get("random_seed"), categorical)
        notes.append(f"sampling = '{options['sampling']}': {before:,} → {len(y):,} training rows; rows per class "
                     + ", ".join(f"{c}: {n:,}" for c, n in zip(classes, np.bincount(y, minlength=len(classes)))))
    if not any(name in options for name in IMBALANCE_OPTIONS):
        warning = imbalance_warning(y, classes, label)
        if warning:
            notes.append(warning)
    for note in notes:
        progress(note)
    return X, y, weights, notes


def imbalance_warning(y: np.ndarray, classes: list, label: str) -> str | None:
    """A warning when the rarest class is too rare for accuracy to mean much, else None."""
    counts = np.bincount(y, minlength=len(classes))
    rarest = int(counts.argmin())
    share = counts[rarest] / counts.sum()
    if share >= 2 * MINORITY_SHARE_WARNING / len(classes):
        return None
    return (f"Warning: the label '{label}' is imbalanced: class {classes[rarest]!r} is only {share:.1%} of the "
            f"training rows ({counts[rarest]:,} of {counts.sum():,}), so always predicting the majority already "
            "scores high accuracy. Consider auto_class_weights = TRUE, class_weights, or sampling = "
            "'oversample' | 'undersample' | 'smote', and judge the model by recall, pr_auc and ML.THRESHOLD_METRICS.")


def class_weight_vector(spec: list, classes: list, label: str) -> np.ndarray:
    """The weight of each class index from [[label, weight], ...], which must name every class once."""
    weights: dict[int, float] = {}
    for value, weight in spec:
        index = _match_class(value, classes)
        if index is None:
            raise OptionError(f"class_weights names {value!r}, which is not a class of the label '{label}'. "
                              f"Its classes are: {', '.join(repr(c) for c in classes)}.")
        if index in weights:
            raise OptionError(f"class_weights gives the class {classes[index]!r} twice.")
        weights[index] = weight
    missing = [repr(c) for i, c in enumerate(classes) if i not in weights]
    if missing:
        raise OptionError(f"class_weights must give a weight for every class of the label '{label}'; "
                          f"missing: {', '.join(missing)}.")
    return np.array([weights[i] for i in range(len(classes))])


def _match_class(value: t.Any, classes: list) -> int | None:
    """Index of the class ``value`` names: 'true' or TRUE for a boolean label, 1 or '1' for an integer one."""
    for index, cls in enumerate(classes):
        if isinstance(cls, bool):
            if (value is cls) or (isinstance(value, str) and value.strip().lower() == str(cls).lower()):
                return index
        elif isinstance(cls, (int, float)):
            try:
                number = float(value) if not isinstance(value, bool) else None
            except ValueError:
                number = None
            if number == cls:
                return index
        elif isinstance(value, str) and value == cls:
            return index
    return None


def instance_weights(rows: pa.Table, column: str) -> np.ndarray:
    """Per-row weights from a numeric column: present, finite and non-negative, not all zero."""
    if column not in rows.column_names:
        raise DataError(f"instance_weight_col '{column}' is not a column of the training query. "
                        f"Columns: {', '.join(rows.column_names)}.")
    if column_kind(column, rows.schema.field(column).type) != "numeric":
        raise DataError(f"instance_weight_col '{column}' must be numeric; it is {rows.schema.field(column).type}.")
    values = as_float(rows, column)
    if values.null_count:
        raise DataError(f"instance_weight_col '{column}' is NULL in {values.null_count:,} training rows; "
                        "give every row a weight (e.g. COALESCE(w, 1.0)).")
    weights = values.to_numpy()
    if (weights < 0).any() or not weights.sum() > 0:
        raise DataError(f"instance_weight_col '{column}' must hold non-negative weights, not all zero.")
    return weights


def resample(X: np.ndarray, y: np.ndarray, method: str, ratio: float, seed: int | None,
             categorical: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Rebalance the training rows with imbalanced-learn so minority/majority reaches ``ratio``."""
    from imblearn.over_sampling import SMOTE, SMOTENC, RandomOverSampler
    from imblearn.under_sampling import RandomUnderSampler

    counts = {int(c): int(n) for c, n in zip(*np.unique(y, return_counts=True))}
    if len(counts) < 2:
        raise DataError("Resampling needs at least two classes in the training split.")
    if method == "undersample":
        return RandomUnderSampler(sampling_strategy=_targets(counts, method, ratio), random_state=seed).fit_resample(X, y)
    if method == "oversample":
        return RandomOverSampler(sampling_strategy=_targets(counts, method, ratio), random_state=seed).fit_resample(X, y)
    neighbours = min(5, min(counts.values()) - 1)
    if neighbours < 1:
        raise DataError("sampling = 'smote' needs at least two training rows of every class; "
                        f"rows per class: {counts}. Use sampling = 'oversample' instead.")
    strategy = _targets(counts, method, ratio)
    columns = np.flatnonzero(categorical) if len(categorical) == X.shape[1] else np.array([], dtype=int)
    if not len(columns):
        return SMOTE(sampling_strategy=strategy, k_neighbors=neighbours, random_state=seed).fit_resample(X, y)
    # SMOTENC keeps tree models' ordinal category codes whole; it rejects NaN, used for unseen codes.
    X = X.copy()
    block = X[:, columns]
    block[np.isnan(block)] = -1
    X[:, columns] = block
    X, y = SMOTENC(categorical_features=columns.tolist(), sampling_strategy=strategy, k_neighbors=neighbours,
                   random_state=seed).fit_resample(X, y)
    block = X[:, columns]
    block[block == -1] = np.nan
    X[:, columns] = block
    return X, y


def _targets(counts: dict[int, int], method: str, ratio: float) -> dict[int, int]:
    """Rows per class after resampling. Over-sampling lifts every class to at least ``ratio`` × the
    largest; under-sampling cuts every class to at most the smallest ÷ ``ratio``."""
    if method == "undersample":
        cap = max(1, math.floor(min(counts.values()) / ratio))
        return {c: min(n, cap) for c, n in counts.items()}
    floor = math.ceil(ratio * max(counts.values()))
    return {c: max(n, floor) for c, n in counts.items()}


def _describe_weights(classes: list, y: np.ndarray, weights: np.ndarray) -> str:
    per_class = {}
    for code in np.unique(y):
        per_class[classes[code]] = float(weights[np.argmax(y == code)])
    return ", ".join(f"{c}: {w:.4g}" for c, w in per_class.items())
