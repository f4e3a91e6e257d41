"""ML.PREDICT and ML.BASELINE: prediction columns first, then every input column (BigQuery's order)."""

from __future__ import annotations

import pyarrow as pa

from ..errors import DataError, SqlmlError
from ..model import serve
from ..model.kinds import CLUSTERING
from .base import Call, Stream


def baseline_predictions(call: "Call") -> Stream:
    """ML.BASELINE: the baseline's own predictions, named like ML.PREDICT's, then the input columns."""
    model = call.require_model()
    if model.kind.task == CLUSTERING:
        raise SqlmlError(f"ML.BASELINE needs a classifier or regressor; '{model.info.name}' is a {model.kind.name}.")
    data = call.require_input()
    return Stream((_with_predictions(_baseline(call, rows.num_rows), rows) for rows in data.tables()),
                  lambda: _with_predictions(_baseline(call, 0), data.empty()))


def _baseline(call: "Call", rows: int) -> pa.Table:
    front = serve.baseline_output(call.model, rows)
    if call.challenger is not None:  # a disabled model under A/B serving: ML.PREDICT's columns, as a view gives
        front = front.append_column("model_version", pa.array([call.model.info.version] * rows, pa.int64()))
    return front


def predict(call: Call) -> Stream:
    """ML.PREDICT: prediction columns first, then every input column (BigQuery's order).
    The input is streamed in record batches, each scored in one vectorized call when it is read."""
    call.require_model()
    data = call.require_input()
    return Stream((_with_predictions(_scored(call, rows), rows) for rows in data.tables()),
                  lambda: _with_predictions(_scored(call, data.empty()), data.empty()))


def _scored(call: Call, rows: pa.Table) -> pa.Table:
    """Prediction columns of one batch; with A/B serving, the challenger scores the rows whose
    ``split_key`` hashes into ``challenger_fraction`` (sqlml.model.serve), and ``model_version`` says which."""
    model, threshold = call.model, call.param("threshold")
    if call.challenger is None:
        return model.predict(rows, threshold)
    if serve.SPLIT_KEY not in rows.column_names:  # the executor adds the canonical key of split_key
        raise DataError(f"A/B serving needs split_key, a column of the input whose hash decides each row's arm; "
                        f"got {call.param('split_key')!r}. Columns: {', '.join(rows.column_names)}.")
    arms = serve.challenger_rows(rows[serve.SPLIT_KEY], call.param("challenger_fraction"))
    return serve.ab_output(model, call.challenger, rows, arms, model.info.version, call.challenger.info.version,
                           threshold, threshold)


def _with_predictions(predictions: pa.Table, inputs: pa.Table) -> pa.Table:
    """Prediction columns, then the input columns they do not replace (not the canonical split key)."""
    kept = [name for name in inputs.column_names if name not in predictions.column_names and name != serve.SPLIT_KEY]
    return pa.Table.from_arrays(predictions.columns + [inputs[name] for name in kept],
                                names=predictions.column_names + kept)
