"""The TRANSFORM clause of CREATE MODEL, fitted once and replayed as plain SQL.

At training, each BigQuery preprocessing function (``ML.STANDARD_SCALER(x) OVER ()``, ...) gets its
statistics from SQL aggregates over the rows of the training query, and is then *compiled* into an
ordinary expression with those statistics as constants::

    ML.STANDARD_SCALER(bill_length_mm) OVER () AS bill
    →  (CAST(bill_length_mm AS DOUBLE) - 43.92192982456141e0) / 5.4595837139265315e0 AS bill

The model trains on ``SELECT <compiled list> FROM (query)`` and every later ML.* call that reads
data wraps its input the same way (:func:`wrap_sql`), so training and prediction run the very same
SQL. The fitted state is JSON (compiled SQL plus statistics) kept in the authenticated model header.

Deviations from BigQuery (see docs/feature_engineering.md): quantiles are exact (linear
interpolation, numpy's default) rather than APPROX_QUANTILES; ONE_HOT_ENCODER, FEATURE_CROSS and
POLYNOMIAL_EXPAND expand into one column per output (``<alias>_<part>``) instead of an ARRAY or STRUCT.
"""


from __future__ import annotations

import typing as t

from ..sql.transform import TransformError


def ml_transform(call) -> "t.Any":
    """ML.TRANSFORM(MODEL m, data): the data as the model sees it (the executor already wrapped the
    input through the model's TRANSFORM)."""
    model = call.require_model()
    if not model.transform:
        raise TransformError(f"ML.TRANSFORM needs a model trained with a TRANSFORM clause; '{model.info.name}' has none.")
    return call.input_table()

