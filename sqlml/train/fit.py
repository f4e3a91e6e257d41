"""CREATE MODEL: read the query as Arrow, split, preprocess, fit, measure, and package a version.

Nothing here writes to the database; the caller stores the returned row in one transaction.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
import typing as t
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import sklearn
from sklearn.exceptions import ConvergenceWarning

from ..errors import DataError, OptionError
from ..model import baseline as baselines
from ..model import cbpe, drift, envelope, explain, metrics
from ..model import options as opts
from ..model.kinds import (
    CLASSIFICATION,
    KMEANS,
    MODEL_KINDS,
    PCA,
    ModelKind,
    build_estimator,
)
from ..model.loaded import LABEL_TYPES, LoadedModel, label_type_name
from ..model.preprocess import (
    Preprocessor,
    as_float,
    check_unique_names,
    column_kind,
    encode_categories,
    to_float64,
)
from ..model.version import ModelVersion
from ..sql.transform import annotate_schema
from . import centroids, checks, imbalance, matrix, reading, resources, stopping
from . import sample as sampling
from .labels import column_name, label_codes, label_of, prepare_label
from .split import Split, rows_at, split_rows


def resolve_options(raw: dict) -> tuple[ModelKind, dict]:
    """Validate CREATE MODEL options and return the model kind with the checked options."""
    model_type = raw.get("model_type")
    if model_type is None:
        raise OptionError(f"OPTIONS must name a model_type: one of {', '.join(MODEL_KINDS)}.")
    if not isinstance(model_type, str) or model_type.lower() not in MODEL_KINDS:
        import difflib
        close = difflib.get_close_matches(str(model_type).lower(), MODEL_KINDS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise OptionError(f"Unknown model_type {model_type!r}.{hint} Valid model types are: {', '.join(MODEL_KINDS)}.")
    kind = MODEL_KINDS[model_type.lower()]
    checked = opts.validate({**raw, "model_type": kind.name}, kind.name)
    method = checked.get("data_split_method", "AUTO_SPLIT")
    if method in ("SEQ", "CUSTOM") and "data_split_col" not in checked:
        raise OptionError(f"data_split_method '{method}' needs data_split_col.")
    if "input_label_cols" in checked and len(checked["input_label_cols"]) != 1:
        raise OptionError("input_label_cols must name exactly one column.")
    imbalance.check_options(checked)
    return kind, checked


def train(rows: reading.Rows | pa.Table, raw_options: dict, name: str, query: str,
          progress: t.Callable[[str], None] = print, split: Split | None = None, transform: dict | None = None,
          profile: DataProfile | None = None, training_stats: dict | None = None) -> dict:
    """Train a model on ``rows`` and return the registry row to store (model bytes included). Given as
    :class:`~sqlml.train.reading.Rows`, the table is taken from it so that its rows are freed as the
    matrix is built. ``split`` (row indices of a table with no NULL label) overrides the options' split:
    tuning trials fit on the training split less a validation part (:mod:`sqlml.train.tune`). ``transform`` is the fitted
    TRANSFORM clause (:mod:`sqlml.sql.transform`) that made the rows; it is stored in the model header.
    ``profile``: the data checks and column statistics when already known (tuning runs them once, not per trial).
    ``training_stats``: the raw columns' drift statistics (:mod:`sqlml.model.drift`) of a model with TRANSFORM,
    whose rows hold transformed columns; else they are computed here over the training split."""
    started = time.perf_counter()  # ML.TRAINING_INFO's duration covers preprocessing, resampling and the fit
    kind, options = resolve_options(raw_options)
    table, held = reading.unwrap(rows)
    schema = held.schema if held else table.schema  # the query's own types (text before any encoding)
    check_unique_names(table.column_names, "training query")
    for named in ("data_split_col", "kmeans_init_col"):  # named as the query spells it from here on
        if options.get(named):
            options = {**options, named: column_name(table, options[named], named)}
    if table.num_rows == 0:
        raise DataError("The training query returned zero rows.")
    label = label_of(kind, options)
    classes = None
    if kind.supervised:
        table, classes = prepare_label(table, label, kind)
    split = split or (held and held.split) or split_rows(table, options, options.get("random_seed"))
    if split.fraction is not None:  # recorded: the deploy gate recomputes which rows this version held out
        options = {**options, "data_split_eval_fraction": split.fraction}
    split, data_notes = ((split, held.notes) if held and held.notes is not None
                         else sampling.limit_training_rows(split, table, label, classes, options))
    for note in data_notes:
        progress(note)
    features = feature_columns(table, label, options)
    input_schema = annotate_schema([{"name": f, "type": str(schema.field(f).type)} for f in features], transform)
    table = encode_categories(table, features)
    if len(split.train) == 0:
        raise DataError("The data split left zero training rows; lower data_split_eval_fraction.")
    train_rows, eval_rows = _side_and_eval_rows(table, split, features)
    if classes:
        check_classes_trained(train_rows[label], classes, label)

    # The data checks and ML.FEATURE_INFO's statistics read every column of the query's rows: they run in
    # a thread beside fitting the preprocessing and the drift statistics (Arrow kernels release the GIL),
    # and end before the matrix is built, which frees each batch of rows once it is written.
    with ThreadPoolExecutor(1, thread_name_prefix="sqlml-data-checks") as beside:
        profiling = beside.submit(_profile_beside_the_fit, table, label, options, features, profile, progress)
        preprocessor = matrix.fit_preprocessor(table, split.train, features, kind,
                                               options.get("standardize_features", options.get("scale_features", True)))
        training_stats = training_stats or drift.statistics(  # also while the checks run
            functools.partial(matrix.training_batches, table.select(features), split.train),
            drift.comparable(pa.schema([schema.field(f) for f in features])))
        profile = profiling.result()
    custom_centroids = centroids.marked_rows(table, split.train, options)
    label_type = label_type_name(table.schema.field(label).type) if label else "float"
    batches = table.select(features).to_batches()
    del table  # from here the feature columns are held by ``batches`` only (and by eval_rows when it is the table)
    matrix.release()  # what the data checks and the preprocessing's statistics freed
    estimator, X, y, target_scale, (fit_notes, losses) = _preprocess_and_fit(
        kind, options, name, preprocessor, batches, split.train, train_rows, label, classes, progress, custom_centroids)
    options = {**options, **kind.fitted_options(estimator)}  # what the fit decided (PCA's component count)
    duration = time.perf_counter() - started
    progress(f"Trained '{name}' in {duration:.1f} s ({len(split.train):,} rows).")
    header = {"model_type": kind.name, "preprocess": preprocessor.to_dict(), "classes": classes, "label_type": label_type,
              "target_scale": target_scale, "background": explain.background(X, kind.encoding), "transform": transform,
              "training_stats": training_stats}
    info = ModelVersion(name=name, version=0, model_type=kind.name, label=label, label_type=label_type,
                        options=options, input_schema=input_schema,
                        metrics={}, eval_tables={}, feature_info=[], training_info=[], library_versions={},
                        training_rows=len(split.train), eval_rows=0, query=query, created_at=None, fingerprint="")
    model = LoadedModel(info, kind, estimator, preprocessor, classes, LABEL_TYPES[label_type], target_scale)
    measured, eval_tables, scored = _measure(model, train_rows, eval_rows)
    # Stored beside the estimator: the CBPE calibrator, fitted on held-out rows only (sqlml.model.cbpe).
    parts = cbpe.parts(scored if split.eval is not None else None)
    # Boosted trees are stored in XGBoost's own format, beside (not inside) the skops bytes.
    blob = envelope.dumps(None, header, parts, estimator.raw_parts()) if kind.xgboost else \
        envelope.dumps(estimator, header, parts)
    info = dataclasses.replace(info, fingerprint=envelope.fingerprint(blob))
    row = registry_row(info, blob, eval_rows.num_rows, measured, eval_tables, profile.feature_info,
                       training_info(estimator, duration, fit_notes + data_notes + profile.notes, X, y, losses))
    # The rows the version was evaluated on, for the deploy gate to score the deployed version on too
    # (not stored: the executor takes it off the row), and what the blob holds, for tune.loaded to skip reading it.
    return {**row, "eval_data": eval_rows, "evaluated_on_training_rows": split.eval is None,
            "fitted": (estimator, json.loads(json.dumps(header)), parts or {})}


def _side_and_eval_rows(table: pa.Table, split: Split, features: list[str]) -> tuple[pa.Table, pa.Table]:
    """The label, split and weight columns of the training rows, and the evaluation rows: the only
    copies of rows made besides the matrix (none of the evaluation rows when they are all the rows)."""
    train_rows = rows_at(table.select([c for c in table.column_names if c not in features]), split.train)
    if split.eval is not None:
        return train_rows, table.take(split.eval)
    return train_rows, table if len(split.train) == table.num_rows else rows_at(table, split.train)


def _measure(model: LoadedModel, train_rows: pa.Table, eval_rows: pa.Table) -> tuple[dict, dict, metrics.Scored | None]:
    """ML.EVALUATE's metrics with the baseline's, the evaluation tables, and (classifiers) the scored
    evaluation rows, of a freshly fitted model."""
    scored = metrics.Scored.of(model, eval_rows) if model.kind.task == CLASSIFICATION else None  # once for all
    evaluation = metrics.evaluate(model, eval_rows, scored=scored)
    baseline = baselines.at_training(model, train_rows, eval_rows)
    return {**evaluation, **baseline}, evaluation_tables(model, eval_rows, scored), scored


def registry_row(info: ModelVersion, blob: bytes, eval_rows: int, measured: dict, eval_tables: dict,
                 feature_info: list[dict], training_info: list[dict]) -> dict:
    """The registry row of a new version (the registry numbers it and stamps its time)."""
    return {
        "name": info.name,
        "model_type": info.model_type,
        "label": info.label,
        "label_type": info.label_type,
        "options": info.options,
        "input_schema": info.input_schema,
        "training_rows": info.training_rows,
        "eval_rows": eval_rows,
        "metrics": measured,
        "eval_tables": eval_tables,
        "feature_info": feature_info,
        "training_info": training_info,
        "library_versions": {"sklearn": sklearn.__version__, "pyarrow": pa.__version__, "sqlml": _version(),
                             **_engine_version(info.model_type)},
        "query": info.query,
        "fingerprint": info.fingerprint,
        "model": blob,
    }


def _preprocess_and_fit(kind: ModelKind, options: dict, name: str, preprocessor: Preprocessor,
                        batches: list[pa.RecordBatch], train: np.ndarray, train_rows: pa.Table,
                        label: str | None, classes: list | None, progress: t.Callable[[str], None],
                        custom_centroids: tuple[str, pa.Table] | None = None) -> tuple:
    """Fit the estimator on the training rows ``train`` of ``batches`` (emptied as they are read), started
    at ``custom_centroids`` (:func:`sqlml.train.centroids.marked_rows`) for CUSTOM k-means. ``train_rows``:
    the label and weight columns of those rows. Boosted trees (XGBoost) read the batches block by block
    and never hold the whole matrix, unless resampling needs it; the others get the matrix, built once.
    Returns the estimator, the training matrix (None when not built) and labels as they really are
    (before weights or resampling), the target scaling and the notes for ML.TRAINING_INFO."""
    model_options = {k: v for k, v in options.items() if k in opts.OPTIONS}
    check_fit_size(kind, {**kind.penalties, **kind.defaults, **model_options}, name, len(train),
                   preprocessor, classes)
    estimator = build_estimator(kind, model_options)
    streamed = kind.xgboost and "sampling" not in options
    # Resampling interpolates in the matrix's dtype: it gets float64, as the estimator's own input would be.
    X = None if streamed else matrix.build(preprocessor, kind, batches, train,
                                           kind.matrix_dtype if "sampling" not in options else "float64")
    centroids.use_custom(estimator, preprocessor, custom_centroids)
    y = label_codes(train_rows[label], classes) if classes else (
        as_float(train_rows, label).to_numpy() if kind.supervised else X if kind.reconstructs else None)

    target_scale = (float(y.mean()), float(y.std()) or 1.0) if kind.scale_target else (0.0, 1.0)
    if kind.scale_target:
        y = (y - target_scale[0]) / target_scale[1]

    # Weights and resampling change only what is fitted; X and y stay the real training rows.
    X_fit, y_fit, sample_weight, notes = imbalance.prepare(options, classes, label, train_rows, X, y,
                                                           preprocessor.categorical_mask, progress)
    notes += stopping.without_impossible_early_stop(estimator, y_fit, kind.task == CLASSIFICATION)
    width = sum(preprocessor.width(c) for c in preprocessor.columns)
    progress(f"Training {kind.name} '{name}' on {len(train) if X_fit is None else X_fit.shape[0]:,} rows × "
             f"{width} features…")
    if streamed:  # the batches are freed once XGBoost holds its own binned copy of the rows
        estimator.fit_blocks(matrix.blocks(preprocessor, batches, train), y_fit, sample_weight,
                             preprocessor.categorical_mask, built=lambda: (batches.clear(), matrix.release()))
        fit_notes, losses = [], estimator.training_losses
    elif kind.xgboost:
        estimator.fit(X_fit, y_fit, sample_weight, preprocessor.categorical_mask)
        fit_notes, losses = [], estimator.training_losses
    else:
        stop_options = {**kind.defaults, **options} if kind.stops_early else None
        fit_notes, losses = _fit(estimator, X_fit, y_fit, sample_weight, stop_options)
    return estimator, X, y, target_scale, (fit_notes + notes, losses)


def check_classes_trained(labels: pa.ChunkedArray, classes: list, label: str) -> None:
    """Every class of the label needs a training row: a model cannot learn, nor score, a class it never saw."""
    present = np.bincount(label_codes(labels, classes), minlength=len(classes)) > 0
    if present.all():
        return
    absent = [classes[i] for i in np.flatnonzero(~present)]
    raise DataError(f"The label '{label}' has {len(absent):,} class(es) with no row in the training split, only in "
                    f"the evaluation split (e.g. {', '.join(repr(c) for c in absent[:5])}): a model cannot learn a "
                    "class it never sees. Give every class training rows: leave out or merge rare classes, or use "
                    "data_split_method = 'NO_SPLIT' or a CUSTOM split.")


def check_fit_size(kind: ModelKind, options: dict, name: str, rows: int, preprocessor: Preprocessor,
                   classes: list | None) -> None:
    """Refuse, before any matrix is built, a fit the rows cannot support or the memory cannot hold."""
    if kind.family == KMEANS and options["num_clusters"] > rows:
        raise DataError(f"num_clusters = {options['num_clusters']} is more than the {rows:,} training row(s) of "
                        f"'{name}': k-means needs at least one row per cluster. Lower num_clusters or train on "
                        "more rows.")
    width = sum(preprocessor.width(c) for c in preprocessor.columns)
    if kind.family == PCA and options.get("num_principal_components", 0) > min(rows, width):
        raise DataError(f"num_principal_components = {options['num_principal_components']} is more than the "
                        f"{min(rows, width):,} components that {rows:,} training row(s) of {width:,} feature(s) have. "
                        "Lower it.")
    resources.check_memory(kind, options, name, rows, width, len(classes or ()))


@dataclass
class DataProfile:
    """What CREATE MODEL learns about the training query apart from the model: the data checks' findings
    (as ML.TRAINING_INFO notes) and ML.FEATURE_INFO's rows."""

    notes: list[str]
    feature_info: list[dict]


