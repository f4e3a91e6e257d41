"""ML.EVALUATE and ML.DETECT_ANOMALIES of ARIMA_PLUS(_XREG) models.

ML.EVALUATE with a table of actuals compares them with the forecast of their time points (at most
``horizon`` ahead): per series MAE, MSE, RMSE, MAPE and sMAPE (BigQuery's), each beside the seasonal naive
forecast's and the lift (sqlml's rule: no evaluation without a baseline), and how many actuals fell inside
the prediction interval (``prediction_interval_coverage``). ``perform_aggregation = FALSE`` gives one row
per actual. Without a table it is BigQuery's evaluation of the fit (ML.ARIMA_EVALUATE's columns) with the
one-step-ahead errors of the fitted history beside the seasonal naive forecast's.

ML.DETECT_ANOMALIES flags points whose distance from the model's expectation (the history's fit, or the
forecast for points ahead) is unlikely: ``anomaly_probability`` is the probability of a smaller distance
under the model's normal errors, and a point is an anomaly above ``anomaly_prob_threshold`` (0.95).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import DataError
from ..model import arima, forecast_metrics
from ..model.arima import ArimaModel, Series
from ..model.baseline import compare
from . import forecast as forecasting
from .base import Call

DEFAULT_THRESHOLD = 0.95


def evaluate(call: Call) -> pa.Table:
    model = arima.of(call.require_model())
    if not call.has_input:
        return _fit_evaluation(model)
    horizon = int(call.param("horizon") or model.header["horizon"])
    confidence = call.param("confidence_level")
    confidence = forecasting.DEFAULT_CONFIDENCE if confidence is None else float(confidence)
    forecasting.settings(Call(call.function, call.model, params={"horizon": horizon}), model)
    points = _actuals(call, model, horizon)
    if call.param("perform_aggregation", True) is False:
        return _per_point(call, model, points, confidence)
    rows = []
    for series, (index, actual) in points.items():
        found, predicted, lower, upper = _forecast_at(call, model, series, index, confidence)
        baseline = forecast_metrics.seasonal_naive(_history(series, model), int(index.max()), _period(series))
        row = compare(forecast_metrics.accuracy(actual, predicted), forecast_metrics.accuracy(actual, baseline[index - 1]),
                      None, forecast_metrics.BASELINE, forecast_metrics.PRIMARY)
        rows.append({**_ids(model, series.position), **row,
                     "prediction_interval_coverage": float(np.mean((actual >= lower) & (actual <= upper)))})
    return pa.Table.from_pylist(rows)


def _forecast_at(call: Call, model: ArimaModel, series: Series, index: np.ndarray, confidence: float) -> tuple:
    """The forecast of ``series`` to the farthest of ``index`` (steps ahead), and its value and bounds at them."""
    h = int(index.max())
    found = series.forecast(h, confidence, _regressors(call, model, series, h))
    return (found, *(arima.untransform(values[index - 1], model.limits) for values in (found.mean, found.lower,
                                                                                        found.upper)))


def _fit_evaluation(model: ArimaModel) -> pa.Table:
    """BigQuery's ARIMA evaluation of the fit, with the fitted history's one-step errors beside the seasonal
    naive forecast's (y[t - period]) on the same points."""
    rows = []
    for row, meta, position in zip(forecasting.evaluation_rows(model), model.metas, range(len(model.metas))):
        if meta.get("error"):
            rows.append(row)
            continue
        series = model.series(position)
        parts = series.history()
        period = _period(series)
        data = arima.untransform(parts["data"], model.limits)
        fitted = arima.untransform(parts["expected"], model.limits)
        actual = data[period:]
        rows.append({**row, **compare(forecast_metrics.accuracy(actual, fitted[period:]),
                                      forecast_metrics.accuracy(actual, data[:-period]), None,
                                      forecast_metrics.BASELINE, forecast_metrics.PRIMARY)})
    return pa.Table.from_pylist(rows, schema=_fit_schema(model, rows))


def _fit_schema(model: ArimaModel, rows: list[dict]) -> pa.Schema:
    base = forecasting._schema(model, forecasting.ARIMA_EVALUATE)
    extra = [name for row in rows for name in row if name not in base.names]
    extra = list(dict.fromkeys(extra))
    kinds = {"baseline_strategy": pa.string(), "primary_metric": pa.string(), "beats_baseline": pa.bool_()}
    return pa.schema([*base, *((name, kinds.get(name, pa.float64())) for name in extra)])


def _period(series: Series) -> int:
    """The seasonal naive forecast's period: the series' shortest seasonal period, else 1 (naive)."""
    return min(series.meta["periods"], default=1)


def _history(series: Series, model: ArimaModel) -> np.ndarray:
    return arima.untransform(series.arrays["data"], model.limits)


def _ids(model: ArimaModel, position: int) -> dict:
    return model.ids.slice(position, 1).to_pylist()[0] if model.ids.num_columns else {}


def _actuals(call: Call, model: ArimaModel, horizon: int) -> dict[Series, tuple[np.ndarray, np.ndarray]]:
    """Per series, the actuals' steps ahead (1 = the point after the history) and values, within ``horizon``."""
    table = call.input_table()
    ids, timestamp, (data,) = forecasting.input_columns(table, model, [model.header["data_col"]])
    points, positions = forecasting.grid_points(table, model, ids, timestamp)
    values = table[data].cast(pa.float64()).to_numpy(zero_copy_only=False)
    found = {}
    for series in model.fitted():
        ahead = points - (series.start + series.n) + 1
        mine = (positions == series.position) & (ahead >= 1) & (ahead <= horizon) & ~np.isnan(values)
        if mine.any():
            order = np.argsort(ahead[mine], kind="stable")
            found[series] = (ahead[mine][order], values[mine][order])
    if not found:
        raise DataError(f"None of the actuals falls within the {horizon:,} time points after the training data of "
                        "a series of the model: ML.EVALUATE compares forecasts with later actuals.")
    return found


