"""A stored ARIMA_PLUS model: every series' fitted state as JSON and arrays, and its forecasts re-made
from that state with statsforecast's own functions (no pickle: the envelope holds plain arrays).

What is kept per series: the data on its grid, the seasonal components (statsforecast's ``mstl``), the
spikes and dips and step changes found, the holiday effects, the candidates auto.ARIMA tried, and
statsforecast's ARIMA model dict (coefficients, ``sigma2``, ``arma``, residuals, the state space). A
forecast is statsforecast's ``forecast_arima`` of the trend plus each seasonal component's last season
repeated (as statsforecast's MSTL does) plus the holiday effects of the days ahead.
"""

from __future__ import annotations

import io
import json
import math
import typing as t
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..errors import DataError
from . import timegrid

if t.TYPE_CHECKING:
    from .loaded import LoadedModel

#: ML.EXPLAIN_FORECAST's seasonal columns, one per BigQuery seasonality (NULL where the model has none).
SEASONAL_COLUMNS = ("YEARLY", "QUARTERLY", "MONTHLY", "WEEKLY", "DAILY")


def step_component(n: int, steps: list) -> np.ndarray:
    """Each point's distance from the latest level: minus the steps still to come after it."""
    component = np.zeros(n)
    for index, size in steps:
        component[:index] -= size
    return component


def holiday_component(days: np.ndarray, effects: dict[str, float], keys: dict[int, list[str]]) -> np.ndarray:
    """The holiday effect on each day: the sum of the effects that fall on it."""
    if not effects:
        return np.zeros(len(days))
    return np.array([sum(effects.get(k, 0.0) for k in keys.get(day, ())) for day in days.tolist()])


def transform(y: np.ndarray, limits: t.Sequence[float | None], strict: bool = True) -> np.ndarray:
    """forecast_limit_*: the log (one bound) or logit (both) scale on which the model is fitted, so that
    forecasts stay inside the bounds (https://otexts.com/fpp2/limits.html). Values outside the bounds are
    refused (``strict``) or become NaN."""
    low, high = limits
    if low is None and high is None:
        return y
    outside = ((y <= low) if low is not None else False) | ((y >= high) if high is not None else False)
    if not strict:
        y = np.where(outside, np.nan, y)
    elif np.any(outside):
        raise DataError(f"The time series has values outside the forecast limits ({low}, {high}); the limits must "
                        "lie strictly outside every value.")
    with np.errstate(invalid="ignore"):
        if high is None:
            return np.log(y - low)
        if low is None:
            return -np.log(high - y)
        return np.log((y - low) / (high - y))


def untransform(z: np.ndarray, limits: t.Sequence[float | None]) -> np.ndarray:
    low, high = limits
    if low is None and high is None:
        return z
    if high is None:
        return low + np.exp(z)
    if low is None:
        return high - np.exp(-z)
    return low + (high - low) / (1 + np.exp(-z))


def pack(per_series: list[dict[str, np.ndarray]]) -> tuple[dict[str, np.ndarray], list[dict[str, list[int]]]]:
    """Every series' arrays as one flat float64 array per name, and each series' shapes to cut them back."""
    names = sorted({name for arrays in per_series for name in arrays})
    packed = {name: np.concatenate([np.ravel(a[name]).astype(np.float64) for a in per_series if name in a])
              for name in names}
    return packed, [{name: list(np.shape(a)) for name, a in arrays.items()} for arrays in per_series]


@dataclass
class Forecast:
    """The next ``h`` points of one series on the model's scale: the total and its parts."""

    mean: np.ndarray
    standard_error: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    trend: np.ndarray
    seasonal: np.ndarray  # one row per seasonal period
    holiday: np.ndarray


