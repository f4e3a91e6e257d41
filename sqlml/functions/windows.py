"""Time windows for monitoring: ``STRUCT('time_hour' AS time_column, 'month' AS time_window)``.

A window is the time column truncated to the start of its day, ISO week (Monday), month, quarter or
year — DuckDB's ``date_trunc`` on the same values, computed on each record batch with Arrow's
``floor_temporal`` as the batch is scored, so only the window (not the time column) is kept per row.
Rows whose time is NULL form one window of their own, ``window_start`` NULL, listed last.
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
        return pc.floor_temporal(rows[self.column], unit=self.unit)


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