def feature_columns(table: pa.Table, label: str | None, options: dict) -> list[str]:
    """The query's columns the model learns from: all but the label, the split column (CUSTOM and SEQ,
    as BigQuery's reference says), the weights and k-means' initial-centroid marks."""
    split = options.get("data_split_col") if options.get("data_split_method") in ("CUSTOM", "SEQ") else None
    excluded = {label, column_name(table, split, "data_split_col") if split else None, options.get("instance_weight_col"),
                options.get("kmeans_init_col")}
    features = [c for c in table.column_names if c not in excluded]
    if not features:
        raise DataError("The training query has no feature columns besides the label.")
    return features


def profile_data(table: pa.Table, label: str | None, options: dict, features: list[str]) -> DataProfile:
    """The data checks and column statistics of the training query."""
    found, statistics = checks.training_findings(
        table, label, [options.get("data_split_col"), options.get("instance_weight_col")])
    return DataProfile([f"Data check: {w}" for w in found], feature_info(table, features, statistics))


def _profile_beside_the_fit(table: pa.Table, label: str | None, options: dict, features: list[str],
                            known: DataProfile | None, progress: t.Callable[[str], None]) -> DataProfile:
    """:func:`profile_data` (unless ``known``) for the thread beside the fit, announcing each finding as
    soon as it is known."""
    profile = known or profile_data(table, label, options, features)
    for note in profile.notes:
        progress(note)
    return profile


