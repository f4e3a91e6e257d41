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
import json
import math
import time
import typing as t
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sklearn import metrics as skm

from ..errors import DataError, OptionError, SqlmlError
from ..model import baseline as baselines
from ..model import metrics
from ..model import options as opts
from ..model.kinds import (
    AUTO_SPACES,
    CLASSIFICATION,
    CLUSTERING,
    MODEL_KINDS,
    REGRESSION,
    ModelKind,
    default_value,
)
from ..model.loaded import LoadedModel
from ..model.metrics import DEFAULT_OBJECTIVE, EVAL_LOSS, OBJECTIVES, lower_is_better
from ..model.preprocess import column_kind
from ..registry.versions import ModelVersion
from . import fit as training
from . import split as splits
from .labels import label_task, prepare_label, query_column

VALIDATION_FRACTION = 0.2
MIN_TRAINING_ROWS = 20  # below this a validation part leaves too little to fit or to judge on
TUNING_OPTIONS = ("num_trials", "max_parallel_trials", "hparam_tuning_algorithm", "hparam_tuning_objectives",
                  "max_trials", "time_budget_seconds")


LOG_SCALED = ("l1_reg", "l2_reg", "learn_rate")  # searched on a log scale when the range excludes 0
MAX_GRID_INTEGERS = 1_000
#: model_type = 'auto': the types tried, cheapest first, and the spaces searched once each has run
#: with its defaults. An integer label with at most AUTO_MAX_CLASSES values is a class label.
AUTO_TYPES = {
    CLASSIFICATION: ("logistic_reg", "boosted_tree_classifier", "random_forest_classifier", "dnn_classifier"),
    REGRESSION: ("linear_reg", "boosted_tree_regressor", "random_forest_regressor", "dnn_regressor"),
}


AUTO_MAX_CLASSES = 10


@dataclass
class Plan:
    """What to try: model types, fixed options, search spaces, objective and budget."""

    model_types: tuple[str, ...]  # one type, or the applicable types of model_type = 'auto'
    fixed: dict  # validated options without search spaces or tuning settings
    spaces: dict  # option name → HPARAM_RANGE / HPARAM_CANDIDATES
    objective: str | None  # None: the task's default, known once the label is seen
    algorithm: str
    num_trials: int
    settings: dict  # the validated tuning options, kept in the version's options
    time_budget: float | None = None
    auto: bool = False


def wanted(raw: dict) -> bool:
    """Whether CREATE MODEL options ask for tuning or for model_type = 'auto'."""
    return (str(raw.get("model_type", "")).lower() == "auto" or "num_trials" in raw
            or any(opts.is_space(v) for v in raw.values()))


def resolve_options(raw: dict) -> tuple[ModelKind, dict]:
    """:func:`sqlml.training.resolve_options` that also checks tuning and model_type = 'auto' before any
    data is read. For 'auto' the kind is a stand-in of the right kind of learning (supervised): the
    real types are picked once the label is seen."""
    if not wanted(raw):
        return training.resolve_options(raw)
    the_plan = plan(raw)
    if the_plan.auto:
        return MODEL_KINDS[AUTO_TYPES[CLASSIFICATION][0]], {**the_plan.fixed, "model_type": "auto"}
    return training.resolve_options(raw)


def plan(raw: dict) -> Plan:
    """The checked tuning plan of CREATE MODEL options; errors name the option at fault."""
    if str(raw.get("model_type", "")).lower() == "auto":
        return _auto_plan(raw)
    kind, options = training.resolve_options(raw)
    spaces = {k: v for k, v in options.items() if opts.is_space(v)}
    if not spaces:
        raise OptionError("num_trials needs at least one search space, e.g. l2_reg = HPARAM_RANGE(0, 10) or "
                          "max_tree_depth = HPARAM_CANDIDATES([3, 6]).")
    if "num_trials" not in options:
        raise OptionError(f"Search spaces ({', '.join(spaces)}) need num_trials = N, the number of trials to run.")
    algorithm = options.get("hparam_tuning_algorithm", "VIZIER_DEFAULT")
    if algorithm == "GRID_SEARCH":
        _grid(spaces)  # refuses float ranges now
    return Plan((kind.name,), _fixed(options), spaces, _objective(options, kind.task), algorithm, options["num_trials"],
                _settings(options))


def _auto_plan(raw: dict) -> Plan:
    options = opts.validate({**raw, "model_type": "auto"}, "auto")
    if "input_label_cols" not in options or len(options["input_label_cols"]) != 1:
        raise OptionError("model_type = 'auto' needs input_label_cols = ['label'] (exactly one column).")
    if "num_trials" in options:
        raise OptionError("model_type = 'auto' takes max_trials (and time_budget_seconds), not num_trials.")
    return Plan((), _fixed(options), {}, _objective(options, None), "VIZIER_DEFAULT", options.get("max_trials", 0),
                _settings(options), options.get("time_budget_seconds"), auto=True)


