"""ML.TRANSFORM: a model's fitted TRANSFORM clause (:mod:`sqlml.sql.transform`) applied to new rows."""

from __future__ import annotations

from ..sql.transform_functions import TransformError
from .base import Call, Output


def ml_transform(call: Call) -> Output:
    """ML.TRANSFORM(MODEL m, data): the data as the model sees it (the executor already wrapped the
    input through the model's TRANSFORM)."""
    model = call.require_model()
    if not model.transform:
        raise TransformError(f"ML.TRANSFORM needs a model trained with a TRANSFORM clause; '{model.info.name}' has none.")
    data = call.require_input()
    return data.map(_unchanged, data.empty)


def _unchanged(rows):
    return rows
