"""Time windows for monitoring: ``STRUCT('time_hour' AS time_column, 'month' AS time_window)``.

A window is the time column truncated to the start of its day, ISO week (Monday), month, quarter or
year — DuckDB's ``date_trunc`` on the same values, computed on each record batch with Arrow's
``floor_temporal`` as the batch is scored, so only the window (not the time column) is kept per row.
Rows whose time is NULL form one window of their own, ``window_start`` NULL, listed last. A time
outside the years 1 to 9999 (DuckDB's ``'infinity'`` and ``'-infinity'`` among them) starts no window:
the statement is refused, naming the column.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError, ParameterError
from .slices import groups

if t.TYPE_CHECKING:
    from .base import Data

MAX_WINDOWS = 100_000  # ~270 years of days: beyond it the column is not a time


@dataclass(frozen=True)
class Windows:
    """The time column and the unit its rows are bucketed by."""

    column: str
    unit: str

    def of(self, rows: pa.Table) -> pa.ChunkedArray:
        """Each row's window start (the time column's own type)."""
        times = rows[self.column]
        if outside_years(times):
            raise DataError(f"time_column '{self.column}' holds a time outside the years 1 to 9999 (such as "
                            f"'infinity'), which starts no {self.unit}: leave such rows out of the input, e.g. "
                            f"WHERE isfinite({self.column}).")
        return pc.floor_temporal(times, unit=self.unit)


#: The first and last moments of the years 1 to 9999, in seconds (timestamps) and days (dates) from 1970-01-01.
YEARS_1_TO_9999 = {"s": (-62_135_596_800, 253_402_300_799), "d": (-719_162, 2_932_896)}
PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def outside_years(times: pa.ChunkedArray) -> int:
    """How many DATE or TIMESTAMP values fall outside the years 1 to 9999 (a day or a week before
    0001-01-01 would start there too), compared as the stored integers, which hold any value."""
    dtype = times.type
    if pa.types.is_timestamp(dtype):
        low, high = (bound * PER_SECOND[dtype.unit] for bound in YEARS_1_TO_9999["s"])
        high += PER_SECOND[dtype.unit] - 1  # the last second's fractions
        values = pc.cast(times, pa.int64())
    elif pa.types.is_date32(dtype):
        (low, high), values = YEARS_1_TO_9999["d"], pc.cast(times, pa.int32())
    else:  # date64: milliseconds
        low, high = (bound * 86_400_000 for bound in YEARS_1_TO_9999["d"])
        high += 86_400_000 - 1
        values = pc.cast(times, pa.int64())
    low, high = max(low, -2**63), min(high, 2**63 - 1)
    return pc.sum(pc.or_(pc.less(values, low), pc.greater(values, high))).as_py() or 0


def from_params(function: str, params: dict, schema: pa.Schema) -> Windows | None:
    """The windows ``params`` ask for (None without ``time_column``), checked against the input's columns."""
    column, unit = params.get("time_column"), params.get("time_window")
    if column is None:
        if unit is not None:
            raise ParameterError(f"ML.{function}'s time_window needs a time_column to bucket by: "
                                 f"STRUCT('time_hour' AS time_column, '{unit}' AS time_window).")
        return None
    if column not in schema.names:
        raise DataError(f"time_column '{column}' is not a column of the input of ML.{function}; "
                        f"its columns are: {', '.join(schema.names)}.")
    kind = schema.field(column).type
    if not (pa.types.is_date(kind) or pa.types.is_timestamp(kind)):
        raise DataError(f"time_column '{column}' is {kind}, not a DATE or TIMESTAMP; cast it in the input query, "
                        f"e.g. (SELECT * REPLACE (CAST({column} AS TIMESTAMP) AS {column}) FROM t).")
    return Windows(column, str(unit or "month").lower())


def scored(data: Data, windows: Windows | None,
           score: t.Callable[[pa.Table], tuple[pa.Table, dict[str, np.ndarray]]]) -> tuple[dict, list]:
    """One pass over the input: ``score`` turns each batch into (the rows it kept, arrays per row);
    only those arrays and each kept row's window stay in memory. Returns the arrays joined and the
    row indices of each window in time order (NULL last), or of all rows as one window (no ``windows``)."""
    parts: list[dict[str, np.ndarray]] = []
    starts: list[pa.Array] = []
    for batch in data.batches():
        rows, arrays = score(pa.Table.from_batches([batch]))
        if rows.num_rows:
            parts.append(arrays)
            if windows is not None:
                starts.extend(windows.of(rows).chunks)
    if not parts:
        return {}, []
    joined = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if windows is None:
        return joined, [(None, np.arange(len(next(iter(joined.values())))))]
    values = pa.table({"window": pa.chunked_array(starts, type=window_type(windows, data.schema()))})
    return joined, [(key[0], rows) for key, rows in groups(values, ["window"], MAX_WINDOWS)]


def window_type(windows: Windows, schema: pa.Schema) -> pa.DataType:
    """``window_start``'s type: the time column's (a DATE stays a DATE)."""
    return schema.field(windows.column).type
