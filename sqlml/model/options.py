"""CREATE MODEL's options, validated in scikit-learn's style.

Each option is declared once in :data:`OPTIONS` with its type, range and scope; which model types
it applies to comes from the kinds (:data:`sqlml.model.kinds.MODEL_KINDS`). Errors say what was
expected and what came, and suggest the closest valid name."""

from __future__ import annotations

import difflib
import math
import typing as t
from dataclasses import dataclass

from ..errors import OptionError
from . import arima_options
from . import bigquery_options as bigquery
from .kinds import CLASSIFICATION, FORECASTING, MODEL_KINDS, REGRESSION

#: Scopes: every model type; the types whose kind takes the option (ModelKind.options); classifiers;
#: classifiers and regressors; model_type = 'auto' only; the forecasting types (ARIMA_PLUS, ARIMA_PLUS_XREG).
ALL, TAKEN, CLASSIFIERS, SUPERVISED, AUTO = "all", "taken", "classifiers", "supervised", "auto"
FORECASTERS = "forecasters"


@dataclass(frozen=True)
class Option:
    """One option: its Python type, allowed range or choices, and its scope (which model types take it)."""

    kind: type | str  # int, float, bool, str, or "str_list" / "int_list"
    scope: str = ALL
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] | None = None
    tunable: bool = False  # accepts HPARAM_RANGE / HPARAM_CANDIDATES (sqlml.tuning)

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        names = {int: "an integer", float: "a number", bool: "TRUE or FALSE", str: "a string",
                 "str_list": "an array of strings", "int_list": "an array of integers",
                 "label_weights": "an array of STRUCT(label, weight)"}
        text = names[self.kind] if self.kind in names else self.kind.__doc__  # or a conversion function
        if self.low is not None or self.high is not None:
            left = "(" if self.low_open else "["
            text += f" in the range {left}{_num(self.low, '-inf')}, {_num(self.high, 'inf')}]"
        return text


def _num(value: float | None, default: str) -> str:
    if value is None:
        return default
    whole = isinstance(value, int) or (value.is_integer() and abs(value) >= 1000)
    return f"{int(value):,}" if whole else f"{value:g}"


