"""The deploy gate of an ARIMA model: the new version against the deployed one on the same held-out tail.

A version of a time series model is its pipeline and options applied to the series. On a retrain (with
``deploy = 'if_not_worse'``, the default), both are fitted again on the new training series less their
last :data:`TAIL_FRACTION` of points (at least one, at most the new horizon) and forecast that tail; the
new version is deployed when its primary metric there (``primary_metric``, default MAPE; MAE and the
other forecast errors may be named) is not worse than the deployed version's by more than
``deploy_tolerance`` and beats the seasonal naive forecast of the same tail.
"""

from __future__ import annotations

import typing as t

import numpy as np

from ..model import forecast_metrics
from ..model.arima import ArimaModel, untransform
from ..model.kinds import ARIMA
from ..model.loaded import LoadedModel
from . import gate
from .arima_pipeline import fit_all, settings_for, with_calendar
from .arima_series import Columns, Prepared

TAIL_FRACTION = 0.1


def verdict(new: LoadedModel, deployed: LoadedModel | None, prepared: Prepared, columns: Columns,
            progress: t.Callable[[str], None]) -> gate.Verdict:
    options = new.info.options
    if deployed is None or options.get("deploy", "if_not_worse") != "if_not_worse":
        return gate.decide(options, new, deployed, None, False)
    metric = options.get("primary_metric", forecast_metrics.PRIMARY)
    why_not = _incomparable(new, deployed, columns)
    if why_not:
        return gate.Verdict(False, why_not, metric)
    tails = np.clip(np.ceil(TAIL_FRACTION * prepared.lengths).astype(np.int64), 1, new.estimator.header["horizon"])
    tails = np.where(prepared.lengths - tails >= 3, tails, 0)  # a series too short to hold a tail out is not judged
    if not tails.any():
        return gate.Verdict(False, "the series are too short to hold out a tail to compare the versions on", metric)
    progress(f"Deploy gate: fitting both versions without the last {TAIL_FRACTION:.0%} of each series…")
    new_tail, old_tail = (_tail_forecasts(model, prepared, tails) for model in (new, deployed))
    judged = [i for i in range(len(tails)) if i in new_tail and i in old_tail]
    if not judged:
        return gate.Verdict(False, "no series could be fitted by both versions without its tail", metric)
    actual = np.concatenate([prepared.values_of(i)[-tails[i]:] for i in judged])
    values = [forecast_metrics.accuracy(actual, np.concatenate([tail[i][0] for i in judged]))[metric]
              for tail in (new_tail, old_tail)]
    baseline = forecast_metrics.accuracy(actual, np.concatenate([new_tail[i][1] for i in judged]))[metric]
    tolerance = options.get("deploy_tolerance", 0.0)
    not_worse, beats = values[0] <= values[1] + tolerance, values[0] < baseline
    reason = (f"{metric} {values[0]:.4g} vs {values[1]:.4g} for the deployed version on the same held-out tail "
              f"({len(actual):,} points of {len(judged):,} series, each version fitted without it): "
              f"{'not worse than' if not_worse else 'worse than'} it (tolerance {tolerance:g})"
              + ("" if beats else f", and it does not beat the seasonal naive forecast ({baseline:.4g})"))
    return gate.Verdict(not_worse and beats, reason, metric, values[0], values[1], len(actual))


def _incomparable(new: LoadedModel, deployed: LoadedModel, columns: Columns) -> str | None:
    """Why the two versions cannot forecast the same tail, if they cannot."""
    if deployed.kind.family != ARIMA:
        return f"the deployed version is a {deployed.info.model_type} model, which does not forecast series"
    old, now = deployed.estimator.header, new.estimator.header
    same = (old["timestamp_col"].lower(), old["data_col"].lower(), [c.lower() for c in old["id_cols"]],
            [c.lower() for c in old["regressors"]]) == (columns.timestamp.lower(), columns.data.lower(),
                                                          [c.lower() for c in columns.ids],
                                                          [c.lower() for c in columns.regressors])
    if not same:
        return ("the deployed version reads other timestamp, data, id or regressor columns than the new training "
                "query's, so the two cannot forecast the same series")
    if deployed.info.options.get("data_frequency", "AUTO_FREQUENCY") not in ("AUTO_FREQUENCY", now["frequency"]):
        return "the deployed version's data_frequency differs from the new version's: their time points differ"
    return None


def _tail_forecasts(model: LoadedModel, prepared: Prepared, tails: np.ndarray) -> dict[int, tuple]:
    """Series position → (forecast of its tail, seasonal naive forecast of it) by ``model``'s pipeline and
    options fitted on the series less their tails."""

    training = prepared.without_tail(tails)
    settings = with_calendar(settings_for(model.info.options), training)
    states = fit_all(training, settings)
    fitted = ArimaModel.of(ArimaModel.estimator({**model.estimator.header, "frequency": training.grid.frequency,
                                                 "anchor": training.grid.anchor}, training.ids,
                                                [s["meta"] for s in states], [s["arrays"] for s in states]))
    found = {}
    for i, h in enumerate(tails.tolist()):
        series = fitted.series(i)
        if h == 0 or series.error:
            continue
        regressors = prepared.regressors[prepared.offsets[i + 1] - h:prepared.offsets[i + 1]] \
            if prepared.regressors is not None else None
        forecast = series.forecast(h, 0.95, regressors)
        period = min(series.meta["periods"], default=1)
        history = training.values_of(i)
        found[i] = (untransform(forecast.mean, fitted.limits), forecast_metrics.seasonal_naive(history, h, period))
    return found
