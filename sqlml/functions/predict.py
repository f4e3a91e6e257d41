"""ML.PREDICT and ML.BASELINE: prediction columns first, then every input column (BigQuery's order)."""

from __future__ import annotations

import functools

import pyarrow as pa

from ..errors import DataError, SqlmlError
from ..model import serve
from ..model.kinds import CLUSTERING
from ..model.loaded import LoadedModel
from .base import Call, Output

# Each batch function takes only the models and parameters it needs (not the Call, which holds the
# engine's data): the engine may ship it to where the rows are (Spark's executors).


def baseline_predictions(call: "Call") -> Output:
    """ML.BASELINE: the baseline's own predictions, named like ML.PREDICT's, then the input columns."""
    model = call.require_model()
    if model.kind.task == CLUSTERING:
        raise SqlmlError(f"ML.BASELINE needs a classifier or regressor; '{model.info.name}' is a {model.kind.name}.")
    data = call.require_input()
    baseline = functools.partial(_baseline_batch, model, call.challenger is not None)
    return data.map(baseline, lambda: baseline(data.empty()))


def _baseline_batch(model: LoadedModel, ab: bool, rows: pa.Table) -> pa.Table:
    front = serve.baseline_output(model, rows.num_rows)
    if ab:  # a disabled model under A/B serving: ML.PREDICT's columns, as a view gives
        front = front.append_column("model_version", pa.array([model.info.version] * rows.num_rows, pa.int64()))
    return _with_predictions(front, rows)


def predict(call: Call) -> Output:
    """ML.PREDICT: prediction columns first, then every input column (BigQuery's order).
    The input is read in record batches, each scored in one vectorized call when it is read."""
    call.require_model()
    data = call.require_input()
    scored = functools.partial(_predict_batch, call.model, call.challenger, call.param("threshold"),
                               call.param("split_key"), call.param("challenger_fraction"))
    return data.map(scored, lambda: scored(data.empty()))


def _predict_batch(model: LoadedModel, challenger: LoadedModel | None, threshold: float | None,
                   split_key: str | None, fraction: float | None, rows: pa.Table) -> pa.Table:
    return _with_predictions(_scored(model, challenger, threshold, split_key, fraction, rows), rows)


def _scored(model: LoadedModel, challenger: LoadedModel | None, threshold: float | None, key: str | None,
            fraction: float | None, rows: pa.Table) -> pa.Table:
    """Prediction columns of one batch; with A/B serving, the challenger scores the rows whose
    ``split_key`` hashes into ``challenger_fraction`` (sqlml.model.serve), and ``model_version`` says which."""
    if challenger is None:
        return model.predict(rows, threshold)
    if serve.SPLIT_KEY not in rows.column_names:  # the executor adds the canonical key of split_key
        raise DataError(f"A/B serving needs split_key, a column of the input whose hash decides each row's arm; "
                        f"got {key!r}. Columns: {', '.join(rows.column_names)}.")
    arms = serve.challenger_rows(rows[serve.SPLIT_KEY], fraction)
    return serve.ab_output(model, challenger, rows, arms, model.info.version, challenger.info.version,
                           threshold, threshold)


def _with_predictions(predictions: pa.Table, inputs: pa.Table) -> pa.Table:
    """Prediction columns, then the input columns they do not replace (not the canonical split key)."""
    kept = [name for name in inputs.column_names if name not in predictions.column_names and name != serve.SPLIT_KEY]
    return pa.Table.from_arrays(predictions.columns + [inputs[name] for name in kept],
                                names=predictions.column_names + kept)
