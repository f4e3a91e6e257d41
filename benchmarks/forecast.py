"""ARIMA_PLUS training and forecasting time beside statsforecast called directly on the same series.

    python benchmarks/forecast.py [--series 1 100 1000] [--days 730] [--horizon 30] [--repeat 2]

For each number of series (daily, two years: a level, a slope, a weekly pattern, a yearly wave and noise,
with a few spikes), one run of:

* sqlml: ``CREATE MODEL … OPTIONS (model_type = 'ARIMA_PLUS', …)`` with BigQuery's defaults, from a DuckDB
  table, and ``SELECT * FROM ML.FORECAST(MODEL m, STRUCT(30 AS horizon))``;
* the peer: statsforecast itself on the same series in a pandas frame, ``StatsForecast(n_jobs=-1)`` with
  ``MSTL(season_length=7, trend_forecaster=AutoARIMA(stepwise=False, approximation=True))`` — what sqlml's
  pipeline ends in (the weekly seasonality it finds, BigQuery's exhaustive auto.ARIMA search) — fitted, then
  ``predict(h=30, level=[95])``;
* for context, on one series, statsforecast's default ``AutoARIMA(season_length=7)`` (a stepwise seasonal
  ARIMA on the raw series: ~20 s a series here, too slow to repeat on a thousand).

sqlml's extra steps, all in the ratio: reading the query from DuckDB; the regular grid (duplicates,
interpolation); per series the seasonality test (STL), spike and dip cleaning (robust STL and running
medians, up to four passes), step change detection; ML.EVALUATE's candidate figures kept; the model stored
signed in the database. The machine is shared and its load changes over minutes: sqlml and the peer run
alternately ``--repeat`` times and the fastest of each is kept, so both are timed under the same loads.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("SQLML_SECRET_KEY", "forecast-benchmark-" + "0123456789abcdef" * 3)
warnings.simplefilter("ignore")  # statsforecast's convergence warnings, in this process and the forked workers

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def make_series(count: int, days: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    frames = []
    for i in range(count):
        values = (rng.uniform(50, 500) + rng.normal(0, 0.05) * t + rng.uniform(5, 40) * np.resize(
            [0.2, 0.5, 0.6, 0.4, 0.3, -1.0, -1.0], days) + rng.uniform(0, 20) * np.sin(2 * np.pi * t / 365.25)
            + np.cumsum(rng.normal(0, 1, days)) + rng.normal(0, 3, days))
        values[rng.choice(days, 3, replace=False)] += rng.choice([-1, 1], 3) * rng.uniform(30, 60, 3)
        frames.append(pd.DataFrame({"unique_id": f"s{i:04d}", "ds": pd.date_range("2022-01-01", periods=days),
                                    "y": values}))
    return pd.concat(frames, ignore_index=True)


def timed(run) -> tuple[float, object]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def sqlml_run(frame: pd.DataFrame, horizon: int) -> tuple[float, float, int]:
    import sqlml
    conn = sqlml.connect(progress=lambda message: None)
    conn.duckdb.register("frame", frame)
    conn.sql("CREATE TABLE series AS SELECT unique_id AS id, CAST(ds AS DATE) AS day, y FROM frame")
    fit, _ = timed(lambda: conn.sql(f"""CREATE MODEL m OPTIONS (model_type = 'ARIMA_PLUS', time_series_timestamp_col = 'day',
        time_series_data_col = 'y', time_series_id_col = 'id', horizon = {horizon}) AS SELECT * FROM series"""))
    forecast, rows = timed(lambda: conn.sql(f"SELECT * FROM ML.FORECAST(MODEL m, STRUCT({horizon} AS horizon))").fetchall())
    weekly = conn.sql("SELECT count(*) FROM ML.ARIMA_EVALUATE(MODEL m) WHERE seasonal_periods = ['WEEKLY']").fetchall()[0][0]
    conn.close()
    return fit, forecast, weekly


def statsforecast_run(frame: pd.DataFrame, horizon: int, model) -> tuple[float, float]:
    from statsforecast import StatsForecast
    forecaster = StatsForecast(models=[model], freq="D", n_jobs=-1 if frame.unique_id.nunique() > 1 else 1)
    fit, _ = timed(lambda: forecaster.fit(frame))
    forecast, _ = timed(lambda: forecaster.predict(h=horizon, level=[95]))
    return fit, forecast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--horizon", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    from statsforecast.models import MSTL, AutoARIMA

    warm = make_series(2, 200, seed=99)  # numba compiles statsforecast's functions on first use: not timed
    sqlml_run(warm, 5)
    statsforecast_run(warm, 5, MSTL(season_length=7, trend_forecaster=AutoARIMA(stepwise=False, approximation=True)))
    print(f"{os.cpu_count()} cores (shared with other work: times are upper bounds, ratios are what to read)")
    print(f"{'series':>7} | {'sqlml fit':>10} {'per series':>10} | {'statsforecast':>13} {'per series':>10} {'ratio':>6} | "
          f"{'AutoARIMA(7)':>12} | {'ML.FORECAST':>11} {'predict':>8} | weekly found")
    for count in args.series:
        frame = make_series(count, args.days)
        ours, peers = [], []
        for _ in range(args.repeat):  # alternately: a change of the machine's load falls on both
            ours.append(sqlml_run(frame, args.horizon))
            peers.append(statsforecast_run(frame, args.horizon, MSTL(
                season_length=7, trend_forecaster=AutoARIMA(stepwise=False, approximation=True))))
        (fit, forecast, weekly), (peer_fit, peer_forecast) = min(ours), min(peers)
        default = f"{statsforecast_run(frame, args.horizon, AutoARIMA(season_length=7))[0]:>11.1f}s" if count == 1 else ""
        print(f"{count:>7} | {fit:>9.1f}s {1000 * fit / count:>8.0f}ms | {peer_fit:>12.1f}s {1000 * peer_fit / count:>8.0f}ms "
              f"{fit / peer_fit:>5.2f}× | {default:>12} | {forecast:>10.2f}s {peer_forecast:>7.2f}s | {weekly}/{count}",
              flush=True)


if __name__ == "__main__":
    main()
