"""Hyperparameter tuning (``num_trials`` with ``HPARAM_RANGE`` / ``HPARAM_CANDIDATES``) and ``model_type = 'auto'``.

    CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['target'],
                            num_trials = 12, l2_reg = HPARAM_RANGE(0, 10)) AS SELECT * FROM t

Every trial is an ordinary training run (:func:`sqlml.training.train`) on the training split less a
validation part (:data:`VALIDATION_FRACTION` of the training rows); its objective is measured on those
validation rows only, so the evaluation split never influences which trial wins. optuna proposes the
values: TPE for ``VIZIER_DEFAULT`` (BigQuery's name for its model-based default), a random sampler for
``RANDOM_SEARCH`` and a grid sampler for ``GRID_SEARCH``. Trials run one after another:
``max_parallel_trials`` is accepted for BigQuery compatibility and ignored (the machines sqlml targets
have few cores, which each trial's estimator already uses).

Trial 1 of a model-based or random search uses the untuned defaults wherever they lie inside the
declared spaces, so a tuned model scores at least as well as the untuned one on the validation rows.
The optimal trial's model becomes the version; every trial is stored in ``sqlml.trials`` with its
model, and trial 0 holds the trivial baseline scored on the same validation rows (for ML.LEADERBOARD).
"""

from __future__ import annotations

import dataclasses
import time
import typing as t
from contextlib import contextmanager

import numpy as np
import pyarrow as pa
from sklearn import metrics as skm

from ..errors import DataError, SqlmlError
from ..model import baseline as baselines
from ..model import metrics
from ..model.kinds import (
    CLASSIFICATION,
    CLUSTERING,
    MODEL_KINDS,
    RECOMMENDATION,
    REDUCTION,
    UNSUPERVISED,
    ModelKind,
)
from ..model.loaded import LoadedModel
from ..model.metrics import EVAL_LOSS, lower_is_better
from ..model.version import ModelVersion
from . import fit as training
from . import reading, search
from . import split as splits
from .labels import prepare_label, role_columns
from .reading import Rows
from .sample import DATA_SEED
from .search import AUTO_TYPES, resolve_options

__all__ = ["AUTO_TYPES", "read", "resolve_options", "train", "validation_rows"]  # what the executor and tests use

VALIDATION_FRACTION = 0.2
VALIDATION_SEED = 1_000_003  # added to random_seed: the validation part is hashed apart from the evaluation split
MIN_TRAINING_ROWS = 20  # below this a validation part leaves too little to fit or to judge on


def read(engine: t.Any, sql: str, kind: ModelKind, options: dict) -> Rows:
    """The rows of CREATE MODEL's query ``sql`` (checked ``options``) from ``engine``, streamed
    (:func:`sqlml.train.reading.read`) with the label, split and weight columns kept as read. Without
    tuning, when ``max_training_rows`` / ``sample_fraction`` leave training rows out, only the rows
    used are read (:func:`sqlml.train.reading.read_sample`)."""
    keep = role_columns(kind, options)
    label = keep[0]
    schema = engine.schema(sql)
    drawn = engine.training_sample(sql, options.get("max_training_rows"), options.get("random_seed", DATA_SEED),
                                   label if kind.task == CLASSIFICATION else None)
    if drawn is not None:  # an engine that keeps the rows elsewhere hands over a sample of them (Spark)
        table, note = drawn
        return dataclasses.replace(reading.read(table.to_batches(), schema, keep), notes=[note])
    if ("max_training_rows" in options or "sample_fraction" in options) and not search.wanted(options):
        sampled = reading.read_sample(engine, sql, schema, kind, options, label, keep)
        if sampled is not None:
            return sampled
    return reading.read(engine.read_batches(sql), schema, keep)


