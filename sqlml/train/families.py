"""CREATE MODEL for model families that do not learn from a feature matrix (:mod:`sqlml.train.fit`):
:data:`TRAINERS` maps a family to its trainer, which the executor calls with the engine, the planned
statement and the progress callback, and which returns the registry row, as :func:`sqlml.train.tune.train`.
A family that judges a retrain its own way adds ``gate``: ``gate(new, deployed)`` gives the deploy gate's
verdict, in place of the rows-held-out comparison (ARIMA_PLUS: both versions refitted without the series'
last points, :mod:`sqlml.train.arima_gate`).

Matrix factorization (BigQuery's ``matrix_factorization``) learns from three columns of the training query:
``user_col``, ``item_col`` and ``rating_col`` (BigQuery's defaults ``user``, ``item``, ``rating``; other
columns are ignored, but hash the split like any row). Rows are split as every model's are
(``data_split_method``…), so the deploy gate finds the same held-out rows again. A row with a NULL rating
is left out as a NULL label is; one with a NULL user or item is skipped from training (and said so in
ML.TRAINING_INFO's notes), and an evaluation row with one is scored with the intercepts, as an unseen id is.
Implicit feedback takes ratings ≥ 0 (a 0 is no interaction) and adds up a pair's repeated rows.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import typing as t
from importlib.metadata import version

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from ..errors import DataError, OptionError
from ..model import baseline as baselines
from ..model import envelope, metrics
from ..model.factorization import Factorization, index_of, padded
from ..model.kinds import ARIMA, MATRIX_FACTORIZATION, MODEL_KINDS
from ..model.loaded import LABEL_TYPES, LoadedModel
from ..model.preprocess import Preprocessor, to_float64
from ..model.version import ModelVersion
from . import als, arima, reading, search, tune
from . import fit as training
from .labels import column_name, prepare_label
from .split import Split, split_rows

MIN_FACTORS, MAX_FACTORS = 2, 200


def default_factors(ratings: int) -> int:
    """num_factors when not given: BigQuery ties its default to the amount of training data without
    publishing the rule; sqlml takes round(log2(training ratings)), within [2, 200] (16 for MovieLens)."""
    return int(min(MAX_FACTORS, max(MIN_FACTORS, round(math.log2(max(ratings, 2))))))


def train_factorization(engine: t.Any, step: t.Any, progress: t.Callable[[str], None]) -> dict:
    """CREATE MODEL … OPTIONS (model_type = 'matrix_factorization', …): read the query, then train (or tune)."""
    if step.transform:
        raise OptionError("A matrix_factorization model takes no TRANSFORM clause (BigQuery's neither): compute the "
                          "user, item and rating columns in the training query.")
    kind, options = search.resolve_options(step.options)
    settings = {**kind.defaults, **options}
    keep = [settings["user_col"], settings["item_col"], settings["rating_col"], options.get("data_split_col")]
    rows = reading.read(engine.read_batches(step.query_sql), engine.schema(step.query_sql), keep)
    if search.wanted(step.options):
        return _tuned(rows, step.options, step.name, step.query_sql, progress)
    return train(rows, step.options, step.name, step.query_sql, progress)


def train(rows: reading.Rows | pa.Table, raw_options: dict, name: str, query: str,
          progress: t.Callable[[str], None] = print, split: Split | None = None) -> dict:
    """A matrix factorization's registry row (see :func:`sqlml.train.fit.train`, whose shape it has);
    ``split`` overrides the options' split (tuning trials)."""
    started = time.perf_counter()
    kind, options = training.resolve_options(raw_options)
    table, _ = reading.unwrap(rows)
    table, options = _prepared(table, {**kind.defaults, **options}, options)
    settings = {**kind.penalties, **kind.defaults, **options}
    user, item, rating = (options[c] for c in ("user_col", "item_col", "rating_col"))
    explicit = settings["feedback_type"] == "EXPLICIT"
    split = split or split_rows(table, options, options.get("random_seed"))
    if split.fraction is not None:
        options = {**options, "data_split_eval_fraction": split.fraction}
    train_rows = table.take(split.train)
    complete = pc.and_(pc.is_valid(train_rows[user]), pc.is_valid(train_rows[item]))
    skipped = train_rows.num_rows - pc.sum(complete).as_py() if train_rows.num_rows else 0
    notes = [f"Skipped {skipped:,} training row(s) with a NULL {user} or {item}."] if skipped else []
    if explicit and "wals_alpha" in raw_options:
        notes.append("wals_alpha weighs implicit feedback only; this explicit-feedback model does not use it.")
    for note in notes:
        progress(note)
    train_rows = train_rows.filter(complete) if skipped else train_rows
    if train_rows.num_rows == 0:
        raise DataError("The training split has no row with a user, an item and a rating; "
                        "matrix factorization needs some.")
    eval_rows = table.take(split.eval) if split.eval is not None else table
    factorization, fit = _fit(train_rows, eval_rows, (user, item, rating), settings, explicit, progress, name)
    info = ModelVersion(name=name, version=0, model_type=kind.name, label=rating, label_type="float", options=options,
                        input_schema=[{"name": c, "type": str(table.schema.field(c).type)} for c in (user, item, rating)],
                        metrics={}, eval_tables={}, feature_info=[], training_info=[], library_versions={},
                        training_rows=train_rows.num_rows, eval_rows=0, query=query, created_at=None, fingerprint="")
    header = {"model_type": kind.name, "preprocess": Preprocessor("onehot", False).to_dict(), "classes": None,
              "label_type": "float", "target_scale": (0.0, 1.0), "background": None, "transform": None,
              "training_stats": None}
    model = LoadedModel(info, kind, factorization, Preprocessor("onehot", False), None, LABEL_TYPES["float"])
    measured = {**metrics.evaluate(model, eval_rows), **baselines.at_training(model, train_rows, eval_rows)}
    measured = {k: metrics.finite(v) if not isinstance(v, dict) else v for k, v in measured.items()}
    state = factorization.to_state()
    blob = envelope.dumps(state, header)
    duration = time.perf_counter() - started
    progress(f"Trained '{name}' in {duration:.1f} s ({train_rows.num_rows:,} ratings, {len(factorization.users):,} "
             f"users × {len(factorization.items):,} items, {factorization.num_factors} factors).")
    info.fingerprint = envelope.fingerprint(blob)
    row = training.registry_row(info, blob, eval_rows.num_rows, measured, {}, feature_info(train_rows, user, item, rating),
                                _training_info(fit, notes, settings["early_stop"]))
    if not explicit:
        row["library_versions"] = {**row["library_versions"], "implicit": version("implicit")}
    return {**row, "eval_data": eval_rows, "evaluated_on_training_rows": split.eval is None,
            "fitted": (state, json.loads(json.dumps(header)), {})}


