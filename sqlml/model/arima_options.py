"""ARIMA_PLUS and ARIMA_PLUS_XREG options: BigQuery's names, defaults and bounds, and what sqlml refuses.

Pages: ``bigqueryml-syntax-create-time-series`` and ``bigqueryml-syntax-create-multivariate-time-series``.
The declarations (:data:`SPECS`) join sqlml's option table with the scope ``forecasters`` (they apply
to the ARIMA model types only); :func:`check` adds what one option cannot say alone (auto_arima with
non_seasonal_order, include_drift with d = 1, bounds in order) and refuses the options every other
model type takes that mean nothing for a forecast, saying why. docs/forecasting.md lists them all.
"""

from __future__ import annotations

import typing as t

from ..errors import OptionError

#: BigQuery's data frequencies, and the seasonal periods (in points) each seasonality has at each.
FREQUENCIES = ("AUTO_FREQUENCY", "PER_MINUTE", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "QUARTERLY", "YEARLY")
SEASONALITIES = ("NO_SEASONALITY", "AUTO", "DAILY", "WEEKLY", "MONTHLY", "QUARTERLY", "YEARLY")
#: BigQuery's regional holiday sets: lists of its own, which the holidays package does not have.
REGIONAL_SETS = ("GLOBAL", "NA", "JAPAC", "EMEA", "LAC")

#: Declarations for :data:`sqlml.model.options.OPTIONS` (keyword arguments of ``Option``).
SPECS: dict[str, dict] = {
    "time_series_timestamp_col": {"kind": str},
    "time_series_data_col": {"kind": str},
    "time_series_id_col": {"kind": "str_list"},
    "horizon": {"kind": int, "low": 1, "high": 10_000},
    "auto_arima": {"kind": bool},
    "auto_arima_max_order": {"kind": int, "low": 1, "high": 5},
    "auto_arima_min_order": {"kind": int, "low": 0, "high": 5},
    "non_seasonal_order": {"kind": "int_list", "low": 0, "high": 5},
    "include_drift": {"kind": bool},
    "data_frequency": {"kind": str, "choices": FREQUENCIES},
    "seasonalities": {"kind": "str_list"},
    "holiday_region": {"kind": "str_list"},
    "clean_spikes_and_dips": {"kind": bool},
    "adjust_step_changes": {"kind": bool},
    "decompose_time_series": {"kind": bool},
    "trend_smoothing_window_size": {"kind": int, "low": 1, "high": 10_000},
    "time_series_length_fraction": {"kind": float, "low": 0.0, "high": 1.0, "low_open": True},
    "min_time_series_length": {"kind": int, "low": 1, "high": 10**9},
    "max_time_series_length": {"kind": int, "low": 1, "high": 10**9},
    "forecast_limit_lower_bound": {"kind": float},
    "forecast_limit_upper_bound": {"kind": float},
}

#: BigQuery's defaults (the options not listed have none: they are off unless given).
DEFAULTS = {"horizon": 1000, "auto_arima": True, "auto_arima_max_order": 5, "auto_arima_min_order": 0,
            "include_drift": False, "data_frequency": "AUTO_FREQUENCY", "seasonalities": ["AUTO"],
            "clean_spikes_and_dips": True, "adjust_step_changes": True, "decompose_time_series": True}
MIN_TIME_SERIES_LENGTH = 20  # BigQuery's default with time_series_length_fraction
#: The options an ARIMA_PLUS_XREG model does not take (BigQuery documents them for ARIMA_PLUS only).
NOT_XREG = ("time_series_length_fraction", "min_time_series_length", "max_time_series_length",
            "trend_smoothing_window_size", "decompose_time_series")

#: Options every model type takes that a forecast has no use for, and why.
_WHOLE_SERIES = ("an ARIMA model trains on every point of every series (BigQuery splits nothing); evaluate it "
                 "on later actuals with ML.EVALUATE(MODEL m, TABLE actuals)")
REFUSED = {
    "input_label_cols": "an ARIMA model forecasts time_series_data_col; name the column there",
    "data_split_method": _WHOLE_SERIES,
    "data_split_eval_fraction": _WHOLE_SERIES,
    "data_split_col": _WHOLE_SERIES,
    "max_training_rows": "a series cannot be sampled without breaking it; use max_time_series_length or "
                         "time_series_length_fraction to model the trend on the latest points",
    "sample_fraction": "a series cannot be sampled without breaking it; use time_series_length_fraction",
    "threshold": "a forecast has no decision threshold",
    "num_trials": "BigQuery tunes ARIMA models with auto.ARIMA (auto_arima = TRUE), not with trials",
    "max_parallel_trials": "BigQuery tunes ARIMA models with auto.ARIMA (auto_arima = TRUE), not with trials",
    "hparam_tuning_algorithm": "BigQuery tunes ARIMA models with auto.ARIMA (auto_arima = TRUE), not with trials",
    "hparam_tuning_objectives": "BigQuery tunes ARIMA models with auto.ARIMA (auto_arima = TRUE), not with trials",
    "deploy_significance": "the deploy gate compares forecasts on a held-out tail point by point; sqlml has no "
                           "bootstrap of forecast errors",
}
#: ML.EVALUATE's forecast metrics: what primary_metric may name for the deploy gate (lower is better).
METRICS = ("mean_absolute_percentage_error", "mean_absolute_error", "mean_squared_error", "root_mean_squared_error",
           "symmetric_mean_absolute_percentage_error")