def _fixed(options: dict) -> dict:
    return {k: v for k, v in options.items() if not opts.is_space(v) and k not in TUNING_OPTIONS}


def _settings(options: dict) -> dict:
    return {k: v for k, v in options.items() if k in TUNING_OPTIONS}


def _objective(options: dict, task: str | None) -> str | None:
    names = options.get("hparam_tuning_objectives")
    if names is None:
        return None
    if len(names) != 1:
        raise OptionError(f"hparam_tuning_objectives takes one objective; got {len(names)}: {', '.join(names)}.")
    name = names[0].lower()
    allowed = OBJECTIVES[task] if task else OBJECTIVES[CLASSIFICATION] + OBJECTIVES[REGRESSION]
    if name not in allowed:
        raise OptionError(f"hparam_tuning_objectives {names[0]!r} is not an objective for "
                          f"{task or 'model_type auto'}; choose one of: {', '.join(allowed)}.")
    return name


def train(table: pa.Table, raw: dict, name: str, query: str, progress: t.Callable[[str], None] = print,
          **train_args: t.Any) -> dict:
    """CREATE MODEL's registry row: tuned or auto when the options ask for it, else plain training.
    A tuned row carries ``trials`` (stored in ``sqlml.trials`` with the version). ``train_args`` go
    to every :func:`sqlml.training.train` call (the fitted TRANSFORM)."""
    if not wanted(raw):
        return training.train(table, raw, name, query, progress, **train_args)
    the_plan = plan(raw)
    if table.num_rows == 0:
        raise DataError("The training query returned zero rows.")
    label = the_plan.fixed.get("input_label_cols", [None])[0]
    if the_plan.auto:
        column = query_column(table, label, "label column (input_label_cols)")
        column_kind(label, column.type)  # a label of a type sqlml cannot use is refused by name
        task = label_task(column, AUTO_MAX_CLASSES)
        the_plan = dataclasses.replace(the_plan, model_types=AUTO_TYPES[task],
                                       num_trials=the_plan.num_trials or len(AUTO_TYPES[task]))
    kind = MODEL_KINDS[the_plan.model_types[0]]
    classes = None
    if kind.supervised:
        table, classes = prepare_label(table, label or "label", kind)
    objective = the_plan.objective or DEFAULT_OBJECTIVE[kind.task]
    if objective == "pr_auc" and classes and len(classes) > 2:
        raise OptionError(f"hparam_tuning_objectives 'pr_auc' needs a binary label; '{label}' has {len(classes)} classes.")
    if objective not in OBJECTIVES[kind.task]:
        raise OptionError(f"hparam_tuning_objectives {objective!r} is not an objective for a {kind.task} model; "
                          f"choose one of: {', '.join(OBJECTIVES[kind.task])}.")
    split = splits.split_rows(table, the_plan.fixed, the_plan.fixed.get("random_seed"))
    fit, validation = validation_rows(table, split, the_plan.fixed)
    # The data checks and column statistics look at the whole training query: once, not once per trial.
    features = training.feature_columns(table, label, the_plan.fixed)
    train_args = {"profile": training.profile_data(table, label, the_plan.fixed, features), **train_args}
    runner = _Runner(the_plan, objective, table, splits.Split(fit, split.eval), table.take(validation),
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
                                 "data_split_eval_fraction": VALIDATION_FRACTION}, options.get("random_seed"))
    return split.train[inner.train], split.train[inner.eval]


