"""The label of a training query: rows that have one, whether it can be learned, its class codes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError
from ..model.kinds import CLASSIFICATION, REGRESSION, ModelKind
from ..model.preprocess import as_float, column_kind


def label_of(kind: ModelKind, options: dict) -> str | None:
    """The label column the options name (BigQuery's default ``label``), or None for unsupervised kinds."""
    return options.get("input_label_cols", ["label"])[0] if kind.supervised else None


def role_columns(kind: ModelKind, options: dict) -> list[str | None]:
    """The columns that are not features whatever their type: the label, the split and the weight column."""
    return [label_of(kind, options), options.get("data_split_col"), options.get("instance_weight_col")]


def query_column(table: pa.Table, name: str, role: str) -> pa.ChunkedArray:
    return table[column_name(table, name, role)]


def column_name(table: pa.Table, name: str, role: str) -> str:
    """The query's column an option names; like BigQuery, case does not matter ('SPLIT_COL' is split_col)."""
    if name in table.column_names:
        return name
    matches = [c for c in table.column_names if c.lower() == name.lower()]
    if len(matches) != 1:
        raise DataError(f"The {role} '{name}' is not a column of the training query. Columns: {', '.join(table.column_names)}.")
    return matches[0]


def label_task(column: pa.ChunkedArray, max_classes: int) -> str:
    """CLASSIFICATION or REGRESSION, judged from a label's values: text and booleans are classes,
    fractional numbers (floats and DECIMALs) are values, integers are classes when they take at most
    ``max_classes`` distinct values (a count, such as a rating, is often a class label)."""
    dtype = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return REGRESSION
    if not pa.types.is_integer(dtype):
        return CLASSIFICATION
    return CLASSIFICATION if pc.count_distinct(column, mode="only_valid").as_py() <= max_classes else REGRESSION


def prepare_label(table: pa.Table, label: str, kind: ModelKind) -> tuple[pa.Table, list | None]:
    """Drop rows with a NULL label and check the label can be learned; returns classes if any."""
    column = query_column(table, label, "label column (input_label_cols)")
    if column.null_count:
        table = table.filter(pc.is_valid(column))
    if table.num_rows == 0:
        raise DataError(f"The training query returned zero rows with a non-NULL label '{label}'.")
    if pa.types.is_dictionary(column.type):  # an ENUM or pandas category: its labels are the values
        table = table.set_column(table.schema.get_field_index(label), label,
                                 table[label].cast(column.type.value_type))
    if kind.task != CLASSIFICATION:
        if column_kind(label, table.schema.field(label).type) != "numeric":
            raise DataError(f"model_type '{kind.name}' needs a numeric label; '{label}' is {table.schema.field(label).type}.")
        as_float(table, label)  # refuses NaN and infinity, naming the column
        return table, None
    values = table[label]
    if pa.types.is_floating(values.type):
        as_float(table, label)
    if pa.types.is_unsigned_integer(values.type) and values.type.bit_width == 64 \
            and pc.max(values).as_py() > np.iinfo(np.int64).max:
        raise DataError(f"The label '{label}' has values above {np.iinfo(np.int64).max:,}, which sqlml stores as "
                        f"BIGINT classes; use CAST({label} AS VARCHAR) as the label.")
    classes = sorted(pc.unique(values).to_pylist(), key=lambda v: (str(type(v)), v))
    if len(classes) < 2:
        raise DataError(f"The label '{label}' has a single class ({classes[0]!r}); a classifier needs at least two.")
    return table, classes


def label_codes(values: pa.ChunkedArray, classes: list) -> np.ndarray:
    """Class index of each label value."""
    return np.asarray(pc.index_in(values, value_set=pa.array(classes, type=values.type)), dtype=np.int64)
