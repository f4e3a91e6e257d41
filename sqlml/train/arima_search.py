"""The trend's ARIMA model: BigQuery's auto.ARIMA on statsforecast's fits, or the order given.

auto.ARIMA as BigQuery describes it (``bigqueryml-syntax-create-time-series``, auto_arima_max_order): d from
the KPSS test, then every non-seasonal (p, q) with min_order <= p + q <= max_order, with and without a
constant (a drift when d = 1), the best by AICc. That is statsforecast's ``auto_arima_f(stepwise=False,
period=1)``, whose steps are followed here call for call (``ndiffs``, ``myarima``, the CSS approximation
over 150 points and the exact refit of the best) with two additions: the minimum order, and the
candidates' figures kept for ML.ARIMA_EVALUATE's show_all_candidate_models.
"""

from __future__ import annotations

import math
import typing as t

import numpy as np

from ..errors import DataError


def arima(x: np.ndarray, xreg: np.ndarray | None, options: dict) -> tuple[dict, list]:
    """The ARIMA model of the trend (statsforecast's model dict) and the candidates auto.ARIMA tried."""
    from statsforecast.arima import Arima
    if options["auto_arima"]:
        return auto_arima(x, xreg, options["auto_arima_max_order"], options["auto_arima_min_order"])
    p, d, q = options["non_seasonal_order"]
    fitted = Arima(x, order=(p, d, q), seasonal={"order": (0, 0, 0), "period": 1}, xreg=xreg, include_mean=True,
                   include_drift=options["include_drift"], method="CSS-ML")
    return fitted, []


def auto_arima(x: np.ndarray, xreg: np.ndarray | None, max_order: int, min_order: int) -> tuple[dict, list]:
    """statsforecast's ``auto_arima_f(stepwise=False, period=1)`` with BigQuery's auto_arima_min_order,
    keeping each candidate's figures (ML.ARIMA_EVALUATE's show_all_candidate_models)."""
    from statsforecast.arima import Arima, arima, diff, is_constant, ndiffs
    approximation = len(x) > 150
    ic = "aic" if len(x) <= 3 else "aicc"
    if is_constant(x):
        fit = Arima(x, order=(0, 0, 0), seasonal={"order": (0, 0, 0), "period": 1}, fixed=np.array([np.mean(x)]))
        return {**fit, "constant": True}, []
    xx, xregg = _regression_residuals(x, xreg)
    d = ndiffs(xx, test="kpss", max_d=2)
    if d > 0 and xregg is not None and any(is_constant(c) for c in diff(xregg, 1, d).T):
        d -= 1
    if d > 0 and np.isnan(diff(xx, 1, d)).all():
        d -= 1
    dx = diff(xx, 1, d) if d > 0 else xx
    if len(dx) == 0:
        raise DataError("The trend has too few points to difference.")
    if is_constant(dx):
        return _constant_difference(x, xreg, d, dx), []
    offset = 0.0
    if approximation:
        try:
            start = arima(x, order=(0, d, 0), seasonal={"order": (0, 0, 0), "period": 1}, xreg=xreg)
            offset = -2 * start["loglik"] - len(x) * math.log(start["sigma2"])
        except Exception:  # noqa: BLE001  statsforecast's own fallback
            offset = 0.0
    limit = len(x) // 3
    search = _Search(x, xreg, d, min(5, limit), min(5, limit), max_order, min_order, ic, offset)
    best = search.run(approximation)
    return {**best, "x": x, "lambda": None}, search.candidates