class _Runner:
    """Runs the trials of one CREATE MODEL and keeps their records."""

    def __init__(self, plan_: Plan, objective: str, table: pa.Table, split: splits.Split, validation: pa.Table,
                 name: str, query: str, progress: t.Callable[[str], None], train_args: dict):
        self.plan, self.objective, self.table, self.split = plan_, objective, table, split
        self.train_args = train_args
        self.validation, self.name, self.query, self.progress = validation, name, query, progress
        self.trials: list[dict] = []
        self.rows: dict[int, dict] = {}  # trial_id → registry row of the trials that succeeded

    def run(self) -> None:
        import optuna
        started = time.perf_counter()
        total = self._total()

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
            return GridSampler({k: [_encode(v) for v in values] for k, values in _grid(self.plan.spaces).items()}, seed=seed)
        if self.plan.algorithm == "RANDOM_SEARCH":
            return RandomSampler(seed=seed)
        return TPESampler(seed=seed, n_startup_trials=max(2, min(10, self.plan.num_trials // 3)))

    def _total(self) -> int:
        if self.plan.algorithm != "GRID_SEARCH":
            return self.plan.num_trials
        return min(self.plan.num_trials, math.prod(len(v) for v in _grid(self.plan.spaces).values()))

    def _enqueue(self, study) -> None:
        """Defaults first: each auto model type as it is, or the untuned values that lie inside the spaces."""
        if self.plan.auto:
            for model_type in self.plan.model_types:
                study.enqueue_trial({"model_type": model_type})
        elif self.plan.algorithm != "GRID_SEARCH":
            kind = MODEL_KINDS[self.plan.model_types[0]]
            defaults = {k: default_value(kind.name, k) for k in self.plan.spaces}
            inside = {k: _encode(v) for k, v in defaults.items() if _inside(self.plan.spaces[k], v)}
            if inside:
                study.enqueue_trial(inside)

    def _suggest(self, trial) -> tuple[str, dict]:
        if not self.plan.auto:
            return self.plan.model_types[0], {k: suggest(trial, k, s) for k, s in self.plan.spaces.items()}
        model_type = trial.suggest_categorical("model_type", list(self.plan.model_types))
        if trial.number < len(self.plan.model_types):  # the first pass: each type with its defaults
            return model_type, {}
        return model_type, {k: suggest(trial, k, s) for k, s in AUTO_SPACES[model_type].items()}

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
            row = training.train(self.table, options, self.name, self.query,
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
        else:
            self.rows[number] = row
        self.trials.append(record)
        return record

    def _report(self, number: int, total: int, record: dict, value: float | None) -> None:
        best = self.best()
        if value is None:
            self.progress(f"Trial {number}/{total} failed: {record['error_message']}")
            return
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
        if model.kind.task == CLUSTERING:
            return None
        stats = baselines.training_statistics(model, self.table.take(self.split.train))
        baseline = baselines.Baseline.from_statistics(model, stats)
        data = metrics.labelled_rows(model, self.validation)
        y = (metrics.true_codes(model, data) if model.kind.task == CLASSIFICATION
             else pc.cast(data[model.label], pa.float64()).to_numpy())
        values = baselines.metric_values(baseline.on(y))
        return {"trial_id": 0, "model_type": "baseline", "hyperparameters": {"strategy": stats["strategy"]},
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


def suggest(trial, name: str, space: dict) -> t.Any:
    """One option value proposed by optuna within ``space``."""
    if space["function"] == "HPARAM_CANDIDATES":
        return _decode(trial.suggest_categorical(name, [_encode(c) for c in space["args"][0]]))
    low, high = space["args"]
    if opts.OPTIONS[name].kind is int:
        return trial.suggest_int(name, int(low), int(high))
    return trial.suggest_float(name, float(low), float(high), log=name in LOG_SCALED and low > 0)


def _encode(value: t.Any) -> t.Any:
    """optuna's categorical choices are scalars: lists (hidden_units) travel as JSON text."""
    return json.dumps(value) if isinstance(value, list) else value


def _decode(value: t.Any) -> t.Any:
    return json.loads(value) if isinstance(value, str) and value.startswith("[") else value


def _grid(spaces: dict) -> dict[str, list]:
    """GRID_SEARCH's grid: candidates as listed, integer ranges as every integer in them."""
    grid = {}
    for name, space in spaces.items():
        if space["function"] == "HPARAM_CANDIDATES":
            grid[name] = space["args"][0]
        elif opts.OPTIONS[name].kind is int and space["args"][1] - space["args"][0] < MAX_GRID_INTEGERS:
            grid[name] = list(range(int(space["args"][0]), int(space["args"][1]) + 1))
        else:
            raise OptionError(f"GRID_SEARCH needs a finite grid: give '{name}' as HPARAM_CANDIDATES([...]) "
                              "instead of a continuous HPARAM_RANGE.")
    return grid


def _inside(space: dict, value: t.Any) -> bool:
    if value is None:
        return False
    if space["function"] == "HPARAM_CANDIDATES":
        return value in space["args"][0]
    return space["args"][0] <= value <= space["args"][1]


def loaded(row: dict) -> LoadedModel:
    """A trial's model, read back from its signed bytes as ML.* functions will read it."""
    fields = {f.name for f in dataclasses.fields(ModelVersion)}
    info = ModelVersion(**{k: v for k, v in row.items() if k in fields and k not in ("version", "created_at")},
                        version=0, created_at=None)
    return LoadedModel.from_blob(info, row["model"])


def loss(model: LoadedModel, rows: pa.Table) -> float:
    """The trial's loss on ``rows``: log loss, mean squared error, or mean squared distance to the centroid."""
    if model.kind.task == CLUSTERING:
        return float(metrics.clustering_metrics(model.features(rows), model.estimator)["mean_squared_distance"])
    rows = metrics.labelled_rows(model, rows)
    if model.kind.task == CLASSIFICATION:
        return float(skm.log_loss(metrics.true_codes(model, rows), model.class_probabilities(rows),
                                  labels=np.arange(len(model.classes))))
    return float(skm.mean_squared_error(pc.cast(rows[model.label], pa.float64()).to_numpy(), model.regression_values(rows)))


def validation_metrics(model: LoadedModel, validation: pa.Table) -> dict:
    """Every metric of the model on the validation rows (None where undefined)."""
    values = (baselines.metric_values(metrics.Scored.of(model, validation))
              if model.kind.task != CLUSTERING else metrics.evaluate(model, validation))
    return {k: metrics.finite(v) for k, v in values.items()}