def with_defaults(options: dict) -> dict:
    """``options`` with BigQuery's defaults for what was not given."""
    return {**DEFAULTS, **options}


def check(options: dict, model_type: str) -> dict:
    """Refuse what one option's own range cannot: missing columns, options that need or exclude each
    other, values of a list option; return the options with the id columns as a list."""
    for name, why in REFUSED.items():
        if name in options:
            raise OptionError(f"{name} is not an option of {model_type} models: {why}.")
    if model_type == "arima_plus_xreg":
        given = [name for name in NOT_XREG if name in options]
        if given:
            raise OptionError(f"{', '.join(given)} apply to ARIMA_PLUS only; BigQuery does not take them for "
                              "ARIMA_PLUS_XREG.")
    for name in ("time_series_timestamp_col", "time_series_data_col"):
        if not options.get(name):
            raise OptionError(f"{model_type} needs {name}: OPTIONS (model_type = '{model_type}', "
                              "time_series_timestamp_col = 'day', time_series_data_col = 'flights', ...).")
    full = with_defaults(options)
    _check_orders(full)
    _check_lengths(full)
    _check_seasonalities(full["seasonalities"])
    if "holiday_region" in full:
        full["holiday_region"] = holiday_regions(full["holiday_region"])
    low, high = full.get("forecast_limit_lower_bound"), full.get("forecast_limit_upper_bound")
    if low is not None and high is not None and not low < high:
        raise OptionError(f"forecast_limit_lower_bound ({low:g}) must be less than forecast_limit_upper_bound "
                          f"({high:g}).")
    if options.get("primary_metric") is not None and options["primary_metric"] not in METRICS:
        raise OptionError(f"primary_metric {options['primary_metric']!r} is not a forecast metric; the deploy gate of "
                          f"an ARIMA model judges one of: {', '.join(METRICS)}.")
    return {**options, **{k: full[k] for k in ("holiday_region",) if k in full}}


def _check_orders(options: dict) -> None:
    order = options.get("non_seasonal_order")
    if options["auto_arima"]:
        if order is not None:
            raise OptionError("non_seasonal_order is used only with auto_arima = FALSE (auto.ARIMA chooses the order "
                              "itself); set auto_arima = FALSE to fix it.")
        if options["include_drift"]:
            raise OptionError("include_drift is used only with auto_arima = FALSE (auto.ARIMA decides the drift "
                              "itself when d is 1).")
        if options["auto_arima_min_order"] > options["auto_arima_max_order"]:
            raise OptionError(f"auto_arima_min_order ({options['auto_arima_min_order']}) is more than "
                              f"auto_arima_max_order ({options['auto_arima_max_order']}).")
        return
    if order is None or len(order) != 3:
        raise OptionError("auto_arima = FALSE needs non_seasonal_order = (p, d, q): p and q in 0..5, d in 0..2.")
    if order[1] > 2:
        raise OptionError(f"The d of non_seasonal_order must be 0, 1 or 2; got {order[1]}.")
    if options["include_drift"] and order[1] != 1:
        raise OptionError(f"include_drift needs a non-seasonal d of 1 (a drift is a constant of the differenced "
                          f"series); non_seasonal_order has d = {order[1]}.")


def _check_lengths(options: dict) -> None:
    if "max_time_series_length" in options and ("time_series_length_fraction" in options
                                                 or "min_time_series_length" in options):
        raise OptionError("max_time_series_length cannot be combined with time_series_length_fraction or "
                          "min_time_series_length (BigQuery: use one way of limiting the trend's points).")
    if "min_time_series_length" in options and "time_series_length_fraction" not in options:
        raise OptionError("min_time_series_length is used with time_series_length_fraction only: it is the least "
                          "number of points that fraction may leave.")


def _check_seasonalities(values: list[str]) -> None:
    upper = [v.upper() for v in values]
    unknown = [v for v in upper if v not in SEASONALITIES]
    if unknown:
        raise OptionError(f"seasonalities takes {', '.join(repr(s) for s in SEASONALITIES)}; got {unknown[0]!r}.")
    if len(upper) > 1 and ("NO_SEASONALITY" in upper or "AUTO" in upper):
        raise OptionError("seasonalities = ['NO_SEASONALITY'] or ['AUTO'] stand alone; list named seasonalities "
                          "(e.g. ['WEEKLY', 'YEARLY']) without them.")


def holiday_regions(values: t.Sequence[str]) -> list[str]:
    """Country codes the holidays package knows (ISO 3166, as BigQuery names them), upper-cased."""
    import holidays

    known = holidays.list_supported_countries()
    regions = []
    for value in values:
        code = value.upper()
        if code in REGIONAL_SETS:
            raise OptionError(f"holiday_region = '{code}' is one of BigQuery's own regional lists, which sqlml does "
                              "not have: name the countries (e.g. ['US', 'CA']); sqlml takes their holidays from "
                              "the holidays package.")
        if code not in known:
            raise OptionError(f"holiday_region '{value}' is not a country code the holidays package knows "
                              "(ISO 3166 alpha-2, e.g. 'US', 'GB', 'JP').")
        regions.append(code)
    return regions
