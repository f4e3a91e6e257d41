"""The ML.* table functions sqlml serves, as the planner sees them: names, argument shapes, and the
parameters each takes in its ``STRUCT(...)`` argument, validated like CREATE MODEL's options.

The handlers live in :mod:`sqlml.functions`; a test checks both tables name the same functions.
"""

from __future__ import annotations

import difflib
import math
import typing as t
from dataclasses import dataclass

from ..errors import ParameterError


@dataclass(frozen=True)
class Param:
    """One STRUCT field: its kind ('number', 'integer', 'boolean', 'string', 'names', 'numbers',
    'thresholds': an array of (column name, number) pairs), range (``high`` itself excluded when
    ``below``) and choices."""

    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    below: bool = False

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        text = {"number": "a number", "integer": "an integer", "boolean": "TRUE or FALSE", "string": "a string",
                "names": "a column name or an array of them", "numbers": "an array of numbers",
                "thresholds": "an array of (column name, number) pairs, as [('col_a', 0.1), ('col_b', 0.8)], "
                              "each number"}[self.kind]
        if self.low is not None or self.high is not None:
            text += f" in the range [{_bound(self.low, '-inf')}, {_bound(self.high, 'inf')}{')' if self.below else ']'}"
        return text

    def accepts(self, value: t.Any) -> bool:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if self.kind in ("number", "integer"):
            if not number or (self.kind == "integer" and value != int(value)) or not math.isfinite(value):
                return False
            return (self.low is None or value >= self.low) and (
                self.high is None or value < self.high or (value == self.high and not self.below))
        if self.kind == "boolean":
            return isinstance(value, bool)
        if self.kind == "string":
            return isinstance(value, str) and (self.choices is None or value.lower() in self.choices)
        if self.kind == "names":
            return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        if self.kind == "thresholds":
            number = Param("number", self.low, self.high, below=self.below)
            return isinstance(value, list) and all(
                isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and number.accepts(v[1]) for v in value)
        return isinstance(value, list) and all(Param("number", self.low, self.high).accepts(v) for v in value)


def _bound(value: float | None, default: str) -> str:
    return default if value is None else f"{value:g}"


THRESHOLD = Param("number", 0.0, 1.0)
TRIAL = {"trial_id": Param("integer", 1)}
DRIFT_THRESHOLD = Param("number", 0.0, 1.0, below=True)
#: What ML.VALIDATE_DATA_SKEW and ML.VALIDATE_DATA_DRIFT share (sqlml/functions/drift.py).
DRIFT = {"categorical_default_threshold": DRIFT_THRESHOLD, "numerical_default_threshold": DRIFT_THRESHOLD,
         "categorical_metric_type": Param("string", choices=("l_infty", "jensen_shannon_divergence")),
         "numerical_metric_type": Param("string", choices=("jensen_shannon_divergence",)),
         "thresholds": Param("thresholds", 0.0, 1.0, below=True)}
#: Monitoring over time (sqlml.functions.windows): rows bucketed by a DATE/TIMESTAMP column.
WINDOWS = {"time_column": Param("string"),
           "time_window": Param("string", choices=("day", "week", "month", "quarter", "year"))}
OVER_TIME = {**WINDOWS, "degradation_margin": Param("number", 0.0)}
#: Time series forecasts (sqlml.functions.forecast): points ahead and the prediction intervals' level.
FORECASTING = {"horizon": Param("integer", 1, 10_000), "confidence_level": Param("number", 0.0, 1.0, below=True)}
#: The dialects ML.GENERATE_SQL writes (sqlml.compile).
SQL_DIALECTS = ("duckdb", "spark", "postgres", "snowflake", "bigquery", "sqlite")
SLICES = {"slice_by": Param("names"), "min_slice_size": Param("integer", 0), "slice_margin": Param("number", 0.0),
          "slice_combinations": Param("boolean"), "primary_metric": Param("string"), "baselines": Param("boolean")}

