"""Training and evaluation rows of CREATE MODEL, with BigQuery's ``data_split_method`` semantics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import sample as sampling
from .labels import query_column

AUTO_SPLIT_NO_SPLIT_BELOW = 500
AUTO_SPLIT_FRACTION_UP_TO = 50_000
AUTO_SPLIT_MAX_EVAL_ROWS = 10_000


@dataclass
class Split:
    train: np.ndarray  # row indices, ascending
    eval: np.ndarray | None  # None: evaluate on the training rows, like BigQuery without a split


def split_rows(table: pa.Table, options: dict, seed: int | None) -> Split:
    """Training and evaluation rows with BigQuery's data_split_method semantics; a random split is drawn
    with ``seed``, else :data:`sqlml.train.sample.DATA_SEED` (the same rows give the same split)."""
    n = table.num_rows
    method = options.get("data_split_method", "AUTO_SPLIT")
    fraction = options.get("data_split_eval_fraction")
    everything = np.arange(n)
    if method == "NO_SPLIT" or (method == "AUTO_SPLIT" and n < AUTO_SPLIT_NO_SPLIT_BELOW):
        return Split(everything, None)
    if method == "CUSTOM":
        column = options["data_split_col"]
        flags = pc.fill_null(pc.cast(query_column(table, column, "data_split_col"), pa.bool_()), False).to_numpy(zero_copy_only=False)
        return Split(np.flatnonzero(~flags), np.flatnonzero(flags))
    if fraction is None:
        fraction = 0.2 if method != "AUTO_SPLIT" or n <= AUTO_SPLIT_FRACTION_UP_TO else AUTO_SPLIT_MAX_EVAL_ROWS / n
    n_eval = max(1, int(round(n * fraction)))
    if method == "SEQ":
        order = np.asarray(pc.sort_indices(query_column(table, options["data_split_col"], "data_split_col")))
        return Split(np.sort(order[: n - n_eval]), np.sort(order[n - n_eval:]))
    held_out = np.zeros(n, dtype=bool)  # drawing only the evaluation rows: no shuffle or sort of all n
    rng = np.random.default_rng(sampling.DATA_SEED if seed is None else seed)
    held_out[rng.choice(n, n_eval, replace=False, shuffle=False)] = True
    return Split(np.flatnonzero(~held_out), np.flatnonzero(held_out))


def rows_at(table: pa.Table, ascending: np.ndarray) -> pa.Table:
    """The rows at ``ascending`` indices, taken as a boolean filter: it copies contiguous runs, about
    twice as fast as a gather when most rows are kept (a training split)."""
    keep = np.zeros(table.num_rows, dtype=bool)
    keep[ascending] = True
    return table.filter(pa.array(keep))