OPTIONS: dict[str, Option] = {
    "model_type": Option(str),  # choices are filled in by sqlml.models
    "input_label_cols": Option("str_list"),
    "data_split_method": Option(str, choices=("AUTO_SPLIT", "RANDOM", "SEQ", "CUSTOM", "NO_SPLIT")),
    "data_split_eval_fraction": Option(float, low=0.0, high=1.0, low_open=True),
    "data_split_col": Option(str),
    "l1_reg": Option(float, TAKEN, low=0.0, high=1e6, tunable=True),
    "l2_reg": Option(float, TAKEN, low=0.0, high=1e6, tunable=True),
    "max_iterations": Option(int, TAKEN, low=1, high=10_000, tunable=True),
    "learn_rate": Option(float, TAKEN, low=0.0, high=10.0, low_open=True, tunable=True),
    "early_stop": Option(bool, TAKEN, tunable=True),
    "min_rel_progress": Option(float, TAKEN, low=0.0, high=1.0),
    "max_tree_depth": Option(int, TAKEN, low=1, high=64, tunable=True),
    "num_parallel_tree": Option(int, TAKEN, low=1, high=10_000, tunable=True),
    "hidden_units": Option("int_list", TAKEN, low=1, high=100_000, tunable=True),
    "num_clusters": Option(int, TAKEN, low=2, high=100, tunable=True),
    # Matrix factorization (sqlml.train.families); BigQuery's names, ranges and defaults.
    "feedback_type": Option(str, TAKEN, choices=("EXPLICIT", "IMPLICIT")),
    "num_factors": Option(int, TAKEN, low=1, high=1000, tunable=True),
    "user_col": Option(str, TAKEN),
    "item_col": Option(str, TAKEN),
    "rating_col": Option(str, TAKEN),
    "wals_alpha": Option(float, TAKEN, low=0.0, high=1e6, tunable=True),
    # PCA.
    "num_principal_components": Option(int, TAKEN, low=1, high=10_000),
    "pca_explained_variance_ratio": Option(float, TAKEN, low=0.0, high=1.0, low_open=True),
    "scale_features": Option(bool, TAKEN),
    "pca_solver": Option(str, TAKEN, choices=("FULL", "RANDOMIZED", "AUTO")),
    "random_seed": Option(int, low=0, high=2**32 - 1),
    # Training on part of the training split (sqlml.sampling).
    "max_training_rows": Option(int, low=1, high=10**12),
    "sample_fraction": Option(float, low=0.0, high=1.0, low_open=True),
    "threshold": Option(float, low=0.0, high=1.0),
    # Imbalanced classes (sqlml.imbalance checks how they combine).
    "auto_class_weights": Option(bool, CLASSIFIERS),
    "class_weights": Option("label_weights", CLASSIFIERS),
    "instance_weight_col": Option(str, SUPERVISED),
    "sampling": Option(str, CLASSIFIERS, choices=("oversample", "undersample", "smote")),
    "sampling_ratio": Option(float, CLASSIFIERS, low=0.0, high=1.0, low_open=True),
    # Hyperparameter tuning and model_type = 'auto' (sqlml.tuning checks how they combine).
    "num_trials": Option(int, low=1, high=100),
    "max_parallel_trials": Option(int, low=1, high=5),
    "hparam_tuning_algorithm": Option(str, choices=("VIZIER_DEFAULT", "RANDOM_SEARCH", "GRID_SEARCH")),
    "hparam_tuning_objectives": Option("str_list"),
    "max_trials": Option(int, AUTO, low=1, high=100),
    "time_budget_seconds": Option(float, AUTO, low=0.0, high=259_200.0, low_open=True),
    # The deploy gate on every retrain (sqlml.release_gate, docs/release.md).
    "deploy": Option(str, choices=("if_not_worse", "always", "never")),
    "deploy_tolerance": Option(float, low=0.0, high=1e12),
    "deploy_significance": Option(float, low=0.0, high=1.0, low_open=True),
    "primary_metric": Option(str),
    # Distillation: the teacher whose predictions a student learns (sqlml.train.distill).
    "distill_from": Option(str, SUPERVISED),
    "distill_from_version": Option(int, SUPERVISED, low=1),
    "description": Option(str),
    "intended_use": Option(str),
    "limitations": Option(str),
}
# BigQuery ML's other documented options: what sqlml does with each is in sqlml.model.bigquery_options.
OPTIONS.update({name: Option(**{"scope": TAKEN, **spec}) for name, spec in bigquery.SPECS.items()})
# Time series models' options (sqlml.model.arima_options): they apply to the forecasting types only.
OPTIONS.update({name: Option(**{"scope": FORECASTERS, **spec}) for name, spec in arima_options.SPECS.items()})


def validate(options: dict[str, t.Any], model_type: str | None, extra: dict[str, Option] | None = None) -> dict:
    """Check names, types, ranges and applicability; return the options with normalized values."""
    table = {**OPTIONS, **(extra or {})}
    checked = {}
    for name, value in options.items():
        option = table.get(name)
        if option is None:
            raise OptionError(_unknown(name, table))
        applies = applies_to(name, option)
        if model_type and applies != ALL and model_type not in applies:
            raise OptionError(
                f"Option '{name}' does not apply to model_type '{model_type}'; it applies to {', '.join(applies)}."
            )
        checked[name] = check_space(name, option, value) if is_space(value) else check_value(name, option, value)
    bigquery.check(checked, model_type)
    if "primary_metric" in checked and model_type:
        checked["primary_metric"] = primary_metric(checked["primary_metric"], model_type)
    return checked