#: Every ML.* function that has a handler, with the STRUCT parameters it takes.
PARAMETERS: dict[str, dict[str, Param]] = {
    "PREDICT": {"threshold": THRESHOLD, "challenger_fraction": Param("number", 0.0, 1.0), "split_key": Param("string"),
                **TRIAL},
    "EXPLAIN_PREDICT": {"threshold": THRESHOLD, "top_k_features": Param("integer", 1),
                        "integrated_gradients_num_steps": Param("integer", 1, 30), **TRIAL},
    "EVALUATE": {"threshold": THRESHOLD, **SLICES, **OVER_TIME, "top_k": Param("integer", 1), **TRIAL, **FORECASTING,
                 "perform_aggregation": Param("boolean")},
    "CONFUSION_MATRIX": {"threshold": THRESHOLD, **TRIAL},
    "ROC_CURVE": {"thresholds": Param("numbers", 0.0, 1.0), **TRIAL},
    "THRESHOLD_METRICS": {"thresholds": Param("numbers", 0.0, 1.0), **TRIAL},
    "TRAINING_INFO": dict(TRIAL),
    "FEATURE_INFO": dict(TRIAL),
    "WEIGHTS": {"standardize": Param("boolean"), **TRIAL},
    "BASELINE": {},
    "FAIRNESS": {"sensitive_col": Param("names"), "threshold": THRESHOLD, **TRIAL},
    "GLOBAL_EXPLAIN": {"class_level_explain": Param("boolean"), "method": Param("string", choices=("shap", "permutation")),
                       **TRIAL},
    "FEATURE_IMPORTANCE": dict(TRIAL),
    "TRIAL_INFO": {},
    "LEADERBOARD": {},
    "MODEL_CARD": {"format": Param("string", choices=("markdown", "html")), "images": Param("boolean"),
                   "sensitive_col": Param("names"), "threshold": THRESHOLD, **SLICES, **OVER_TIME, **TRIAL},
    "DESCRIBE_DATA": {"label_col": Param("string"), "num_quantiles": Param("integer", 1, 100_000),
                      "num_array_length_quantiles": Param("integer", 1, 100_000), "top_k": Param("integer", 1, 10_000)},
    "TRANSFORM": {},
    "VALIDATE_DATA_DRIFT": {"num_histogram_buckets": Param("integer", 1, 1000),
                            "num_quantiles_histogram_buckets": Param("integer", 1, 1000),
                            "num_values_histogram_buckets": Param("integer", 1, 1000),
                            "num_rank_histogram_buckets": Param("integer", 1, 10_000), **DRIFT},
    "VALIDATE_DATA_SKEW": dict(DRIFT),
    "ESTIMATE_PERFORMANCE": {"threshold": THRESHOLD, **WINDOWS, **TRIAL},
    "REVIEW_QUEUE": {"top_k": Param("integer", 1), "max_confidence": Param("number", 0.0, 1.0), "threshold": THRESHOLD,
                     **TRIAL},
    "COMPARE": {"num_bootstrap": Param("integer", 100, 100_000), "random_seed": Param("integer", 0),
                "threshold": THRESHOLD},
    "RECOMMEND": {"top_k": Param("integer", 1), "exclude_rated": Param("boolean"), **TRIAL},
    "GENERATE_EMBEDDING": dict(TRIAL),
    "PRINCIPAL_COMPONENTS": dict(TRIAL),
    "PRINCIPAL_COMPONENT_INFO": dict(TRIAL),
    "RECONSTRUCTION_LOSS": dict(TRIAL),
    # k-means, PCA, autoencoder: contamination; time series models: anomaly_prob_threshold (functions/anomalies.py)
    "DETECT_ANOMALIES": {"contamination": Param("number", 0.0, 0.5),
                         "anomaly_prob_threshold": Param("number", 0.0, 1.0, below=True), **TRIAL},
    "FORECAST": dict(FORECASTING),
    "EXPLAIN_FORECAST": dict(FORECASTING),
    "ARIMA_EVALUATE": {"show_all_candidate_models": Param("boolean")},
    "ARIMA_COEFFICIENTS": {},
    "HOLIDAY_INFO": {},
    "GENERATE_SQL": {"dialect": Param("string", choices=SQL_DIALECTS), "input_table": Param("string")},
}
AVAILABLE = frozenset(PARAMETERS)

