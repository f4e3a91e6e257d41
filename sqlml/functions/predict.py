"""ML.PREDICT and ML.BASELINE: prediction columns first, then every input column (BigQuery's order)."""

from __future__ import annotations

import pyarrow as pa

from ..errors import SqlmlError
from ..model.baseline import Baseline
from ..model.kinds import CLUSTERING
from .base import Call


def baseline_predictions(call: "Call") -> pa.Table:
    """ML.BASELINE: the baseline's own predictions, named like ML.PREDICT's, then the input columns."""
    model = call.require_model()
    if model.kind.task == CLUSTERING:
        raise SqlmlError(f"ML.BASELINE needs a classifier or regressor; '{model.info.name}' is a {model.kind.name}.")
    baseline = Baseline.of(model)
    data = call.input_table()
    predicted, probs = baseline.predict(data.num_rows)
    if probs is not None:
        front = model.classification_output(probs, predicted)
    else:
        front = pa.Table.from_arrays([pa.array(predicted)], schema=model.output_schema())
    rest = [n for n in data.column_names if n not in front.column_names]
    return pa.Table.from_arrays(front.columns + data.select(rest).columns, names=front.column_names + rest)


def predict(call: Call) -> pa.Table:
    """ML.PREDICT: prediction columns first, then every input column (BigQuery's order).
    The input is streamed in record batches, each scored in one vectorized call."""
    model = call.require_model()
    threshold = call.param("threshold")
    data = call.require_input()
    pieces = [_with_predictions(model.predict(batch, threshold), pa.Table.from_batches([batch]))
              for batch in data.batches()]
    if not pieces:
        empty = pa.Table.from_batches([], schema=model.output_schema())
        return _with_predictions(empty, data.schema().empty_table())
    return pa.concat_tables(pieces)


def _with_predictions(predictions: pa.Table, inputs: pa.Table) -> pa.Table:
    """Prediction columns, then the input columns they do not replace."""
    kept = [name for name in inputs.column_names if name not in predictions.column_names]
    return pa.Table.from_arrays(predictions.columns + [inputs[name] for name in kept],
                                names=predictions.column_names + kept)
