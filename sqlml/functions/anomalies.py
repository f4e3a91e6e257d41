"""ML.DETECT_ANOMALIES: one detector per model family (:data:`DETECTORS`), each with BigQuery's arguments
and output columns for its models."""

from __future__ import annotations

import typing as t

import pyarrow as pa

from ..errors import SqlmlError
from ..model.kinds import ARIMA
from . import forecast_evaluate
from .base import Call

#: Model family → its ML.DETECT_ANOMALIES.
DETECTORS: dict[str, t.Callable[[Call], pa.Table]] = {
    ARIMA: forecast_evaluate.detect_anomalies,
}


def detect_anomalies(call: Call) -> pa.Table:
    model = call.require_model()
    detector = DETECTORS.get(model.kind.family)
    if detector is None:
        raise SqlmlError(f"ML.DETECT_ANOMALIES does not apply to {model.info.model_type} models; it takes "
                         f"{', '.join(sorted(DETECTORS))} models.")
    return detector(call)