def evaluation_tables(model: LoadedModel, eval_rows: pa.Table, scored: metrics.Scored | None) -> dict:
    """The confusion matrix and ROC curve of the evaluation split, for ML.* calls without data."""
    if model.kind.task != CLASSIFICATION:
        return {}
    tables = {"confusion_matrix": metrics.confusion_matrix(model, eval_rows, scored=scored).to_pylist()}
    if len(model.classes) == 2:
        tables["roc_curve"] = metrics.roc_curve(model, eval_rows, scored=scored).to_pylist()
    return tables


def _fit(estimator: t.Any, X: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None = None,
         stop_options: dict | None = None) -> tuple[list[str], list[float] | None]:
    """Fit, keeping convergence warnings as notes in the training info instead of console noise. With
    ``stop_options`` (a kind that :attr:`~ModelKind.stops_early`) the fit honours early_stop and returns
    the objective per block of iterations (:mod:`sqlml.train.stopping`), else no losses."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        weighted = {} if sample_weight is None else {"sample_weight": sample_weight}
        if stop_options is not None:
            losses, stopped = stopping.fit_linear(estimator, X, y, sample_weight, stop_options)
            if not stopped:
                warnings.warn(f"Stopped at max_iterations = {estimator.max_iter} before converging.", ConvergenceWarning)
            return _convergence_notes(caught), losses
        estimator.fit(X, y, **weighted) if y is not None else estimator.fit(X)
    return _convergence_notes(caught), None


def _convergence_notes(caught: list) -> list[str]:
    return sorted({str(w.message).splitlines()[0] for w in caught if issubclass(w.category, ConvergenceWarning)})


def feature_info(table: pa.Table, features: list[str], statistics: list[dict]) -> list[dict]:
    """ML.FEATURE_INFO rows: BigQuery's statistics of each input column over the training query, taken
    from the data checks' ``statistics`` rows. The median comes from numpy's selection (exact, and ~50×
    cheaper than Arrow's t-digest here)."""
    by_name = {row["column_name"]: row for row in statistics}
    rows = []
    for name in features:
        stats = by_name[name]
        numeric = column_kind(name, table.schema.field(name).type) == "numeric"
        rows.append({"input": name, "min": stats["min"], "max": stats["max"], "mean": stats["mean"],
                     "median": _median(table[name]) if numeric else None, "stddev": stats["stddev"],
                     "category_count": None if numeric else stats["distinct_count"], "null_count": stats["null_count"]})
    return rows


def _median(column: pa.ChunkedArray) -> float | None:
    values = to_float64(column)
    present = values.drop_null().to_numpy() if values.null_count else values.to_numpy()
    return float(np.median(present)) if len(present) else None


def training_info(estimator: t.Any, duration: float, notes: list[str], X: np.ndarray | None, y: np.ndarray | None,
                  losses: list[float] | None = None) -> list[dict]:
    """ML.TRAINING_INFO rows: one per iteration where the estimator records a loss curve (per block of
    iterations for logistic regression, per iteration for trees: ``losses``, measured while it trained)."""
    if losses is None:
        losses = _loss_curve(estimator)
    per_iteration_ms = int(duration * 1000 / max(1, len(losses)))
    eval_losses = _eval_curve(estimator)
    clusters = {"cluster_info": _cluster_info(estimator, X)} if hasattr(estimator, "cluster_centers_") else {}
    return [
        {"training_run": 0, "iteration": i, "loss": loss, "eval_loss": eval_losses[i] if i < len(eval_losses) else None,
         "duration_ms": per_iteration_ms, "notes": "; ".join(notes) or None, **clusters}
        for i, loss in enumerate(losses)
    ]


def _cluster_info(estimator: t.Any, X: np.ndarray) -> list[dict]:
    """ML.TRAINING_INFO's cluster_info of k-means: per centroid (numbered from 1, as ML.PREDICT does), the
    training rows nearest to it (cluster_size) and their mean distance to it (cluster_radius), in the
    standardized feature space the model was fitted in."""
    distances = estimator.transform(X)
    nearest = distances.argmin(axis=1)
    info = []
    for k in range(distances.shape[1]):
        mine = distances[nearest == k, k]
        info.append({"centroid_id": k + 1, "cluster_radius": float(mine.mean()) if len(mine) else None,
                     "cluster_size": int(len(mine))})
    return info


def _loss_curve(estimator: t.Any) -> list[float | None]:
    if hasattr(estimator, "loss_curve_"):
        return [float(v) for v in estimator.loss_curve_]
    if hasattr(estimator, "inertia_"):
        return [float(estimator.inertia_)]
    return [None]


def _eval_curve(estimator: t.Any) -> list[float]:
    if getattr(estimator, "validation_losses", None):  # XGBoost's held-out loss under early_stop
        return list(estimator.validation_losses)
    if getattr(estimator, "validation_scores_", None):
        return [float(v) for v in estimator.validation_scores_]
    return []


def _engine_version(model_type: str) -> dict:
    """The XGBoost that trained a boosted tree model (already imported by its fit)."""
    if not MODEL_KINDS[model_type].xgboost:
        return {}
    import xgboost
    return {"xgboost": xgboost.__version__}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("sqlml")
    except PackageNotFoundError:
        return "unknown"
