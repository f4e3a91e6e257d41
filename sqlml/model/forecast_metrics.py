"""Forecast accuracy, and the baseline every forecast is judged against: the seasonal naive forecast.

ML.EVALUATE's figures of an ARIMA model, as BigQuery names them; the percentage errors are in percent,
as BigQuery reports them (scikit-learn's mean_absolute_percentage_error × 100). The seasonal naive
forecast repeats the last season (statsforecast's ``SeasonalNaive``); with no seasonality it repeats
the last value (naive).
"""

from __future__ import annotations

import math

import numpy as np

from .arima_options import METRICS

PRIMARY = "mean_absolute_percentage_error"
BASELINE = "seasonal_naive"


def accuracy(actual: np.ndarray, forecast: np.ndarray) -> dict[str, float | None]:
    """MAE, MSE, RMSE, MAPE and sMAPE of ``forecast`` against ``actual`` (None without points)."""
    if len(actual) == 0:
        return dict.fromkeys(METRICS)
    error = forecast - actual
    mse = float(np.mean(error ** 2))
    scale = np.abs(actual) + np.abs(forecast)
    symmetric = np.divide(2 * np.abs(error), scale, out=np.zeros_like(scale), where=scale > 0)
    return {"mean_absolute_percentage_error": float(100 * np.mean(np.abs(error) / np.maximum(np.abs(actual),
                                                                                            np.finfo(np.float64).eps))),
            "mean_absolute_error": float(np.mean(np.abs(error))), "mean_squared_error": mse,
            "root_mean_squared_error": math.sqrt(mse),
            "symmetric_mean_absolute_percentage_error": float(100 * np.mean(symmetric))}


def seasonal_naive(history: np.ndarray, h: int, period: int) -> np.ndarray:
    """The next ``h`` points as the last ``period`` points repeated."""
    period = max(1, min(period, len(history)))
    return np.tile(history[-period:], math.ceil(h / period))[:h]