def _prepared(table: pa.Table, settings: dict, options: dict) -> tuple[pa.Table, dict]:
    """The rows with a rating (checked numeric and finite; ≥ 0 for implicit feedback), and the options with
    the three columns named as the query spells them."""
    named = {role: column_name(table, settings[role], f"{role.removesuffix('_col')} column ({role})")
             for role in ("user_col", "item_col", "rating_col")}
    table, _ = prepare_label(table, named["rating_col"], MODEL_KINDS[MATRIX_FACTORIZATION])
    if settings["feedback_type"] == "IMPLICIT" and pc.min(table[named["rating_col"]]).as_py() < 0:
        raise DataError(f"Implicit feedback reads '{named['rating_col']}' as how much a user interacted with an item "
                        "(confidence 1 + wals_alpha * rating): it must not be negative. Use feedback_type = "
                        "'EXPLICIT' for ratings that can be, or shift them in the query.")
    return table, {**options, **named}


def _vocabulary(column: pa.ChunkedArray) -> pa.Array:
    """The distinct ids of a column, sorted (the same model from the same rows, whatever their order)."""
    values = column.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    distinct = pc.unique(values)
    return distinct.take(pc.sort_indices(distinct))


def _fit(rows: pa.Table, eval_rows: pa.Table, columns: tuple[str, str, str], settings: dict, explicit: bool,
         progress: t.Callable[[str], None], name: str) -> tuple[Factorization, als.Factors]:
    user, item, rating = columns
    users, items = _vocabulary(rows[user]), _vocabulary(rows[item])
    u, i = index_of(rows[user], users, user), index_of(rows[item], items, item)
    r = to_float64(rows[rating]).to_numpy()
    factors = settings.get("num_factors") or default_factors(len(r))
    fitting = als.Settings(factors, settings["l2_reg"], settings["max_iterations"], settings["early_stop"],
                           settings["min_rel_progress"], settings.get("random_seed") or 0)
    shape = (len(users), len(items))
    progress(f"Training matrix_factorization '{name}' ({settings['feedback_type'].lower()} feedback) on {len(r):,} "
             f"ratings: {shape[0]:,} users × {shape[1]:,} items, {factors} factors…")
    if explicit:
        held_out = eval_rows.filter(pc.is_valid(eval_rows[rating]))
        evaluation = (index_of(held_out[user], users, user), index_of(held_out[item], items, item),
                      to_float64(held_out[rating]).to_numpy())
        fit = als.explicit(u, i, r, shape, fitting, evaluation)
        biases = als.explicit(u, i, r, shape, dataclasses.replace(fitting, factors=0))
        baseline = {"intercept": biases.intercept, "user_bias": padded(biases.user_bias),
                    "item_bias": padded(biases.item_bias)}
    else:
        interactions = sp.csr_matrix((r, (u, i)), shape=shape)  # repeated pairs add up
        interactions.eliminate_zeros()
        fit = als.implicit(interactions, fitting, settings["wals_alpha"])
        popularity = np.diff(interactions.tocsc().indptr) / shape[0]
        baseline = {"popularity": padded(popularity)}
    rated = sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=shape)
    rated.sum_duplicates()
    rated.data[:] = 1.0
    model = Factorization(explicit, users, items, padded(fit.user_factors), padded(fit.item_factors),
                          padded(fit.user_bias), padded(fit.item_bias), fit.intercept, rated, baseline)
    return model, fit


