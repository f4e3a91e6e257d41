"""What a tuned CREATE MODEL tries, checked before any data is read: model types, search spaces,
objective and budget (:class:`Plan`), and the values optuna may propose within the spaces.
The trials themselves run in :mod:`sqlml.train.tune`."""

from __future__ import annotations

import dataclasses
import json
import math
import typing as t
from dataclasses import dataclass

import pyarrow as pa

from ..errors import OptionError
from ..model import options as opts
from ..model.kinds import CLASSIFICATION, MODEL_KINDS, REGRESSION, ModelKind, kinds_of
from ..model.metrics import DEFAULT_OBJECTIVE, OBJECTIVES
from ..model.preprocess import column_kind
from . import fit as training
from .labels import label_task, query_column

TUNING_OPTIONS = ("num_trials", "max_parallel_trials", "hparam_tuning_algorithm", "hparam_tuning_objectives",
                  "max_trials", "time_budget_seconds")
LOG_SCALED = ("l1_reg", "l2_reg", "learn_rate")  # searched on a log scale when the range excludes 0
MAX_GRID_INTEGERS = 1_000
#: model_type = 'auto': the types tried, cheapest first (each then searched in its kind's search_space).
AUTO_TYPES = {task: kinds_of(task) for task in (CLASSIFICATION, REGRESSION)}
AUTO_MAX_CLASSES = 10  # an integer label with at most this many values is a class label


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
    if not spaces:  # BigQuery then searches its default space for the model type (docs/tuning.md)
        spaces = {k: v for k, v in kind.search_space.items() if k not in options}
    if not spaces:
        fixed = ", ".join(kind.search_space) or "none"
        raise OptionError(f"num_trials needs something to search: the options of {kind.name}'s default search space "
                          f"({fixed}) are all fixed; give a space, e.g. l2_reg = HPARAM_RANGE(0, 10).")
    if "num_trials" not in options:
        raise OptionError(f"Search spaces ({', '.join(spaces)}) need num_trials = N, the number of trials to run.")
    algorithm = options.get("hparam_tuning_algorithm", "VIZIER_DEFAULT")
    if algorithm == "GRID_SEARCH":
        grid(spaces)  # refuses float ranges now
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


def for_label(the_plan: Plan, table: pa.Table, label: str) -> Plan:
    """For model_type = 'auto', the plan with the model types of the label's task (classes or values)."""
    if not the_plan.auto:
        return the_plan
    column = query_column(table, label, "label column (input_label_cols)")
    column_kind(label, column.type)  # a label of a type sqlml cannot use is refused by name
    types = AUTO_TYPES[label_task(column, AUTO_MAX_CLASSES)]
    return dataclasses.replace(the_plan, model_types=types, num_trials=the_plan.num_trials or len(types))


def objective_for(the_plan: Plan, kind: ModelKind, classes: list | None, label: str | None) -> str:
    """The objective to optimize, now that the task and the classes are known."""
    objective = the_plan.objective or DEFAULT_OBJECTIVE[kind.task]
    if objective == "pr_auc" and classes and len(classes) > 2:
        raise OptionError(f"hparam_tuning_objectives 'pr_auc' needs a binary label; '{label}' has {len(classes)} classes.")
    if objective not in OBJECTIVES[kind.task]:
        raise OptionError(f"hparam_tuning_objectives {objective!r} is not an objective for a {kind.task} model; "
                          f"choose one of: {', '.join(OBJECTIVES[kind.task])}.")
    return objective


def trial_count(the_plan: Plan) -> int:
    """num_trials, or fewer where GRID_SEARCH's grid has fewer points."""
    if the_plan.algorithm != "GRID_SEARCH":
        return the_plan.num_trials
    return min(the_plan.num_trials, math.prod(len(v) for v in grid(the_plan.spaces).values()))


def suggest(trial, name: str, space: dict) -> t.Any:
    """One option value proposed by optuna within ``space``."""
    if space["function"] == "HPARAM_CANDIDATES":
        return _decode(trial.suggest_categorical(name, [encode(c) for c in space["args"][0]]))
    low, high = space["args"]
    if opts.OPTIONS[name].kind is int:
        return trial.suggest_int(name, int(low), int(high))
    return trial.suggest_float(name, float(low), float(high), log=name in LOG_SCALED and low > 0)


def encode(value: t.Any) -> t.Any:
    """optuna's categorical choices are scalars: lists (hidden_units) travel as JSON text."""
    return json.dumps(value) if isinstance(value, list) else value


def _decode(value: t.Any) -> t.Any:
    return json.loads(value) if isinstance(value, str) and value.startswith("[") else value


def grid(spaces: dict) -> dict[str, list]:
    """GRID_SEARCH's grid: candidates as listed, integer ranges as every integer in them."""
    points = {}
    for name, space in spaces.items():
        if space["function"] == "HPARAM_CANDIDATES":
            points[name] = space["args"][0]
        elif opts.OPTIONS[name].kind is int and space["args"][1] - space["args"][0] < MAX_GRID_INTEGERS:
            points[name] = list(range(int(space["args"][0]), int(space["args"][1]) + 1))
        else:
            raise OptionError(f"GRID_SEARCH needs a finite grid: give '{name}' as HPARAM_CANDIDATES([...]) "
                              "instead of a continuous HPARAM_RANGE.")
    return points


def inside(space: dict, value: t.Any) -> bool:
    """Whether an untuned default lies in a space (trial 1 then starts from it)."""
    if value is None:
        return False
    if space["function"] == "HPARAM_CANDIDATES":
        return value in space["args"][0]
    return space["args"][0] <= value <= space["args"][1]
