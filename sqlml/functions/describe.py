"""ML.DESCRIBE_DATA and the data checks CREATE MODEL runs before fitting.

    SELECT * FROM ML.DESCRIBE_DATA((SELECT * FROM flights), STRUCT('is_late' AS label_col))

One row per column: type, counts, null share, distinct count, numeric summary or top values, and
``findings``: problems that make a model fail or mislead, each saying why it matters and what to do.

* constant column, nearly-all-NULL column (share ≥ ``MOSTLY_NULL_SHARE``);
* identifier-like column: a string or integer unique on every row (a model memorizes it);
* label imbalance (the same threshold as :mod:`sqlml.imbalance`);
* likely label leakage: one feature alone predicts the label almost perfectly on held-out rows
  (a depth-``LEAK_TREE_DEPTH`` tree for numbers, per-value label rates for other values, on at most
  ``LEAK_SAMPLE_ROWS`` sampled rows), or equals the label under another name.

Statistics are exact over all rows (Arrow kernels); only the leakage check samples.
"""


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

