"""ML.DESCRIBE_DATA: statistics and findings per column (the checks are :mod:`sqlml.train.checks`).

    SELECT * FROM ML.DESCRIBE_DATA((SELECT * FROM flights), STRUCT('is_late' AS label_col))"""

from __future__ import annotations

import pyarrow as pa

from ..errors import DataError
from ..train.checks import SCHEMA, describe
from .base import Call


def describe_data(call: "Call") -> pa.Table:
    """ML.DESCRIBE_DATA((query) [, STRUCT('y' AS label_col)])."""
    if call.model is not None:
        raise DataError("ML.DESCRIBE_DATA takes data, not a model: ML.DESCRIBE_DATA((SELECT ...), STRUCT('y' AS label_col)).")
    unknown = set(call.params) - {"label_col"}
    if unknown:
        raise DataError(f"ML.DESCRIBE_DATA does not know {', '.join(sorted(unknown))}; it takes label_col only.")
    return pa.Table.from_pylist(describe(call.input_table(), call.param("label_col")), schema=SCHEMA)
