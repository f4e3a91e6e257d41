"""ML.FORECAST, ML.EXPLAIN_FORECAST, ML.ARIMA_EVALUATE, ML.ARIMA_COEFFICIENTS and ML.HOLIDAY_INFO of
ARIMA_PLUS and ARIMA_PLUS_XREG models, with BigQuery's arguments and output columns.

    SELECT * FROM ML.FORECAST(MODEL flights_forecast, STRUCT(31 AS horizon, 0.9 AS confidence_level))

Every series the model could fit is forecast from its stored state (:mod:`sqlml.model.arima`); the id
columns come first, with their own names and types. An ARIMA_PLUS_XREG model forecasts from the future
values of its regressors: a table with the id, timestamp and regressor columns of the points ahead.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import DataError, ParameterError
from ..model import arima
from ..model.arima import SEASONAL_COLUMNS, ArimaModel, Series
from .base import Call

DEFAULT_HORIZON = 3
DEFAULT_CONFIDENCE = 0.95


def settings(call: Call, model: ArimaModel) -> tuple[int, float]:
    """(horizon, confidence_level) of the call, checked against the model's horizon."""
    horizon = int(call.param("horizon") or DEFAULT_HORIZON)
    confidence = call.param("confidence_level")
    confidence = DEFAULT_CONFIDENCE if confidence is None else float(confidence)
    if horizon > model.header["horizon"]:
        raise ParameterError(f"horizon {horizon:,} is more than the model's horizon {model.header['horizon']:,} (set "
                             "at CREATE MODEL with the horizon option): retrain with a larger horizon to forecast "
                             "further.")
    return horizon, confidence


def forecasts(call: Call, model: ArimaModel, horizon: int, confidence: float) -> list[tuple[Series, arima.Forecast]]:
    """Each fitted series with its forecast (of ``horizon`` points, or the regressors' points for XREG)."""
    regressors = future_regressors(call, model, horizon)
    return [(series, series.forecast(horizon, confidence, regressors.get(series.position)))
            for series in model.fitted()]


def future_regressors(call: Call, model: ArimaModel, horizon: int,
                      series: list[Series] | None = None) -> dict[int, np.ndarray]:
    """Series position → its regressors on the ``horizon`` points ahead, from the call's table (XREG)."""
    names = model.header["regressors"]
    if not names:
        if call.has_input and call.function in ("FORECAST", "EXPLAIN_FORECAST"):
            raise ParameterError(f"ML.{call.function} of an ARIMA_PLUS model takes no table; only ARIMA_PLUS_XREG "
                                 "models read future regressor values.")
        return {}
    if not call.has_input:
        raise ParameterError(f"ML.{call.function} of an ARIMA_PLUS_XREG model needs the regressors' future values: "
                             f"ML.{call.function}(MODEL m, STRUCT({horizon} AS horizon), TABLE future) with columns "
                             f"{', '.join(model.header['id_cols'] + [model.header['timestamp_col']] + names)}.")
    table = call.input_table()
    ids, timestamp, columns = input_columns(table, model, names)
    points, positions = grid_points(table, model, ids, timestamp)
    values = np.column_stack([table[c].cast(pa.float64()).to_numpy(zero_copy_only=False) for c in columns])
    found: dict[int, np.ndarray] = {}
    for one in model.fitted() if series is None else series:
        wanted = one.grid_index(horizon)
        mine = positions == one.position
        at = {p: i for i, p in zip(np.flatnonzero(mine).tolist(), points[mine].tolist())}
        missing = [p for p in wanted.tolist() if p not in at]
        if missing:
            raise DataError(f"The future regressors have no row for {len(missing):,} of the {horizon:,} time points "
                            f"ahead of series {_describe(model, one.position)}, first "
                            f"{model.timestamps(np.array(missing[:1]))[0]}: give a row for every point forecast.")
        ahead = values[[at[p] for p in wanted.tolist()]]
        nulls = np.isnan(ahead)
        if nulls.any():
            column = int(np.flatnonzero(nulls.any(axis=0))[0])
            points = wanted[nulls[:, column]]
            raise DataError(f"The external regressor '{names[column]}' is NULL at {len(points):,} of the {horizon:,} time "
                            f"points ahead of series {_describe(model, one.position)}, first "
                            f"{model.timestamps(points[:1])[0]}: ARIMA_PLUS_XREG needs every regressor's value at every "
                            "point forecast, as in training.")
        found[one.position] = ahead
    return found


