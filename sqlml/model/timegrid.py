"""The regular time grid of a time series model, and the holidays on it.

BigQuery's frequencies are fixed steps (a minute, an hour, a day, a week) or calendar ones (a month, a
quarter, a year). Every timestamp falls in one bucket of the grid: its minute, hour, day, week (counted
from the model's first day), month, quarter or year; a point of the grid is an integer counted from the
model's anchor. Timestamps are int64 microseconds (since the epoch, UTC or wall clock as given).
Holidays come from the ``holidays`` package (no download): one effect per holiday and day of its window.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

import numpy as np

DAY = 86_400_000_000  # microseconds
FIXED = {"PER_MINUTE": 60_000_000, "HOURLY": 3_600_000_000, "DAILY": DAY, "WEEKLY": 7 * DAY}
MONTHS = {"MONTHLY": 1, "QUARTERLY": 3, "YEARLY": 12}
#: A typical step of each frequency, to infer the nearest from the data's own steps.
TYPICAL = {**FIXED, "MONTHLY": int(30.44 * DAY), "QUARTERLY": int(91.31 * DAY), "YEARLY": int(365.25 * DAY)}
#: Points per seasonal period at each frequency (whole points: MSTL needs integer periods).
PERIODS: dict[str, dict[str, int]] = {
    "PER_MINUTE": {"DAILY": 1440, "WEEKLY": 10_080},
    "HOURLY": {"DAILY": 24, "WEEKLY": 168, "YEARLY": 8766},
    "DAILY": {"WEEKLY": 7, "MONTHLY": 30, "QUARTERLY": 91, "YEARLY": 365},
    "WEEKLY": {"QUARTERLY": 13, "YEARLY": 52},
    "MONTHLY": {"QUARTERLY": 3, "YEARLY": 12},
    "QUARTERLY": {"YEARLY": 4},
    "YEARLY": {},
}
#: The seasonalities seasonalities = ['AUTO'] looks for (kept when the data shows them).
AUTO = {"PER_MINUTE": ("DAILY",), "HOURLY": ("DAILY", "WEEKLY"), "DAILY": ("WEEKLY", "YEARLY"),
        "WEEKLY": ("YEARLY",), "MONTHLY": ("YEARLY",), "QUARTERLY": ("YEARLY",), "YEARLY": ()}
#: Frequencies at which holidays are modelled: a holiday is a day.
HOLIDAY_FREQUENCIES = ("PER_MINUTE", "HOURLY", "DAILY")
PRE_DAYS, POST_DAYS = 1, 1  # each holiday's window: the day before and the day after have their own effect


def infer(steps: np.ndarray) -> str:
    """The BigQuery frequency nearest (on a log scale) to the median step between consecutive points."""
    positive = steps[steps > 0]
    if len(positive) == 0:
        return "DAILY"  # one timestamp per series: nothing to infer from; any grid holds it
    typical = float(np.median(positive))
    return min(TYPICAL, key=lambda name: abs(np.log(typical / TYPICAL[name])))


@dataclass(frozen=True)
class Grid:
    """A frequency and the anchor its points are counted from (a grid index 0 is the anchor's bucket)."""

    frequency: str
    anchor: int  # microseconds (fixed steps) or months since 1970 (calendar frequencies)

    @classmethod
    def over(cls, frequency: str, micros: np.ndarray) -> "Grid":
        """The grid of ``frequency`` whose index 0 is the bucket of the earliest timestamp."""
        first = int(micros.min())
        if frequency in MONTHS:
            return cls(frequency, int(_months(np.array([first]))[0]) // MONTHS[frequency] * MONTHS[frequency])
        unit = DAY if frequency == "WEEKLY" else FIXED[frequency]  # weeks start on the first day's weekday
        return cls(frequency, first // unit * unit)

    def index(self, micros: np.ndarray) -> np.ndarray:
        """The grid point of each timestamp (the bucket it falls in)."""
        if self.frequency in MONTHS:
            return (_months(micros) - self.anchor) // MONTHS[self.frequency]
        return (micros - self.anchor) // FIXED[self.frequency]

    def micros(self, index: np.ndarray) -> np.ndarray:
        """The start of each grid point, in microseconds."""
        index = np.asarray(index, dtype=np.int64)
        if self.frequency in MONTHS:
            months = (self.anchor + index * MONTHS[self.frequency]).astype("datetime64[M]")
            return months.astype("datetime64[us]").astype(np.int64)
        return self.anchor + index * FIXED[self.frequency]

    def days(self, index: np.ndarray) -> np.ndarray:
        """The day (since 1970-01-01) each grid point starts on: where holidays are looked up."""
        return np.floor_divide(self.micros(index), DAY)

    def period(self, seasonality: str) -> int | None:
        return PERIODS[self.frequency].get(seasonality)

    def to_dict(self) -> dict:
        return {"frequency": self.frequency, "anchor": self.anchor}


def _months(micros: np.ndarray) -> np.ndarray:
    return micros.astype("datetime64[us]").astype("datetime64[M]").astype(np.int64)


@dataclass(frozen=True)
class Holiday:
    region: str
    name: str
    day: int  # days since 1970-01-01


def holidays_between(regions: t.Sequence[str], first_day: int, last_day: int) -> list[Holiday]:
    """Every holiday of ``regions`` from ``first_day`` to ``last_day`` (their windows may reach outside),
    on its own date: observed days (a Monday off for a Sunday holiday) are not separate holidays."""
    import holidays

    years = range(_year(first_day - POST_DAYS), _year(last_day + PRE_DAYS) + 1)
    found = []
    for region in regions:
        for date, names in holidays.country_holidays(region, years=years, observed=False).items():
            day = int(np.datetime64(date, "D").astype(np.int64))
            if first_day - POST_DAYS <= day <= last_day + PRE_DAYS:
                found += [Holiday(region, name.strip(), day) for name in names.split(";")]
    return sorted(set(found), key=lambda h: (h.day, h.region, h.name))


def _year(day: int) -> int:
    return int(np.datetime64(int(day), "D").astype("datetime64[Y]").astype(np.int64)) + 1970


def window_keys(found: t.Sequence[Holiday]) -> dict[int, list[str]]:
    """Day → the holiday effects that fall on it: ``'<name>|<offset>'``, one per holiday and day of its
    window (offset −1 the day before, 0 the day, +1 the day after)."""
    keys: dict[int, list[str]] = {}
    for holiday in found:
        for offset in range(-PRE_DAYS, POST_DAYS + 1):
            key = f"{holiday.name}|{offset:+d}"
            keys.setdefault(holiday.day + offset, [])
            if key not in keys[holiday.day + offset]:
                keys[holiday.day + offset].append(key)
    return keys


def design(days: np.ndarray, keys: dict[int, list[str]], names: t.Sequence[str]) -> np.ndarray:
    """The 0/1 matrix of holiday effects ``names`` on ``days`` (one row per day)."""
    column = {name: j for j, name in enumerate(names)}
    matrix = np.zeros((len(days), len(names)))
    for i, day in enumerate(days.tolist()):
        for key in keys.get(day, ()):
            if key in column:
                matrix[i, column[key]] = 1.0
    return matrix