def train(rows: Rows, raw: dict, name: str, query: str, progress: t.Callable[[str], None] = print,
          **train_args: t.Any) -> dict:
    """CREATE MODEL's registry row: tuned or auto when the options ask for it, else plain training.
    A tuned row carries ``trials`` (stored in ``sqlml.trials`` with the version). ``train_args`` go
    to every :func:`sqlml.training.train` call (the fitted TRANSFORM)."""
    if not search.wanted(raw):
        return training.train(rows, raw, name, query, progress, **train_args)
    schema, table = rows.schema, rows.take()
    the_plan = search.plan(raw)
    if table.num_rows == 0:
        raise DataError("The training query returned zero rows.")
    label = the_plan.fixed.get("input_label_cols", [None])[0]
    the_plan = search.for_label(the_plan, table, label)
    kind = MODEL_KINDS[the_plan.model_types[0]]
    classes = None
    if kind.supervised:
        table, classes = prepare_label(table, label or "label", kind)
    objective = search.objective_for(the_plan, kind, classes, label)
    split = splits.split_rows(table, the_plan.fixed, the_plan.fixed.get("random_seed"))
    fit, validation = validation_rows(table, split, the_plan.fixed)
    # The data checks and column statistics look at the whole training query: once, not once per trial.
    features = training.feature_columns(table, label, the_plan.fixed)
    train_args = {"profile": training.profile_data(table, label, the_plan.fixed, features), **train_args}
    runner = Runner(the_plan, objective, table, schema, splits.Split(fit, split.eval, split.fraction), table.take(validation),
                    name, query, progress, train_args)
    runner.run()
    return runner.version_row()


def validation_rows(table: pa.Table, split: splits.Split, options: dict) -> tuple[np.ndarray, np.ndarray]:
    """The training split's rows divided into rows to fit on and validation rows to score trials on
    (the newest training rows for ``data_split_method = 'SEQ'``, a seeded random part otherwise)."""
    if len(split.train) < MIN_TRAINING_ROWS:
        raise DataError(f"Tuning needs at least {MIN_TRAINING_ROWS} training rows to set some aside for "
                        f"validation; the training split has {len(split.train)}.")
    seq = options.get("data_split_method") == "SEQ"
    inner = splits.split_rows(table.take(split.train),
                                {"data_split_method": "SEQ" if seq else "RANDOM", "data_split_col": options.get("data_split_col"),
                                 "data_split_eval_fraction": VALIDATION_FRACTION}, VALIDATION_SEED + (options.get("random_seed") or 0))
    if inner.eval is None:
        raise DataError(f"The validation part of the {len(split.train)} training rows is empty; tune on more rows.")
    return split.train[inner.train], split.train[inner.eval]