def input_columns(table: pa.Table, model: ArimaModel, others: list[str]) -> tuple[list[str], str, list[str]]:
    """(id columns, timestamp column, ``others``) of an input table, as it spells them (case does not matter)."""
    by_lower = {c.lower(): c for c in table.column_names}
    wanted = [*model.header["id_cols"], model.header["timestamp_col"], *others]
    missing = [c for c in wanted if c.lower() not in by_lower]
    if missing:
        raise DataError(f"The input has no column {', '.join(missing)}; it needs {', '.join(wanted)}.")
    return ([by_lower[c.lower()] for c in model.header["id_cols"]], by_lower[model.header["timestamp_col"].lower()],
            [by_lower[c.lower()] for c in others])


def grid_points(table: pa.Table, model: ArimaModel, ids: list[str], timestamp: str) -> tuple[np.ndarray, np.ndarray]:
    """Each input row's grid point and series position (−1: a series the model does not have)."""
    from ..train.arima_series import micros
    timestamps = table[timestamp]
    if not (pa.types.is_date(timestamps.type) or pa.types.is_timestamp(timestamps.type)):
        raise DataError(f"The input's {timestamp} must be a DATE or TIMESTAMP; it is {timestamps.type}.")
    if timestamps.null_count:
        raise DataError(f"The input's {timestamp} is NULL in {timestamps.null_count:,} row(s).")
    keys = table.select(ids).rename_columns(model.header["id_cols"])
    return model.grid.index(micros(timestamps)), model.positions(keys)


def _describe(model: ArimaModel, position: int) -> str:
    row = model.ids.slice(position, 1).to_pylist()
    return ", ".join(f"{k} = {v!r}" for k, v in row[0].items()) if row and row[0] else "(the only one)"


def ids_of(model: ArimaModel, positions: list[int], repeats: list[int]) -> dict[str, pa.Array]:
    """The id columns for rows of ``positions`` each repeated ``repeats`` times."""
    index = pa.array(np.repeat(np.asarray(positions, dtype=np.int64), repeats))
    return {name: model.ids[name].take(index) for name in model.ids.column_names}


def forecast(call: Call) -> pa.Table:
    """ML.FORECAST: the next ``horizon`` points of every series, with prediction intervals."""
    model = arima.of(call.require_model())
    horizon, confidence = settings(call, model)
    found = forecasts(call, model, horizon, confidence)
    limits = model.limits
    columns = {**ids_of(model, [s.position for s, _ in found], [horizon] * len(found)),
               "forecast_timestamp": model.timestamps(np.concatenate([s.grid_index(horizon) for s, _ in found] or [[]])),
               "forecast_value": _joined([arima.untransform(f.mean, limits) for _, f in found]),
               "standard_error": _joined([f.standard_error for _, f in found]),
               "confidence_level": pa.array(np.full(horizon * len(found), confidence)),
               "prediction_interval_lower_bound": _joined([arima.untransform(f.lower, limits) for _, f in found]),
               "prediction_interval_upper_bound": _joined([arima.untransform(f.upper, limits) for _, f in found])}
    return pa.table(columns)


def _joined(parts: list[np.ndarray]) -> pa.Array:
    return pa.array(np.concatenate(parts) if parts else np.zeros(0), type=pa.float64())


HISTORY, FORECAST = "history", "forecast"