def _regressors(call: Call, model: ArimaModel, series: Series, horizon: int) -> np.ndarray | None:
    if not model.header["regressors"]:
        return None
    return forecasting.future_regressors(call, model, horizon, [series]).get(series.position)


def _per_point(call: Call, model: ArimaModel, points: dict, confidence: float) -> pa.Table:
    """perform_aggregation = FALSE: every actual beside its forecast."""
    rows = []
    for series, (index, actual) in points.items():
        found, predicted, lower, upper = _forecast_at(call, model, series, index, confidence)
        stamps = model.timestamps(series.grid_index(int(index.max())))
        for k, i in enumerate((index - 1).tolist()):
            error = abs(predicted[k] - actual[k])
            rows.append({**_ids(model, series.position), "time_series_timestamp": stamps[i].as_py(),
                         "time_series_data": actual[k], "forecasted_time_series_data": predicted[k],
                         "standard_error": found.standard_error[i], "confidence_level": confidence,
                         "prediction_interval_lower_bound": lower[k], "prediction_interval_upper_bound": upper[k],
                         "absolute_error": error,
                         "absolute_percentage_error": 100 * error / abs(actual[k]) if actual[k] else None})
    return pa.Table.from_pylist(rows)


def detect_anomalies(call: Call) -> pa.Table:
    """ML.DETECT_ANOMALIES of an ARIMA model: the history (no table) or the given points."""
    from scipy.stats import norm

    model = arima.of(call.require_model())
    threshold = call.param("anomaly_prob_threshold")
    threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    z = norm.ppf(0.5 + threshold / 2)
    if not call.has_input:
        return _history_anomalies(model, z)
    table = call.input_table()
    ids, timestamp, (data,) = forecasting.input_columns(table, model, [model.header["data_col"]])
    points, positions = forecasting.grid_points(table, model, ids, timestamp)
    expected, sigma = _expectations(call, model, points, positions)
    values = arima.transform(table[data].cast(pa.float64()).to_numpy(zero_copy_only=False), model.limits, strict=False)
    flagged = _flags(values, expected, sigma, z, model)
    return pa.Table.from_arrays([*table.columns, *flagged.columns], names=[*table.column_names, *flagged.column_names])


def _history_anomalies(model: ArimaModel, z: float) -> pa.Table:
    pieces = []
    for series in model.fitted():
        parts = series.history()
        flagged = _flags(parts["data"], parts["expected"], np.full(series.n, series.sigma), z, model)
        columns = {**forecasting.ids_of(model, [series.position], [series.n]),
                   "time_series_timestamp": model.timestamps(series.grid_index()),
                   "time_series_data": pa.array(arima.untransform(parts["data"], model.limits))}
        pieces.append(pa.table({**columns, **{c: flagged[c] for c in flagged.column_names}}))
    return pa.concat_tables(pieces)


def _expectations(call: Call, model: ArimaModel, points: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each input point's expected value and standard error: the history's fit inside it, the forecast
    after it (at most the model's horizon ahead); NaN elsewhere (an unknown series, or too far ahead)."""
    expected, sigma = np.full(len(points), np.nan), np.full(len(points), np.nan)
    for series in model.fitted():
        mine = positions == series.position
        if not mine.any():
            continue
        at = points[mine] - series.start
        inside = (at >= 0) & (at < series.n)
        ahead = np.where((at >= series.n) & (at < series.n + model.header["horizon"]), at - series.n + 1, 0)
        here_expected, here_sigma = np.full(len(at), np.nan), np.full(len(at), np.nan)
        if inside.any():
            here_expected[inside] = series.history()["expected"][at[inside]]
            here_sigma[inside] = series.sigma
        if ahead.any():
            h = int(ahead.max())
            found = series.forecast(h, 0.95, _regressors(call, model, series, h))
            here_expected[ahead > 0] = found.mean[ahead[ahead > 0] - 1]
            here_sigma[ahead > 0] = found.standard_error[ahead[ahead > 0] - 1]
        expected[mine], sigma[mine] = here_expected, here_sigma
    return expected, sigma


def _flags(values: np.ndarray, expected: np.ndarray, sigma: np.ndarray, z: float, model: ArimaModel) -> pa.Table:
    """is_anomaly, lower_bound, upper_bound and anomaly_probability (NULL where there is no expectation)."""
    from scipy.stats import norm

    known = ~np.isnan(expected) & ~np.isnan(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        probability = 2 * norm.cdf(np.abs(values - expected) / sigma) - 1
    lower = arima.untransform(expected - z * sigma, model.limits)
    upper = arima.untransform(expected + z * sigma, model.limits)
    anomaly = probability > 2 * norm.cdf(z) - 1
    return pa.table({"is_anomaly": pa.array(anomaly, mask=~known), "lower_bound": pa.array(lower, mask=~known),
                     "upper_bound": pa.array(upper, mask=~known),
                     "anomaly_probability": pa.array(probability, mask=~known)})