class Series:
    """One series of a model: its meta (JSON) and arrays, and what ML.* functions compute from them."""

    def __init__(self, model: "ArimaModel", position: int, meta: dict, arrays: dict[str, np.ndarray]):
        self.model, self.position, self.meta, self.arrays = model, position, meta, arrays

    @property
    def error(self) -> str | None:
        return self.meta.get("error")

    @property
    def n(self) -> int:
        return self.meta["n"]

    @property
    def start(self) -> int:
        return self.meta["start"]

    def grid_index(self, h: int = 0) -> np.ndarray:
        """The grid points of the history (``h`` = 0) or of the ``h`` points after it."""
        return np.arange(self.start, self.start + self.n) if h == 0 else np.arange(self.start + self.n,
                                                                                    self.start + self.n + h)

    def arima_dict(self) -> dict:
        """statsforecast's ARIMA model dict, rebuilt from what was stored."""
        meta, a = self.meta["arima"], self.arrays
        state = {k: a[f"model_{k}"] for k in ("phi", "theta", "delta", "Z", "a", "P", "T", "V", "Pn")}
        return {"coef": {name: value for name, value in meta["coef"]}, "arma": tuple(meta["arma"]),
                "sigma2": meta["sigma2"], "loglik": meta["loglik"], "aic": meta["aic"], "aicc": meta["aicc"],
                "bic": meta["bic"], "code": meta["code"], "n_cond": meta["n_cond"], "nobs": meta["nobs"],
                "var_coef": a.get("var_coef"), "mask": a["mask"].astype(bool), "residuals": a["residuals"],
                "x": a["x"], "xreg": a.get("xreg"), "model": {**state, "h": meta["h"]}, "lambda": None,
                "distribution": "normal", "ic": None}

    def forecast(self, h: int, confidence_level: float, regressors: np.ndarray | None = None) -> Forecast:
        """statsforecast's ``forecast_arima`` of the trend, then the seasonal components and holiday effects."""
        from scipy.stats import norm
        from statsforecast.arima import forecast_arima

        level = 100 * confidence_level if confidence_level > 0 else 95.0
        found = forecast_arima(self.arima_dict(), h=h, xreg=regressors, level=[level])
        mean = found["mean"]
        upper, lower = (found[side][f"{level}%"].to_numpy() for side in ("upper", "lower"))
        z = norm.ppf(0.5 + level / 200)
        se = (upper - mean) / z
        if self.spike_variance:  # the spikes and dips cleaned from the history will come again
            se = np.sqrt(se ** 2 + self.spike_variance)
            lower, upper = mean - z * se, mean + z * se
        seasonal = self._seasonal_ahead(h)
        ahead = seasonal.T.sum(axis=1) if len(seasonal) else np.zeros(h)
        holiday = self.model.holiday_effects(self.grid_index(h), self.meta["holidays"])
        if confidence_level == 0:
            lower = upper = mean
        return Forecast(mean + ahead + holiday, se, lower + ahead + holiday, upper + ahead + holiday, mean,
                        seasonal, holiday)

    @property
    def spike_variance(self) -> float:
        """The variance the cleaned spikes and dips added to the history, per point."""
        return sum(value ** 2 for _, value in self.meta["spikes"]) / self.n

    def _seasonal_ahead(self, h: int) -> np.ndarray:
        """Each seasonal component's last season repeated (statsforecast's MSTL)."""
        seasonal = self.arrays["seasonal"]
        return np.array([np.tile(seasonal[j, -p:], math.trunc(1 + (h - 1) / p))[:h]
                         for j, p in enumerate(self.meta["periods"])]).reshape(len(self.meta["periods"]), h)

    def history(self) -> dict[str, np.ndarray]:
        """The history's parts, which add up to ``data``: trend (the ARIMA model's one-step fit) +
        seasonal + holiday + spikes_and_dips + step_changes + residual."""
        data, n = self.arrays["data"], self.n
        spikes = np.zeros(n)
        for index, value in self.meta["spikes"]:
            spikes[index] = value
        steps = step_component(n, self.meta["steps"])
        holiday = self.model.holiday_effects(self.grid_index(), self.meta["holidays"])
        seasonal = self.arrays["seasonal"]
        adjusted = data - spikes - steps
        deseasonalized = adjusted - holiday - seasonal.sum(axis=0)
        start = self.meta["trend_start"]
        trend = np.concatenate([deseasonalized[:start], self.arrays["x"] - self.arrays["residuals"]])
        residual = deseasonalized - trend
        return {"data": data, "adjusted": adjusted, "trend": trend, "seasonal": seasonal, "holiday": holiday,
                "spikes": spikes, "steps": steps, "residual": residual, "expected": data - residual - spikes}

    @property
    def sigma(self) -> float:
        return math.sqrt(self.meta["arima"]["sigma2"])