def explain_forecast(call: Call) -> pa.Table:
    """ML.EXPLAIN_FORECAST: every series' history and forecast with their parts (which add up to the data)."""
    loaded = call.require_model()
    model = arima.of(loaded)
    if not model.header["decompose"]:
        raise ParameterError(f"ML.EXPLAIN_FORECAST needs a model trained with decompose_time_series = TRUE; "
                             f"'{loaded.info.name}' was trained without it (as in BigQuery).")
    if any(bound is not None for bound in model.limits):
        raise ParameterError("ML.EXPLAIN_FORECAST of a model with forecast limits is not available: its parts add up "
                             "on the log (logit) scale the model is fitted on, not in the data's units. Use "
                             "ML.FORECAST.")
    horizon, confidence = settings(call, model)
    pieces = [_explained(model, series, found, confidence) for series, found in forecasts(call, model, horizon, confidence)]
    if not pieces:
        return pa.table({})
    return pa.concat_tables(pieces)


def _explained(model: ArimaModel, series: Series, found: arima.Forecast, confidence: float) -> pa.Table:
    parts = series.history()
    n, h = series.n, len(found.mean)
    seasonal = {f"seasonal_period_{name.lower()}": _seasonal(series, name, parts["seasonal"], found.seasonal)
                for name in SEASONAL_COLUMNS}
    holidays = bool(model.header["holiday_regions"])
    null = [None] * h
    columns = {
        **ids_of(model, [series.position], [n + h]),
        "time_series_timestamp": model.timestamps(np.concatenate([series.grid_index(), series.grid_index(h)])),
        "time_series_type": pa.array([HISTORY] * n + [FORECAST] * h),
        "time_series_data": _values(parts["data"], found.mean),
        "time_series_adjusted_data": _values(parts["adjusted"], found.mean),
        "standard_error": _values(np.full(n, series.sigma), found.standard_error),
        "confidence_level": pa.array([None] * n + [confidence] * h, type=pa.float64()),
        "prediction_interval_lower_bound": pa.array([None] * n + found.lower.tolist(), type=pa.float64()),
        "prediction_interval_upper_bound": pa.array([None] * n + found.upper.tolist(), type=pa.float64()),
        "trend": _values(parts["trend"], found.trend),
        **seasonal,
        "holiday_effect": _values(parts["holiday"], found.holiday) if holidays else pa.nulls(n + h, pa.float64()),
        "spikes_and_dips": pa.array(parts["spikes"].tolist() + null, type=pa.float64()),
        "step_changes": pa.array(parts["steps"].tolist() + null, type=pa.float64()),
        "residual": pa.array(parts["residual"].tolist() + null, type=pa.float64()),
    }
    return pa.table(columns)


def _seasonal(series: Series, name: str, history: np.ndarray, ahead: np.ndarray) -> pa.Array:
    if name not in series.meta["seasonalities"]:
        return pa.nulls(series.n + ahead.shape[1], pa.float64())
    j = series.meta["seasonalities"].index(name)
    return _values(history[j], ahead[j])


def _values(history: np.ndarray, ahead: np.ndarray) -> pa.Array:
    return pa.array(np.concatenate([history, ahead]), type=pa.float64())


def arima_evaluate(call: Call) -> pa.Table:
    """ML.ARIMA_EVALUATE: per series its ARIMA model and pipeline (or why it could not be fitted);
    ``show_all_candidate_models``: every model auto.ARIMA tried."""
    model = arima.of(call.require_model())
    return pa.Table.from_pylist(evaluation_rows(model, bool(call.param("show_all_candidate_models", False))),
                                schema=_schema(model, ARIMA_EVALUATE))


ARIMA_EVALUATE = pa.schema([("non_seasonal_p", pa.int64()), ("non_seasonal_d", pa.int64()),
                            ("non_seasonal_q", pa.int64()), ("has_drift", pa.bool_()),
                            ("log_likelihood", pa.float64()), ("AIC", pa.float64()), ("variance", pa.float64()),
                            ("seasonal_periods", pa.list_(pa.string())), ("has_holiday_effect", pa.bool_()),
                            ("has_spikes_and_dips", pa.bool_()), ("has_step_changes", pa.bool_()),
                            ("error_message", pa.string())])


def _schema(model: ArimaModel, columns: pa.Schema) -> pa.Schema:
    return pa.schema([*model.ids.schema, *columns])


