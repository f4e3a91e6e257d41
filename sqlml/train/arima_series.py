"""A training query's rows as regular time series: BigQuery's first pipeline steps.

Per series (one per value of the id columns): infer the frequency (data_frequency = 'AUTO_FREQUENCY'),
put every timestamp on the frequency's grid (irregular timestamps fall in their bucket), average the
points that share a grid point (duplicated timestamps), and fill the grid points with no data by linear
interpolation between their neighbours (missing points). The series are then fitted one by one
(:mod:`sqlml.train.arima_pipeline`).
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError
from ..model import timegrid
from ..model.preprocess import to_float64

#: A grid may hold this many points more than the rows (gaps filled by interpolation) before sqlml
#: refuses it as a wrong data_frequency rather than interpolate a mostly invented series.
MAX_FILL = 10
MIN_REFUSED_POINTS = 100_000


@dataclass
class Columns:
    """The query's columns in their roles (names as the query spells them)."""

    timestamp: str
    data: str
    ids: list[str]
    regressors: list[str]

    @property
    def all(self) -> list[str]:
        return [*self.ids, self.timestamp, self.data, *self.regressors]


@dataclass
class Prepared:
    """Regular series: each series' points are ``values[offsets[i]:offsets[i + 1]]``, on grid points
    ``starts[i]`` onwards; ``ids`` holds each series' id values (one row per series)."""

    grid: timegrid.Grid
    ids: pa.Table
    starts: np.ndarray
    offsets: np.ndarray
    values: np.ndarray
    regressors: np.ndarray | None  # one row per point, one column per regressor
    timezone: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def values_of(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i]:self.offsets[i + 1]]

    def without_tail(self, tails: np.ndarray) -> "Prepared":
        """The same series less their last ``tails[i]`` points (the deploy gate's held-out tails)."""
        keep = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1] - tails[i]) for i in range(len(tails))])
        offsets = np.concatenate([[0], np.cumsum(self.lengths - tails)])
        regressors = self.regressors[keep] if self.regressors is not None else None
        return Prepared(self.grid, self.ids, self.starts, offsets, self.values[keep], regressors, self.timezone)


def micros(column: pa.ChunkedArray) -> np.ndarray:
    """A DATE or TIMESTAMP column as int64 microseconds (NULLs dropped beforehand)."""
    kind = column.type
    if pa.types.is_date(kind):
        return column.cast(pa.date32()).to_numpy(zero_copy_only=False).astype("datetime64[D]").astype(
            "datetime64[us]").astype(np.int64)
    return column.cast(pa.timestamp("us", tz=kind.tz)).cast(pa.int64()).to_numpy(zero_copy_only=False)


def check_types(schema: pa.Schema, columns: Columns, options: dict) -> None:
    """Refuse, before reading any row, a timestamp column that is no date/time and data or regressors
    that are not numbers."""
    kind = schema.field(columns.timestamp).type
    if not (pa.types.is_date(kind) or pa.types.is_timestamp(kind)):
        raise DataError(f"time_series_timestamp_col '{columns.timestamp}' is {_sql_type(kind)}; it must be a DATE, "
                        "DATETIME or TIMESTAMP column (CAST it, e.g. CAST(day AS DATE)).")
    for name, role in [(columns.data, "time_series_data_col"), *((r, "an external regressor") for r in columns.regressors)]:
        kind = schema.field(name).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
                or (pa.types.is_boolean(kind) and role != "time_series_data_col")):
            raise DataError(f"{role} '{name}' is {_sql_type(kind)}; it must be a number (INT64, FLOAT64 or NUMERIC)"
                            + (", or BOOL" if role != "time_series_data_col" else "") + ".")


def _sql_type(kind: pa.DataType) -> str:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return {"string": "a STRING", "large_string": "a STRING", "bool": "a BOOL"}.get(str(kind), f"of type {kind}")


def prepare(table: pa.Table, columns: Columns, options: dict) -> Prepared:
    """The query's rows as regular series (``options``: the checked CREATE MODEL options)."""
    notes: list[str] = []
    table = _drop_nulls(table, columns, notes)
    codes, ids = _series_codes(table, columns.ids)
    times = micros(table[columns.timestamp])
    order = np.lexsort((times, codes))
    codes, times = codes[order], times[order]
    values = to_float64(table[columns.data]).to_numpy(zero_copy_only=False)[order]
    regressors = (np.column_stack([to_float64(table[r]).to_numpy(zero_copy_only=False) for r in columns.regressors])[order]
                  if columns.regressors else None)
    frequency = options["data_frequency"]
    if frequency == "AUTO_FREQUENCY":
        same = codes[1:] == codes[:-1]
        frequency = timegrid.infer(np.diff(times)[same])
    grid = timegrid.Grid.over(frequency, times)
    points = grid.index(times)
    values, regressors, codes, points = _average_duplicates(codes, points, values, regressors, notes)
    prepared = _fill(grid, ids, codes, points, values, regressors, notes)
    prepared.timezone = table.schema.field(columns.timestamp).type.tz if pa.types.is_timestamp(
        table.schema.field(columns.timestamp).type) else None
    return prepared