#: Functions whose last argument may be a value instead of a STRUCT, and the parameter that value is:
#: ``ML.ROC_CURVE(MODEL m, TABLE t, GENERATE_ARRAY(0, 1, 0.01))``.
ARGUMENTS = {"ROC_CURVE": "thresholds", "THRESHOLD_METRICS": "thresholds"}

#: Functions whose result depends only on the model, not on input data.
MODEL_ONLY = frozenset({"TRAINING_INFO", "FEATURE_INFO", "WEIGHTS", "GLOBAL_EXPLAIN", "FEATURE_IMPORTANCE",
                        "TRIAL_INFO", "LEADERBOARD", "PRINCIPAL_COMPONENTS", "PRINCIPAL_COMPONENT_INFO",
                        "ARIMA_EVALUATE", "ARIMA_COEFFICIENTS", "HOLIDAY_INFO"})

#: Functions that take two models: ``ML.COMPARE(MODEL a, MODEL b, data)``.
TWO_MODELS = frozenset({"COMPARE"})

#: Functions that take two data arguments and no model: ``ML.VALIDATE_DATA_DRIFT(TABLE base, TABLE study)``.
TWO_INPUTS = frozenset({"VALIDATE_DATA_DRIFT"})

#: Functions that read their input as the query gives it, not through the model's TRANSFORM.
RAW_INPUT = frozenset({"VALIDATE_DATA_SKEW", "GENERATE_SQL"})

#: Functions that read the tuning trials of a version.
READS_TRIALS = frozenset({"TRIAL_INFO", "LEADERBOARD", "EVALUATE", "WEIGHTS"})


def check_params(function: str, params: dict[str, t.Any]) -> dict[str, t.Any]:
    """``params`` if every field is one ``function`` takes, with a value of the right type and range;
    a NULL field is left out, so it means the parameter's default (``STRUCT(NULL AS top_k)`` is ``STRUCT()``)."""
    known = PARAMETERS[function]
    for name, value in params.items():
        param = known.get(name)
        if param is None:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            takes = f"It takes: {', '.join(sorted(known))}." if known else "It takes no parameters."
            raise ParameterError(f"ML.{function} has no parameter '{name}'.{hint} {takes}")
        if value is not None and not param.accepts(value):
            raise ParameterError(f"The '{name}' parameter of ML.{function} must be {param.describe()}. Got {value!r}.")
    return {name: value for name, value in params.items() if value is not None}


def check_models(function: str, model: bool, model_b: bool, data: bool) -> None:
    """Refuse a second MODEL where one is expected, and ML.COMPARE without both models or its data."""
    if function not in TWO_MODELS:
        if model_b:
            raise ParameterError(f"ML.{function} takes one MODEL argument; only ML.COMPARE takes two.")
        return
    if not (model and model_b and data):
        raise ParameterError(f"ML.{function} needs two models and the rows to compare them on: "
                             f"ML.{function}(MODEL m VERSION 1, MODEL m VERSION 2, TABLE t[, STRUCT(...)]).")


def check_inputs(function: str, model: bool, data: bool, data_b: bool) -> None:
    """Refuse a second data argument where one is expected, and ML.VALIDATE_DATA_DRIFT without both or with a model."""
    if function not in TWO_INPUTS:
        if data_b:
            raise ParameterError(f"ML.{function} takes one data argument (TABLE t or a query); only "
                                 "ML.VALIDATE_DATA_DRIFT takes two.")
        return
    if model or not (data and data_b):
        raise ParameterError(f"ML.{function} takes two data arguments and no model: ML.{function}(TABLE base | "
                             "(query), TABLE study | (query)[, STRUCT(...)]).")


def check_argument(function: str, value: t.Any) -> t.Any:
    """``value`` if ``function`` takes a last argument that is not a STRUCT, and ``value`` fits it."""
    name = ARGUMENTS.get(function)
    if name is None:
        raise ParameterError(f"ML.{function}'s last argument must be STRUCT(value AS name, ...); got {value!r}.")
    check_params(function, {name: value})
    return value