def evaluation_rows(model: ArimaModel, candidates: bool = False) -> list[dict]:
    """ML.ARIMA_EVALUATE's rows (the id columns first)."""
    rows = []
    for position, meta in enumerate(model.metas):
        ids = model.ids.slice(position, 1).to_pylist()[0] if model.ids.num_columns else {}
        if meta.get("error"):
            rows.append({**ids, "error_message": meta["error"]})
            continue
        fit = meta["arima"]
        p, q, d = fit["arma"][0], fit["arma"][1], fit["arma"][5]
        pipeline = {"seasonal_periods": meta["seasonalities"] or ["NO_SEASONALITY"],
                    "has_holiday_effect": bool(meta["holidays"]), "has_spikes_and_dips": bool(meta["spikes"]),
                    "has_step_changes": bool(meta["steps"]), "error_message": None}
        chosen = {"non_seasonal_p": p, "non_seasonal_d": d, "non_seasonal_q": q,
                  "has_drift": any(name == "drift" for name, _ in fit["coef"]), "log_likelihood": fit["loglik"],
                  "AIC": fit["aic"], "variance": fit["sigma2"]}
        if not candidates or not meta["candidates"]:
            rows.append({**ids, **chosen, **pipeline})
            continue
        for cp, cd, cq, drift, loglik, aic, variance in meta["candidates"]:
            rows.append({**ids, "non_seasonal_p": cp, "non_seasonal_d": cd, "non_seasonal_q": cq, "has_drift": drift,
                         "log_likelihood": loglik, "AIC": aic, "variance": variance, **pipeline})
    return rows


def arima_coefficients(call: Call) -> pa.Table:
    """ML.ARIMA_COEFFICIENTS: per series its AR and MA coefficients and constant; ARIMA_PLUS_XREG adds one
    row per regressor with its weight (``processed_input``, ``weight``)."""
    model = arima.of(call.require_model())
    regressors = model.header["regressors"]
    rows = []
    for series in model.fitted():
        ids = model.ids.slice(series.position, 1).to_pylist()[0] if model.ids.num_columns else {}
        coef = dict(series.meta["arima"]["coef"])
        row = {**ids, "ar_coefficients": [v for k, v in coef.items() if k.startswith("ar")],
               "ma_coefficients": [v for k, v in coef.items() if k.startswith("ma")],
               "intercept_or_drift": coef.get("intercept", coef.get("drift", 0.0))}
        weights = [v for k, v in coef.items() if k.startswith("ex_")]
        rows += ([{**row, "processed_input": name, "weight": weight} for name, weight in zip(regressors, weights)]
                 if regressors else [row])
    columns = [("ar_coefficients", pa.list_(pa.float64())), ("ma_coefficients", pa.list_(pa.float64())),
               ("intercept_or_drift", pa.float64())]
    if regressors:
        columns += [("processed_input", pa.string()), ("weight", pa.float64())]
    return pa.Table.from_pylist(rows, schema=_schema(model, pa.schema(columns)))


def holiday_info(call: Call) -> pa.Table:
    """ML.HOLIDAY_INFO: the holidays the model knows, over its history and horizon (region, name, date and
    the window of days around it that has effects of its own)."""
    from ..model import timegrid
    loaded = call.require_model()
    model = arima.of(loaded)
    regions = model.header["holiday_regions"]
    if not regions:
        raise ParameterError(f"ML.HOLIDAY_INFO needs a model trained with holiday_region; '{loaded.info.name}' "
                             "was trained without it.")
    first = min(s.start for s in model.fitted())
    last = max(s.start + s.n for s in model.fitted()) + model.header["horizon"] - 1
    days = model.grid.days(np.array([first, last]))
    found = timegrid.holidays_between(regions, int(days[0]), int(days[1]))
    return pa.table({"region": pa.array([h.region for h in found], pa.string()),
                     "holiday_name": pa.array([h.name for h in found], pa.string()),
                     "primary_date": pa.array(np.array([h.day for h in found], dtype="datetime64[D]"), pa.date32()),
                     "preholiday_days": pa.array([timegrid.PRE_DAYS] * len(found), pa.int64()),
                     "postholiday_days": pa.array([timegrid.POST_DAYS] * len(found), pa.int64())})