class ArimaModel:
    """Every series of an ARIMA_PLUS(_XREG) version, as stored: ``header`` (model-wide), the id columns'
    values (one row per series) and each series' meta and arrays."""

    def __init__(self, header: dict, ids: pa.Table, metas: list[dict], packed: dict[str, np.ndarray]):
        self.header, self.ids, self.metas, self.packed = header, ids, metas, packed
        self._offsets = self._cut(metas)
        self.grid = timegrid.Grid(header["frequency"], header["anchor"])
        self.limits = tuple(header.get("limits") or (None, None))
        self._keys: dict[int, list[str]] = {}
        self._keyed: tuple[int, int] | None = None  # the days self._keys covers

    @staticmethod
    def _cut(metas: list[dict]) -> list[dict[str, tuple[int, list[int]]]]:
        cursor: dict[str, int] = {}
        offsets = []
        for meta in metas:
            mine = {}
            for name, shape in meta.get("shapes", {}).items():
                start = cursor.get(name, 0)
                mine[name] = (start, shape)
                cursor[name] = start + int(np.prod(shape, dtype=np.int64))
            offsets.append(mine)
        return offsets

    @classmethod
    def estimator(cls, header: dict, ids: pa.Table, metas: list[dict], arrays: list[dict[str, np.ndarray]]) -> dict:
        """What the envelope stores (skops reads it back without trusting any type beyond dict, str, ndarray)."""
        packed, shapes = pack(arrays)
        metas = [{**meta, "shapes": shape} for meta, shape in zip(metas, shapes)]
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, ids.schema) as writer:
            writer.write_table(ids)
        return {"meta": json.dumps({"header": header, "series": metas}), "ids": np.frombuffer(sink.getvalue(), np.uint8),
                **{f"array_{name}": values for name, values in packed.items()}}

    @classmethod
    def of(cls, estimator: dict) -> "ArimaModel":
        meta = json.loads(estimator["meta"])
        ids = pa.ipc.open_stream(pa.py_buffer(estimator["ids"].tobytes())).read_all()
        packed = {k[len("array_"):]: v for k, v in estimator.items() if k.startswith("array_")}
        return cls(meta["header"], ids, meta["series"], packed)

    def __len__(self) -> int:
        return len(self.metas)

    def series(self, position: int) -> Series:
        arrays = {name: self.packed[name][start:start + int(np.prod(shape, dtype=np.int64))].reshape(shape)
                  for name, (start, shape) in self._offsets[position].items()}
        return Series(self, position, self.metas[position], arrays)

    def fitted(self) -> list[Series]:
        """The series that were fitted (not those whose error ML.ARIMA_EVALUATE reports)."""
        return [self.series(i) for i, meta in enumerate(self.metas) if not meta.get("error")]

    def positions(self, keys: pa.Table) -> np.ndarray:
        """The series of each row of ``keys`` (the id columns), −1 for an id the model has no series of."""
        names = self.ids.column_names
        if not names:
            return np.zeros(keys.num_rows, dtype=np.int64)
        known = {row: i for i, row in enumerate(zip(*(self.ids[c].to_pylist() for c in names)))}
        wanted = zip(*(keys[c].cast(self.ids.schema.field(c).type).to_pylist() for c in names))
        return np.array([known.get(row, -1) for row in wanted], dtype=np.int64)

    def timestamps(self, index: np.ndarray) -> pa.Array:
        return pa.array(self.grid.micros(index), type=pa.timestamp("us", tz=self.header.get("timezone")))

    def holiday_effects(self, index: np.ndarray, effects: dict[str, float]) -> np.ndarray:
        if not effects:
            return np.zeros(len(index))
        days = self.grid.days(index)
        return holiday_component(days, effects, self.holiday_keys(int(days.min()), int(days.max())))

    def holiday_keys(self, first: int, last: int) -> dict[int, list[str]]:
        """Day → the holiday effects on it, for the model's regions, covering ``first`` .. ``last``."""
        if self._keyed is None or first < self._keyed[0] or last > self._keyed[1]:
            low, high = (first, last) if self._keyed is None else (min(first, self._keyed[0]), max(last, self._keyed[1]))
            found = timegrid.holidays_between(self.header.get("holiday_regions") or [], low, high)
            self._keys, self._keyed = timegrid.window_keys(found), (low, high)
        return self._keys


def of(model: "LoadedModel") -> ArimaModel:
    """The ARIMA state of a loaded ARIMA_PLUS(_XREG) version (parsed once per loaded version)."""
    state = model.estimator
    if not isinstance(state, ArimaModel):
        raise DataError(f"Model '{model.info.name}' is a {model.info.model_type} model, not a time series model.")
    return state
