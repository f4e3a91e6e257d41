"""ML.REVIEW_QUEUE: the rows a classifier is least sure of, least sure first, to send for labelling.

``ML.REVIEW_QUEUE(MODEL m, data [, STRUCT(100 AS top_k)])`` (or ``0.6 AS max_confidence``, or both)
returns ``predicted_<label>``, ``confidence`` — the top class probability — and every input column,
so that ``INSERT INTO to_label SELECT * EXCLUDE (confidence) FROM ML.REVIEW_QUEUE(...)`` queues them.
Rows of equal confidence keep their input order. The input is streamed: with ``top_k`` at most
``top_k`` rows (plus one batch) are held at any time; ``max_confidence`` alone keeps every row under it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError
from ..model.kinds import CLASSIFICATION
from .base import Call

TOP_K = 100
POSITION = "__sqlml_position"


def review_queue(call: Call) -> pa.Table:
    """The ML.REVIEW_QUEUE handler."""
    model = call.require_model()
    if model.kind.task != CLASSIFICATION:
        raise DataError(f"ML.REVIEW_QUEUE needs a classification model (its confidence is the top class "
                        f"probability); '{model.info.name}' is a {model.kind.name}.")
    data = call.require_input()
    cap = call.param("max_confidence")
    top_k = call.param("top_k", TOP_K if cap is None else None)
    kept, seen = None, 0
    for batch in data.batches():
        candidates = _candidates(call, pa.Table.from_batches([batch]), seen)
        seen += batch.num_rows
        if cap is not None:
            candidates = candidates.filter(pc.less_equal(candidates["confidence"], cap))
        kept = candidates if kept is None else pa.concat_tables([kept, candidates])
        kept = _least_sure(kept, top_k)
    if kept is None:
        kept = _candidates(call, data.schema().empty_table(), 0)
    return _least_sure(kept, top_k).drop_columns([POSITION])


def _candidates(call: Call, rows: pa.Table, offset: int) -> pa.Table:
    """The predicted label, the confidence and the input columns of one batch, with each row's position."""
    out = call.model.predict(rows, call.param("threshold"))
    k = len(call.model.classes)
    probs = pc.struct_field(pc.list_flatten(out.column(1)), "prob").to_numpy().reshape(-1, k)
    confidence = probs.max(axis=1) if len(probs) else np.zeros(0)
    front = {out.column_names[0]: out.column(0), "confidence": pa.array(confidence, pa.float64()),
             POSITION: pa.array(np.arange(offset, offset + rows.num_rows), pa.int64())}
    rest = [name for name in rows.column_names if name not in front]
    return pa.Table.from_arrays(list(front.values()) + [rows[name] for name in rest], names=list(front) + rest)


def _least_sure(rows: pa.Table, top_k: int | None) -> pa.Table:
    """``rows`` by confidence, then position; the first ``top_k`` of them."""
    order = np.lexsort((rows[POSITION].to_numpy(), rows["confidence"].to_numpy()))
    return rows.take(pa.array(order[:top_k] if top_k is not None else order))