def _training_info(fit: als.Factors, notes: list[str], early_stop: bool) -> list[dict]:
    """ML.TRAINING_INFO: per iteration, the training loss (explicit: mean squared error of the training
    ratings; implicit: the weighted objective per unit of confidence, after the last iteration only without
    early_stop) and the held-out ratings' mean squared error (explicit feedback)."""
    if early_stop and not fit.converged and len(fit.losses) > 1:
        notes = notes + [f"Stopped at max_iterations = {len(fit.losses)} before early_stop's min_rel_progress was met."]
    return [{"training_run": 0, "iteration": i, "loss": loss, "eval_loss": eval_loss,
             "duration_ms": int(seconds * 1000), "notes": "; ".join(notes) or None}
            for i, (loss, eval_loss, seconds) in enumerate(zip(fit.losses, fit.eval_losses, fit.seconds))]


def feature_info(rows: pa.Table, user: str, item: str, rating: str) -> list[dict]:
    """ML.FEATURE_INFO of the training rows: the ids' distinct counts and the ratings' statistics."""
    values = to_float64(rows[rating]).to_numpy()
    ids = [{"input": c, "min": None, "max": None, "mean": None, "median": None, "stddev": None,
            "category_count": pc.count_distinct(rows[c]).as_py(), "null_count": rows[c].null_count} for c in (user, item)]
    return ids + [{"input": rating, "min": float(values.min()), "max": float(values.max()), "mean": float(values.mean()),
                   "median": float(np.median(values)), "stddev": float(values.std(ddof=1)) if len(values) > 1 else None,
                   "category_count": None, "null_count": 0}]


def _tuned(rows: reading.Rows, raw: dict, name: str, query: str, progress: t.Callable[[str], None]) -> dict:
    """num_trials over num_factors, l2_reg and wals_alpha (:mod:`sqlml.train.tune`'s trials, each a :func:`train`),
    judged on a validation part of the training split by mean_squared_error (explicit) or
    mean_average_precision (implicit), unless hparam_tuning_objectives says otherwise."""
    schema, table = rows.schema, rows.take()
    the_plan = search.plan(raw)
    kind = MODEL_KINDS[the_plan.model_types[0]]
    settings = {**kind.defaults, **the_plan.fixed}
    allowed = metrics.objectives(kind, settings)
    objective = the_plan.objective or allowed[0]
    if objective not in allowed:
        raise OptionError(f"hparam_tuning_objectives {objective!r} is not a metric of {settings['feedback_type'].lower()} "
                          f"matrix factorization; choose one of: {', '.join(allowed)}.")
    table, fixed = _prepared(table, settings, the_plan.fixed)
    split = split_rows(table, fixed, fixed.get("random_seed"))
    fitted, validation = tune.validation_rows(table, split, fixed)
    runner = tune.Runner(the_plan, objective, table, schema, Split(fitted, split.eval, split.fraction),
                         table.take(validation), name, query, progress, {}, fit=train)
    runner.run()
    return runner.version_row()


TRAINERS: dict[str, t.Callable[[t.Any, t.Any, t.Callable[[str], None]], dict]] = {
    MATRIX_FACTORIZATION: train_factorization,
    ARIMA: arima.train,
}