def _drop_nulls(table: pa.Table, columns: Columns, notes: list[str]) -> pa.Table:
    for name in columns.ids:
        nulls = table[name].null_count
        if nulls:
            raise DataError(f"time_series_id_col '{name}' is NULL in {nulls:,} row(s): every row needs the id of its "
                            "series (filter them out, or COALESCE them to a value of their own).")
    for name in columns.regressors:
        nulls = table[name].null_count
        if nulls:
            raise DataError(f"The external regressor '{name}' is NULL in {nulls:,} row(s): ARIMA_PLUS_XREG needs every "
                            "regressor's value at every time point (fill them, e.g. COALESCE, or leave the column out).")
    for name, what in ((columns.timestamp, "no timestamp"), (columns.data, "no data value")):
        present = pc.is_valid(table[name])
        if name == columns.data and pa.types.is_floating(table.schema.field(name).type):
            present = pc.and_(present, pc.invert(pc.is_nan(table[name])))  # NaN is missing too
        nulls = table.num_rows - pc.sum(present).as_py()
        if nulls:
            table = table.filter(present)
            notes.append(f"Data check: {nulls:,} row(s) with {what} ({name} is NULL or NaN) were left out"
                         + ("; their time points are interpolated." if name == columns.data else "."))
    if table.num_rows == 0:
        raise DataError("The training query returned no row with both a timestamp and a data value.")
    return table


def _series_codes(table: pa.Table, id_columns: list[str]) -> tuple[np.ndarray, pa.Table]:
    """Each row's series number (series sorted by their ids) and the ids of each series."""
    if not id_columns:
        return np.zeros(table.num_rows, dtype=np.int64), pa.table({})
    keyed = table.select(id_columns).append_column("__row", pa.array(np.arange(table.num_rows)))
    first = keyed.group_by(id_columns, use_threads=False).aggregate([("__row", "min")])
    first = first.sort_by([(c, "ascending") for c in id_columns])
    ids = table.select(id_columns).take(first["__row_min"])
    lookup = ids.append_column("__code", pa.array(np.arange(ids.num_rows)))
    joined = keyed.join(lookup, id_columns, use_threads=False).sort_by("__row")
    return joined["__code"].to_numpy(), ids


def _average_duplicates(codes, points, values, regressors, notes: list[str]):
    """One value per series and grid point: the mean of the rows that share it."""
    key_change = np.concatenate([[True], (codes[1:] != codes[:-1]) | (points[1:] != points[:-1])])
    if key_change.all():
        return values, regressors, codes, points
    groups = np.cumsum(key_change) - 1
    counts = np.bincount(groups)
    notes.append(f"Data check: {len(values) - len(counts):,} row(s) shared a time point with another row of "
                 "their series and were averaged (BigQuery averages duplicated timestamps).")
    mean = np.bincount(groups, weights=values) / counts
    if regressors is not None:
        regressors = np.column_stack([np.bincount(groups, weights=c) / counts for c in regressors.T])
    return mean, regressors, codes[key_change], points[key_change]


def _fill(grid, ids, codes, points, values, regressors, notes: list[str]) -> Prepared:
    """Every grid point from each series' first to its last, interpolated linearly where it has no data."""
    bounds = np.flatnonzero(np.concatenate([[True], codes[1:] != codes[:-1], [True]]))
    starts = points[bounds[:-1]]
    lengths = points[bounds[1:] - 1] - starts + 1
    total = int(lengths.sum())
    if total > MAX_FILL * len(values) and total > MIN_REFUSED_POINTS:
        raise DataError(f"At data_frequency '{grid.frequency}' the series would have {total:,} time points for "
                        f"{len(values):,} rows of data: set data_frequency to the data's own frequency.")
    filled = np.empty(total)
    filled_regressors = np.empty((total, regressors.shape[1])) if regressors is not None else None
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    for i in range(len(starts)):
        here = slice(bounds[i], bounds[i + 1])
        at = points[here] - starts[i]
        grid_points = np.arange(lengths[i])
        filled[offsets[i]:offsets[i + 1]] = np.interp(grid_points, at, values[here])
        if regressors is not None:
            filled_regressors[offsets[i]:offsets[i + 1]] = np.column_stack(
                [np.interp(grid_points, at, column) for column in regressors[here].T])
    missing = total - len(values)
    if missing:
        notes.append(f"Data check: {missing:,} time point(s) had no data and were interpolated linearly "
                     f"(at data frequency {grid.frequency}).")
    return Prepared(grid, ids, starts, offsets, filled, filled_regressors, None, notes)


def holiday_calendar(prepared: Prepared, regions: t.Sequence[str]) -> tuple[dict[int, list[str]], list[str]]:
    """Day → holiday effects, over the days the series cover, and every effect's name."""
    first = int(prepared.grid.days(np.array([prepared.starts.min()]))[0])
    last = int(prepared.grid.days(np.array([(prepared.starts + prepared.lengths).max() - 1]))[0])
    keys = timegrid.window_keys(timegrid.holidays_between(regions, first, last))
    names = sorted({key for day, found in keys.items() if first <= day <= last for key in found})
    return {day: found for day, found in keys.items() if first <= day <= last}, names
