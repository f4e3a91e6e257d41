"""One series through BigQuery's ARIMA_PLUS pipeline, on statsforecast and statsmodels.

The steps after the series is on its regular grid (:mod:`sqlml.train.arima_series`), in BigQuery's order:

1. spikes and dips: points far (:data:`SPIKE_Z` standard deviations of the noise) from a robust fit
   (statsmodels' robust STL for the seasonal part, the median of the neighbours for the level) are replaced
   by that fit;
2. step changes: a jump in the running medians of the deseasonalized series before and after a point,
   larger than :data:`STEP_Z` of its noise and standing out from its neighbourhood; the history is shifted to
   the latest level;
3. holiday effects: one effect per holiday (``holidays`` package) and day of its window, fitted by least
   squares to what a robust STL leaves, kept where larger than :data:`HOLIDAY_Z` standard errors;
4. seasonal decomposition: statsforecast's ``mstl`` with the seasonal periods asked for, or (AUTO) those
   whose seasonal strength is at least :data:`SEASONAL_STRENGTH`;
5. auto-ARIMA on the deseasonalized series (:mod:`sqlml.train.arima_search`).

With the steps off and seasonalities given, the result is statsforecast's
``MSTL(season_length, AutoARIMA(stepwise=False, approximation=len > 150))``. Each series is fitted by
:class:`Pipeline`, which statsforecast's ``StatsForecast(n_jobs=…)`` runs in parallel; a series that cannot
be fitted keeps its error and the others go on.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError
from ..model import arima_options, timegrid
from ..model.arima import holiday_component, step_component, transform
from . import arima_search, arima_series
from .arima_series import Prepared

MIN_POINTS = 3
SPIKE_Z = 5.0  # standard deviations of the noise (sigma-clipped)
CLIP_ITERATIONS = 20
SPIKE_PASSES = 4
STEP_Z = 5.0  # standard deviations of the difference of two running medians
HOLIDAY_Z = 3.0  # standard errors of a holiday's mean
SEASONAL_STRENGTH = 0.6  # Hyndman's F_S = 1 - Var(remainder) / Var(seasonal + remainder)
MIN_AUTO_CYCLES = 6  # seasonalities = ['AUTO'] judges a period the series covers this many times


@dataclass
class Settings:
    """What every series of one model is fitted with (picklable: it travels to statsforecast's workers)."""

    options: dict
    frequency: str
    holiday_keys: dict[int, list[str]] = field(default_factory=dict)  # day → holiday effects on it
    holiday_names: list[str] = field(default_factory=list)
    limits: tuple[float | None, float | None] = (None, None)


class Pipeline:
    """A statsforecast model (``new`` and ``fit`` are all StatsForecast calls): ``X`` holds each point's
    day (for holidays) and then the external regressors. ``state_`` is the fitted series (:func:`fit_series`)."""

    uses_exog = True
    alias = "ARIMA_PLUS"

    def __init__(self, settings: Settings):
        self.settings = settings

    def new(self) -> "Pipeline":
        return Pipeline(self.settings)

    def __repr__(self) -> str:
        return self.alias

    def fit(self, y: np.ndarray, X: np.ndarray | None = None) -> "Pipeline":
        days = X[:, 0].astype(np.int64)
        self.state_ = fit_series(np.asarray(y, dtype=np.float64), days,
                                 X[:, 1:] if X.shape[1] > 1 else None, self.settings)
        return self


def settings_for(options: dict) -> Settings:
    """The settings of a model's checked options (BigQuery's defaults for the others)."""
    full = arima_options.with_defaults(options)
    return Settings(full, full["data_frequency"],
                    limits=(full.get("forecast_limit_lower_bound"), full.get("forecast_limit_upper_bound")))


def with_calendar(settings: Settings, prepared: Prepared) -> Settings:
    """The settings on ``prepared``'s grid: its frequency, and the holidays over its days."""
    regions = settings.options.get("holiday_region")
    settings = dataclasses.replace(settings, frequency=prepared.grid.frequency)
    if not regions:
        return settings
    if prepared.grid.frequency not in timegrid.HOLIDAY_FREQUENCIES:
        prepared.notes.append(f"holiday_region is not used at data frequency {prepared.grid.frequency}: holidays are "
                              "modelled for daily, hourly and per-minute series.")
        return settings
    keys, names = arima_series.holiday_calendar(prepared, regions)
    return dataclasses.replace(settings, holiday_keys=keys, holiday_names=names)


def fit_all(prepared: Prepared, settings: Settings) -> list[dict]:
    """Every series' state (:func:`sqlml.train.arima_pipeline.fit_series`), fitted in parallel processes by
    statsforecast (one per core, each a share of the series)."""
    import pandas as pd
    from statsforecast import StatsForecast

    lengths = prepared.lengths
    index = np.concatenate([np.arange(start, start + n) for start, n in zip(prepared.starts, lengths)])
    frame = {"unique_id": np.repeat(np.arange(len(lengths)), lengths),
             "ds": np.concatenate([np.arange(1, n + 1) for n in lengths]), "y": prepared.values,
             "day": prepared.grid.days(index).astype(np.float64)}
    if prepared.regressors is not None:
        frame.update({f"x{j}": column for j, column in enumerate(prepared.regressors.T)})
    forecaster = StatsForecast(models=[Pipeline(settings)], freq=1, n_jobs=-1 if len(lengths) > 1 else 1)
    forecaster.fit(pd.DataFrame(frame))
    return [{**model.state_, "meta": {**model.state_["meta"], "start": int(start)}}
            for model, start in zip(forecaster.fitted_[:, 0], prepared.starts)]


def fit_series(y: np.ndarray, days: np.ndarray, xreg: np.ndarray | None, settings: Settings) -> dict:
    """``{'meta': JSON values, 'arrays': NumPy arrays}`` of one series, or ``{'meta': {'error': why}}``."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return _fit(y, days, xreg, settings)
    except DataError as e:
        return {"meta": {"error": str(e)}, "arrays": {}}
    except Exception as e:  # noqa: BLE001  one series failing must not fail the others (BigQuery's rule)
        return {"meta": {"error": f"{type(e).__name__}: {e}"}, "arrays": {}}


def _fit(y: np.ndarray, days: np.ndarray, xreg: np.ndarray | None, settings: Settings) -> dict:
    o = settings.options
    check_series(y)
    y = transform(y, settings.limits)
    seasons = seasonalities(y, settings.frequency, o["seasonalities"])
    periods = [timegrid.PERIODS[settings.frequency][s] for s in seasons]
    protected = _holiday_days(days, settings.holiday_keys)
    spikes = clean_spikes(y, periods, protected) if o["clean_spikes_and_dips"] else np.zeros_like(y)
    cleaned = y - spikes
    steps = step_changes(cleaned, periods) if o["adjust_step_changes"] else []
    adjusted = cleaned - step_component(len(y), steps)
    effects = holiday_effects(adjusted, days, settings, periods)
    holiday = holiday_component(days, effects, settings.holiday_keys)
    seasonal, x_sa = decompose(adjusted - holiday, periods)
    start = trend_start(len(y), o)
    x = smooth(x_sa[start:], o.get("trend_smoothing_window_size"))
    regressors = xreg[start:] if xreg is not None else None
    fitted, candidates = arima_search.arima(x, regressors, o)
    meta = {"error": None, "n": len(y), "seasonalities": seasons, "periods": periods,
            "spikes": [[int(i), float(spikes[i])] for i in np.flatnonzero(spikes)],
            "steps": [[int(i), float(delta)] for i, delta in steps], "holidays": effects,
            "trend_start": start, "candidates": candidates, "arima": arima_search.arima_meta(fitted)}
    return {"meta": meta, "arrays": {"data": y, "seasonal": seasonal, **arima_search.arima_arrays(fitted)}}


def check_series(y: np.ndarray) -> None:
    if len(y) < MIN_POINTS:
        raise DataError(f"The time series has {len(y)} point(s) on its grid; an ARIMA model needs at least "
                        f"{MIN_POINTS}.")
    if np.ptp(y) == 0:
        raise DataError(f"The time series is constant (every point is {y[0]:g}): there is nothing to model; "
                        "its forecast would be that value.")


def seasonalities(y: np.ndarray, frequency: str, asked: list[str]) -> list[str]:
    """The seasonalities to decompose: those asked for that the series covers twice (MSTL needs two
    cycles), or (AUTO) those among :data:`sqlml.model.timegrid.AUTO` the series covers
    :data:`MIN_AUTO_CYCLES` times with a seasonal strength of at least :data:`SEASONAL_STRENGTH`
    (with fewer cycles STL's seasonal part fits noise too: white noise reaches 0.7 over three cycles)."""
    asked = [s.upper() for s in asked]
    if asked == ["NO_SEASONALITY"]:
        return []
    periods = timegrid.PERIODS[frequency]
    if asked != ["AUTO"]:
        return sorted((s for s in asked if s in periods and len(y) >= 2 * periods[s]), key=periods.get)
    return sorted((s for s in timegrid.AUTO[frequency] if len(y) >= MIN_AUTO_CYCLES * periods[s]
                   and seasonal_strength(y, periods[s]) >= SEASONAL_STRENGTH), key=periods.get)


def seasonal_strength(y: np.ndarray, period: int) -> float:
    """Hyndman's F_S of statsmodels' STL (white noise: ~0.4 over six cycles or more)."""
    from statsmodels.tsa.seasonal import STL
    fit = STL(y, period=period).fit()
    spread = np.var(fit.seasonal + fit.resid)
    return 0.0 if spread == 0 else max(0.0, 1.0 - np.var(fit.resid) / spread)


def robust_fit(y: np.ndarray, periods: list[int], protected: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(seasonal, level): a robust STL's seasonal part for the shortest period, and each point's level,
    the median of its neighbours (:func:`local_level`) after the seasonal part."""
    from statsmodels.tsa.seasonal import STL

    # mstl's seasonal smoother (window 11, degree 0), robust: one odd week does not bend the seasonal pattern
    seasonal = (STL(y, period=periods[0], seasonal=11, seasonal_deg=0, robust=True).fit().seasonal if periods
                else np.zeros_like(y))
    half = max(3, periods[0] if periods else 0)
    return seasonal, local_level(y - seasonal, half, protected)


def local_level(d: np.ndarray, half: int, protected: np.ndarray | None = None) -> np.ndarray:
    """The median of each point's ``half`` neighbours on either side, not the point itself (a spike does
    not pull its own level) nor ``protected`` points (holidays, modelled apart): a level that follows steps,
    ignores short spikes, and judges the last point by the points before it."""
    from numpy.lib.stride_tricks import sliding_window_view

    values = d.astype(np.float64)
    if protected is not None and protected.any() and not protected.all():
        values = np.where(protected, np.nan, values)
    padded = np.concatenate([np.full(half, np.nan), values, np.full(half, np.nan)])
    windows = sliding_window_view(padded, 2 * half + 1).copy()
    windows[:, half] = np.nan
    level = np.nanmedian(windows, axis=1)
    return np.where(np.isnan(level), d, level)  # a point with no neighbour is its own level


def noise_sigma(residual: np.ndarray, scale: float) -> float:
    """The noise's standard deviation, the outliers left out: the standard deviation of the points within
    :data:`SPIKE_Z` of it, iterated until no point changes side (sigma clipping; the median absolute
    deviation would be ~0 for series as regular as flight schedules). A floor keeps exact fits finite."""
    centred = residual - np.median(residual)
    kept = np.ones(len(residual), dtype=bool)
    for _ in range(CLIP_ITERATIONS):
        sigma = float(np.std(centred[kept]))
        inside = np.abs(centred) <= SPIKE_Z * sigma
        if (inside == kept).all() or not inside.any():
            break
        kept = inside
    return max(sigma, 1e-9 * max(1.0, scale))


def clean_spikes(y: np.ndarray, periods: list[int], protected: np.ndarray) -> np.ndarray:
    """The spikes and dips component: how far each outlier is from the robust fit (0 elsewhere). The
    levels are taken again without the outliers found, until none is added (a run of dips must not
    set the level of the point after it). Days in a holiday's window are left to the holiday effects."""
    outliers = np.zeros(len(y), dtype=bool)
    for _ in range(SPIKE_PASSES):
        seasonal, level = robust_fit(y, periods, protected | outliers)
        residual = y - seasonal - level
        ordinary = ~(protected | outliers)
        sigma = noise_sigma(residual[ordinary] if ordinary.any() else residual, float(np.median(np.abs(y))))
        found = (np.abs(residual - np.median(residual[ordinary] if ordinary.any() else residual))
                 > SPIKE_Z * sigma) & ~protected
        if (found == outliers).all():
            break
        outliers = found
    return np.where(outliers, residual, 0.0)


def step_changes(y: np.ndarray, periods: list[int]) -> list[tuple[int, float]]:
    """(index, size) of each level shift: the series' level from ``index`` on differs by ``size``."""
    from numpy.lib.stride_tricks import sliding_window_view

    seasonal, level = robust_fit(y, periods)
    d = y - seasonal
    w = min(max(2 * (periods[0] if periods else 5), 10), len(y) // 4)
    if w < 3:
        return []
    medians = np.median(sliding_window_view(d, w), axis=1)  # medians[i]: points i .. i + w - 1
    jump = np.zeros(len(y))
    jump[w:len(y) - w + 1] = medians[w:] - medians[:len(medians) - w]  # after t minus before t
    sigma = noise_sigma(d - level, float(np.median(np.abs(y))))
    threshold = STEP_Z * 1.2533 * math.sqrt(2.0 / w) * sigma
    found, size = [], np.abs(jump)
    for candidate in np.argsort(-size, kind="stable"):
        if size[candidate] <= threshold:
            break
        neighbours = max(size[candidate - w] if candidate - w >= 0 else 0.0,
                         size[candidate + w] if candidate + w < len(y) else 0.0)
        if size[candidate] < 2 * neighbours:  # a slope, not a step: the jump is as large a window away
            continue
        at = _split(d, int(candidate), w)
        if all(abs(at - other) > w for other, _ in found):
            found.append((at, float(np.median(d[at:at + w]) - np.median(d[max(0, at - w):at]))))
    return sorted(found)


def _split(d: np.ndarray, candidate: int, w: int) -> int:
    """Where, within a window either side of ``candidate``, a level shift fits best: the split of the window
    into two constant segments with the least squared error (a median's jump is as large on a stretch of
    points around the step)."""
    low, high = max(1, candidate - w), min(len(d), candidate + w)
    best, at = np.inf, candidate
    for split in range(low + 1, high):
        left, right = d[low:split], d[split:high]
        cost = float(np.sum((left - left.mean()) ** 2) + np.sum((right - right.mean()) ** 2))
        if cost < best:
            best, at = cost, split
    return at


def _holiday_days(days: np.ndarray, keys: dict[int, list[str]]) -> np.ndarray:
    return np.isin(days, np.fromiter(keys, dtype=np.int64, count=len(keys))) if keys else np.zeros(len(days), bool)


def holiday_effects(y: np.ndarray, days: np.ndarray, settings: Settings, periods: list[int]) -> dict[str, float]:
    """Holiday effect → its size, for the effects the history shows clearly."""
    if not settings.holiday_keys:
        return {}
    X = timegrid.design(days, settings.holiday_keys, settings.holiday_names)
    seen = np.flatnonzero(X.sum(axis=0))
    if len(seen) == 0:
        return {}
    ordinary = X.sum(axis=1) == 0
    seasonal, level = robust_fit(y, periods, ~ordinary)
    residual = y - seasonal - level
    sigma = noise_sigma(residual[ordinary] if ordinary.any() else residual, float(np.median(np.abs(y))))
    effects = np.linalg.lstsq(X[:, seen], residual, rcond=None)[0]
    kept = seen[np.abs(effects) > HOLIDAY_Z * sigma / np.sqrt(X[:, seen].sum(axis=0))]
    if len(kept) == 0:
        return {}
    effects = np.linalg.lstsq(X[:, kept], residual, rcond=None)[0]  # the clear ones, without the others
    return {settings.holiday_names[j]: float(e) for j, e in zip(kept, effects)}


def decompose(y: np.ndarray, periods: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(seasonal components, one row per period; the deseasonalized series) by statsforecast's mstl,
    exactly as its MSTL model does before fitting the trend."""
    if not periods:
        return np.zeros((0, len(y))), y
    from statsforecast.mstl import mstl
    fit = mstl(x=y, period=periods, stl_kwargs={})
    columns = ["seasonal"] if len(periods) == 1 else [f"seasonal{p}" for p in periods]
    return fit[columns].to_numpy().T.copy(), fit[["trend", "remainder"]].sum(axis=1).values


def trend_start(n: int, options: dict) -> int:
    """Where the points the trend is modelled on begin: time_series_length_fraction (at least
    min_time_series_length of them) or max_time_series_length of the latest points; else all."""
    if "max_time_series_length" in options:
        return max(0, n - options["max_time_series_length"])
    if "time_series_length_fraction" in options:
        kept = max(math.ceil(options["time_series_length_fraction"] * n),
                   options.get("min_time_series_length", arima_options.MIN_TIME_SERIES_LENGTH))
        return max(0, n - kept)
    return 0


def smooth(x: np.ndarray, window: int | None) -> np.ndarray:
    """trend_smoothing_window_size: a centred moving average, the ends padded with the first and last values."""
    if not window or window <= 1:
        return x
    before, after = (window - 1) // 2, window // 2
    padded = np.concatenate([np.repeat(x[0], before), x, np.repeat(x[-1], after)])
    return np.convolve(padded, np.ones(window) / window, mode="valid")