class Runner:
    """Runs the trials of one CREATE MODEL and keeps their records; each trial is a call of ``fit`` (a family
    with its own trainer passes it: :mod:`sqlml.train.families`)."""

    def __init__(self, plan_: search.Plan, objective: str, table: pa.Table, schema: pa.Schema,
                 split: splits.Split, validation: pa.Table, name: str, query: str, progress: t.Callable[[str], None],
                 train_args: dict, fit: t.Callable[..., dict] = training.train):
        self.plan, self.objective, self.table, self.schema, self.split = plan_, objective, table, schema, split
        self.train_args, self.fit = train_args, fit
        self.validation, self.name, self.query, self.progress = validation, name, query, progress
        self.trials: list[dict] = []
        self.rows: dict[int, dict] = {}  # trial_id → registry row of the trials that succeeded

    def run(self) -> None:
        import optuna
        started = time.perf_counter()
        total = search.trial_count(self.plan)

        def objective(trial) -> float:
            model_type, hyperparameters = self._suggest(trial)
            record = self._run_trial(trial.number + 1, model_type, hyperparameters)
            value = record["hparam_tuning_evaluation_metrics"].get(self.objective) if record["status"] == "SUCCEEDED" else None
            self._report(trial.number + 1, total, record, value)
            return float("nan") if value is None else value  # optuna records NaN as a failed trial

        def budget(study, trial) -> None:
            if self.plan.time_budget and time.perf_counter() - started >= self.plan.time_budget and self.rows:
                self.progress(f"Time budget of {self.plan.time_budget:g} s spent after {trial.number + 1} trials.")
                study.stop()

        with _quiet_optuna():
            study = optuna.create_study(direction="minimize" if lower_is_better(self.objective) else "maximize",
                                        sampler=self._sampler())
            self._enqueue(study)
            study.optimize(objective, n_trials=total, callbacks=[budget])
        if not self.rows:
            raise DataError(f"Every trial failed; trial 1: {self.trials[0]['error_message']}")

    def _sampler(self):
        from optuna.samplers import GridSampler, RandomSampler, TPESampler
        seed = self.plan.fixed.get("random_seed")
        if self.plan.algorithm == "GRID_SEARCH":
            return GridSampler({k: [search.encode(v) for v in values] for k, values in search.grid(self.plan.spaces).items()}, seed=seed)
        if self.plan.algorithm == "RANDOM_SEARCH":
            return RandomSampler(seed=seed)
        return TPESampler(seed=seed, n_startup_trials=max(2, min(10, self.plan.num_trials // 3)))

    def _enqueue(self, study) -> None:
        """Defaults first: each auto model type as it is, or the untuned values that lie inside the spaces."""
        if self.plan.auto:
            for model_type in self.plan.model_types:
                study.enqueue_trial({"model_type": model_type})
        elif self.plan.algorithm != "GRID_SEARCH":
            kind = MODEL_KINDS[self.plan.model_types[0]]
            defaults = {k: kind.default(k) for k in self.plan.spaces}
            inside = {k: search.encode(v) for k, v in defaults.items() if search.inside(self.plan.spaces[k], v)}
            if inside:
                study.enqueue_trial(inside)

    def _suggest(self, trial) -> tuple[str, dict]:
        if not self.plan.auto:
            return self.plan.model_types[0], {k: search.suggest(trial, k, s) for k, s in self.plan.spaces.items()}
        model_type = trial.suggest_categorical("model_type", list(self.plan.model_types))
        if trial.number < len(self.plan.model_types):  # the first pass: each type with its defaults
            return model_type, {}
        return model_type, {k: search.suggest(trial, k, s) for k, s in MODEL_KINDS[model_type].search_space.items()}

    def _run_trial(self, number: int, model_type: str, hyperparameters: dict) -> dict:
        record = {"trial_id": number, "model_type": model_type, "hyperparameters": hyperparameters,
                  "hparam_tuning_evaluation_metrics": {}, "training_loss": None, "eval_loss": None, "status": "FAILED",
                  "error_message": None, "is_optimal": False, "training_seconds": None, "metrics": None,
                  "eval_tables": None, "training_info": None, "fingerprint": None, "model": None}
        if self.plan.auto:  # the leaderboard shows what each type ran with
            record["hyperparameters"] = {**MODEL_KINDS[model_type].defaults, **hyperparameters}
        options = {**self.plan.fixed, "model_type": model_type, **hyperparameters}
        started = time.perf_counter()
        try:
            row = self.fit(Rows(self.table, self.schema), options, self.name, self.query,
                           self.progress if number == 1 else _ignore, split=self.split, **self.train_args)
            model = loaded(row)
            validation = validation_metrics(model, self.validation)
        except Exception as error:  # noqa: BLE001  a failing trial is recorded, the others go on
            record.update(error_message=f"{type(error).__name__}: {error}" if not isinstance(error, SqlmlError) else str(error),
                          training_seconds=time.perf_counter() - started)
            self.trials.append(record)
            return record
        record.update(hparam_tuning_evaluation_metrics=validation, status="SUCCEEDED",
                      training_loss=loss(model, self.table.take(self.split.train)),
                      eval_loss=validation.get(EVAL_LOSS[MODEL_KINDS[model_type].task]),
                      training_seconds=time.perf_counter() - started, metrics=row["metrics"],
                      eval_tables=row["eval_tables"], training_info=row["training_info"],
                      fingerprint=row["fingerprint"], model=row["model"])
        if validation.get(self.objective) is None:
            record.update(status="FAILED", error_message=f"The objective {self.objective} is undefined on the "
                                                         "validation rows (a single class?).")
        else:  # without its fitted objects: a trial's row holds its model as bytes only
            self.rows[number] = {k: v for k, v in row.items() if k != "fitted"}
        self.trials.append(record)
        return record

    def _report(self, number: int, total: int, record: dict, value: float | None) -> None:
        if value is None:  # before best(): no trial may have succeeded yet
            self.progress(f"Trial {number}/{total} failed: {record['error_message']}")
            return
        best = self.best()
        kind = f" {record['model_type']}" if self.plan.auto else ""
        self.progress(f"Trial {number}/{total}{kind}: {self.objective}={value:.4g} "
                      f"(best {best['hparam_tuning_evaluation_metrics'][self.objective]:.4g})")

    def best(self) -> dict:
        """The succeeded trial with the best objective; the earliest among equals."""
        sign = 1 if lower_is_better(self.objective) else -1
        scored = [r for r in self.trials if r["trial_id"] in self.rows]
        return min(scored, key=lambda r: (sign * r["hparam_tuning_evaluation_metrics"][self.objective], r["trial_id"]))

    def version_row(self) -> dict:
        """The optimal trial's row as the version, with every trial and the baseline attached."""
        best = self.best()
        best["is_optimal"] = True
        row = dict(self.rows[best["trial_id"]])
        # The declared search (spaces, settings, 'auto'); each trial's values are in sqlml.trials.
        row["options"] = {**row["options"], **self.plan.spaces, **self.plan.settings,
                          **({"model_type": "auto"} if self.plan.auto else {})}
        baseline = self._baseline(loaded(row))
        row["trials"] = ([baseline] if baseline else []) + self.trials
        return row

    def _baseline(self, model: LoadedModel) -> dict | None:
        """Trial 0: the trivial baseline fitted on the same rows and scored on the same validation rows."""
        if model.kind.task in UNSUPERVISED:
            return None
        stored = baselines.at_training(model, self.table.take(self.split.train), self.validation)[baselines.STORED_KEY]
        values = stored["metrics"]
        return {"trial_id": 0, "model_type": "baseline", "hyperparameters": {"strategy": stored["statistics"]["strategy"]},
                "hparam_tuning_evaluation_metrics": values, "eval_loss": values.get(EVAL_LOSS[model.kind.task]),
                "status": "BASELINE", "is_optimal": False, "training_seconds": 0.0}


def _ignore(message: str) -> None:
    """Progress of trials after the first: their warnings would repeat the first trial's."""


@contextmanager
def _quiet_optuna():
    """optuna logs every trial (and a failed one as a warning); sqlml reports trials through its own progress."""
    import optuna
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def loaded(row: dict) -> LoadedModel:
    """A trial's model as ML.* functions will read it: from the objects its signed bytes hold, when
    the row carries them (``fitted``, as training leaves them), else read back from the bytes."""
    fields = {f.name for f in dataclasses.fields(ModelVersion)}
    info = ModelVersion(**{k: v for k, v in row.items() if k in fields and k not in ("version", "created_at")},
                        version=0, created_at=None)
    if row.get("fitted"):
        return LoadedModel.from_parts(info, *row["fitted"])
    return LoadedModel.from_blob(info, row["model"])


def loss(model: LoadedModel, rows: pa.Table) -> float:
    """The trial's loss on ``rows``: log loss, mean squared error, mean squared distance to the centroid, or
    reconstruction error; a recommender's: its training loss after the last iteration (ML.TRAINING_INFO's)."""
    if model.kind.task == CLUSTERING:
        return float(metrics.clustering_metrics(model.features(rows), model.estimator)["mean_squared_distance"])
    if model.kind.task == RECOMMENDATION:
        return float(model.info.training_info[-1]["loss"])
    if model.kind.task == REDUCTION:
        return float(metrics.evaluate(model, rows)["mean_squared_error"])
    rows = metrics.labelled_rows(model, rows)
    y = metrics.true_labels(model, rows)
    if model.kind.task == CLASSIFICATION:
        return float(skm.log_loss(y, model.class_probabilities(rows), labels=np.arange(len(model.classes))))
    return float(skm.mean_squared_error(y, model.regression_values(rows)))


def validation_metrics(model: LoadedModel, validation: pa.Table) -> dict:
    """Every metric of the model on the validation rows (None where undefined)."""
    values = (baselines.metric_values(metrics.Scored.of(model, validation))
              if model.kind.supervised else metrics.evaluate(model, validation))
    return {k: metrics.finite(v) for k, v in values.items()}