def primary_metric(name: str, model_type: str) -> str:
    """``primary_metric`` as a metric of ``model_type``'s task (model_type 'auto': of a classifier or a
    regressor), refused at CREATE MODEL with the names it may be, not stored to fail at the first evaluation."""
    from .metrics import OBJECTIVES
    kind = MODEL_KINDS.get(model_type)
    valid = OBJECTIVES[kind.task] if kind else OBJECTIVES[CLASSIFICATION] + OBJECTIVES[REGRESSION]
    if name.lower() in valid:
        return name.lower()
    close = difflib.get_close_matches(name.lower(), valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    what = f"a {kind.task} model ({model_type})" if kind else "model_type 'auto' (a classifier or a regressor)"
    raise OptionError(f"primary_metric {name!r} is not a metric of {what}.{hint} Valid primary metrics: "
                      f"{', '.join(valid)}.")


def applies_to(name: str, option: Option) -> tuple[str, ...] | str:
    """The model types an option applies to (classifiers before regressors), or ALL."""
    if option.scope in (ALL, AUTO):
        return ALL if option.scope == ALL else ("auto",)
    if option.scope == TAKEN:
        return tuple(kind.name for kind in MODEL_KINDS.values() if name in kind.options or bigquery.takes(name, kind.name))
    if option.scope == FORECASTERS:
        return tuple(kind.name for kind in MODEL_KINDS.values() if kind.task == FORECASTING)
    tasks = (CLASSIFICATION,) if option.scope == CLASSIFIERS else (CLASSIFICATION, REGRESSION)
    return tuple(kind.name for task in tasks for kind in MODEL_KINDS.values() if kind.task == task)


SPACES = ("HPARAM_RANGE", "HPARAM_CANDIDATES")


def is_space(value: t.Any) -> bool:
    """Whether an option value is a search space, ``HPARAM_RANGE(a, b)`` or ``HPARAM_CANDIDATES([...])``."""
    return isinstance(value, dict) and value.get("function") in SPACES


def check_space(name: str, option: Option, space: dict) -> dict:
    """A search space with every end or candidate checked against the option's own type and range."""
    function, args = space["function"], space.get("args", [])
    if not option.tunable:
        tunable = sorted(n for n, o in OPTIONS.items() if o.tunable)
        raise OptionError(f"Option '{name}' cannot be tuned with {function}; tunable options are: {', '.join(tunable)}.")
    if function == "HPARAM_RANGE":
        if option.kind not in (int, float) or len(args) != 2:
            raise OptionError(f"HPARAM_RANGE on '{name}' needs two numbers, HPARAM_RANGE(low, high); "
                              f"'{name}' takes {option.describe()}: use HPARAM_CANDIDATES([...]).")
        low, high = (check_value(name, option, a) for a in args)
        if not low < high:
            raise OptionError(f"HPARAM_RANGE on '{name}' needs low < high; got HPARAM_RANGE({args[0]}, {args[1]}).")
        return {"function": function, "args": [low, high]}
    if len(args) != 1 or not isinstance(args[0], list) or not args[0]:
        raise OptionError(f"HPARAM_CANDIDATES on '{name}' needs one non-empty array: HPARAM_CANDIDATES([a, b, ...]).")
    candidates = [c[0] if option.kind == "int_list" and _is_wrapped_list(c) else c for c in args[0]]
    return {"function": function, "args": [[check_value(name, option, c) for c in candidates]]}


def _is_wrapped_list(value: t.Any) -> bool:
    """BigQuery writes list candidates as STRUCT([16, 8]), which arrives as [[16, 8]]."""
    return isinstance(value, list) and len(value) == 1 and isinstance(value[0], list)


def _unknown(name: str, table: dict[str, Option]) -> str:
    close = difflib.get_close_matches(name, table, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"Unknown option '{name}'.{hint} Valid options are: {', '.join(sorted(table))}."


def check_value(name: str, option: Option, value: t.Any) -> t.Any:
    """Return ``value`` converted to the option's type, or raise an OptionError that shows both."""
    converted = _convert(option.kind, value)
    ok = converted is not None
    if ok and option.choices:
        converted = str(converted).upper() if option.choices[0].isupper() else str(converted).lower()
        ok = converted in option.choices
    if ok:
        numbers = converted if isinstance(converted, list) else [converted]
        ok = all(_in_range(option, v) for v in numbers if isinstance(v, (int, float)) and not isinstance(v, bool))
    if not ok:
        raise OptionError(f"The '{name}' option must be {option.describe()}. Got {value!r} instead.")
    return converted


def _convert(kind: type | str, value: t.Any) -> t.Any:
    if kind is bool:
        return value if isinstance(value, bool) else None
    if kind is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if kind is float:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if kind is str:
        return value if isinstance(value, str) else None
    if kind == "label_weights":
        return _label_weights(value)
    if callable(kind):
        return kind(value)
    item = str if kind == "str_list" else int
    if isinstance(value, item) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, list) and value and all(isinstance(v, item) and not isinstance(v, bool) for v in value):
        return value
    return None


def _label_weights(value: t.Any) -> list | None:
    """[STRUCT(label, weight), ...] arrives as [[label, weight], ...]; weights become floats."""
    if not isinstance(value, list) or not value:
        return None
    pairs = []
    for entry in value:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], (int, float))
                and not isinstance(entry[1], bool) and isinstance(entry[0], (str, int, float, bool))):
            return None
        pairs.append([entry[0], float(entry[1])])
    return pairs


def _in_range(option: Option, value: float) -> bool:
    if math.isnan(value):
        return False
    if option.low is not None and (value < option.low or (option.low_open and value == option.low)):
        return False
    return option.high is None or value <= option.high