def _regression_residuals(x: np.ndarray, xreg: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """As auto_arima_f: with regressors, the unit-root test reads the residuals of a linear regression."""
    if xreg is None:
        return x, None
    import statsmodels.api as sm
    from statsforecast.arima import is_constant
    constant = np.array([is_constant(c) for c in xreg.T])
    if constant.all():
        return x, None
    xregg = xreg[:, ~constant]
    X = np.hstack([np.ones((len(xregg), 1)), xregg])
    _, singular, _ = np.linalg.svd(X[~np.isnan(X).any(1)])
    if singular.min() / singular.sum() < np.finfo(np.float64).eps:
        raise DataError("The external regressors are linearly dependent (rank deficient): drop the redundant ones.")
    return sm.OLS(x, sm.add_constant(xregg)).fit().resid, xregg


def _constant_difference(x: np.ndarray, xreg: np.ndarray | None, d: int, dx: np.ndarray) -> dict:
    from statsforecast.arima import Arima
    seasonal = {"order": (0, 0, 0), "period": 1}
    if xreg is not None:
        return Arima(x, order=(0, d, 0), seasonal=seasonal, xreg=xreg, method=None)
    if d == 2:
        return Arima(x, order=(0, d, 0), seasonal=seasonal, method=None)
    return Arima(x, order=(0, d, 0), seasonal=seasonal, include_constant=True, fixed=np.array([np.mean(dx)]),
                 method=None)


class _Search:
    """statsforecast's ``search_arima`` for a non-seasonal model, with a minimum order and its candidates."""

    def __init__(self, x, xreg, d, max_p, max_q, max_order, min_order, ic, offset):
        self.x, self.xreg, self.d, self.ic, self.offset = x, xreg, d, ic, offset
        self.max_p, self.max_q, self.max_order, self.min_order = max_p, max_q, max_order, min_order
        self.candidates: list[list] = []

    def run(self, approximation: bool) -> dict:
        from statsforecast.arima import myarima
        best, best_ic, constant = None, np.inf, False
        drift_or_mean = self.d in (0, 1)  # allowdrift with d = 1, allowmean with d = 0
        for p in range(self.max_p + 1):
            for q in range(self.max_q + 1):
                if not self.min_order <= p + q <= self.max_order:
                    continue
                for with_constant in (False, True)[:1 + drift_or_mean]:
                    fit = self._fit(p, q, with_constant, approximation)
                    self.candidates.append(_candidate(p, self.d, q, with_constant, fit))
                    if fit["ic"] < best_ic:
                        best, best_ic, constant = fit, fit["ic"], with_constant
        if best is None:
            raise DataError("No ARIMA model could be estimated for the trend.")
        if approximation:
            exact = myarima(self.x, order=(best["arma"][0], self.d, best["arma"][1]),
                            seasonal={"order": (0, 0, 0), "period": 1}, constant=constant, ic=self.ic,
                            approximation=False, xreg=self.xreg)
            if math.isfinite(exact["ic"]):
                return exact
            self.candidates = []
            return self.run(False)
        return best

    def _fit(self, p: int, q: int, constant: bool, approximation: bool) -> dict:
        from statsforecast.arima import myarima
        return myarima(self.x, order=(p, self.d, q), seasonal={"order": (0, 0, 0), "period": 1}, constant=constant,
                       ic=self.ic, approximation=approximation, offset=self.offset, xreg=self.xreg, method=None)


def _candidate(p: int, d: int, q: int, constant: bool, fit: dict) -> list:
    """[p, d, q, has_drift, log_likelihood, AIC, variance] (NULLs for a fit that failed)."""
    ok = math.isfinite(fit["ic"])
    figure = (lambda key: float(fit[key]) if ok and fit.get(key) is not None else None)
    return [p, d, q, bool(constant and d == 1), figure("loglik"), figure("aic"), figure("sigma2")]


def arima_meta(model: dict) -> dict:
    """The JSON part of statsforecast's ARIMA model dict (arrays go to :func:`arima_arrays`)."""
    return {"coef": [[name, float(value)] for name, value in model["coef"].items()], "arma": [int(a) for a in model["arma"]],
            **{k: _number(model.get(k)) for k in ("sigma2", "loglik", "aic", "aicc", "bic", "code", "n_cond", "nobs")},
            "h": float(model["model"]["h"]), "constant": bool(model.get("constant", False))}


STATE_SPACE = ("phi", "theta", "delta", "Z", "a", "P", "T", "V", "Pn")


def arima_arrays(model: dict) -> dict[str, np.ndarray]:
    arrays = {"x": model["x"], "residuals": model["residuals"], "mask": np.asarray(model["mask"], dtype=np.float64),
              **{f"model_{k}": model["model"][k] for k in STATE_SPACE}}
    if model.get("var_coef") is not None:
        arrays["var_coef"] = model["var_coef"]
    if model.get("xreg") is not None:
        arrays["xreg"] = model["xreg"]
    return {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}


def _number(value: t.Any) -> float | int | None:
    if value is None:
        return None
    value = value.item() if hasattr(value, "item") else value
    return value if isinstance(value, int) else (float(value) if math.isfinite(float(value)) else None)
