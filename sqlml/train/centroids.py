"""k-means' kmeans_init_method = 'CUSTOM': the rows whose kmeans_init_col is TRUE are the initial centroids
(reference page bigqueryml-syntax-create-kmeans), preprocessed like every training row."""

from __future__ import annotations

import typing as t

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError
from ..model.preprocess import Preprocessor
from .split import rows_at


def marked_rows(table: pa.Table, train: np.ndarray, options: dict) -> tuple[str, pa.Table] | None:
    """The marking column and the training rows (indices ``train`` of ``table``) it marks as initial
    centroids, when the options ask for CUSTOM ones; else None."""
    if options.get("kmeans_init_method") != "CUSTOM":
        return None
    name = options["kmeans_init_col"]
    column = rows_at(table.select([name]), train)[name]
    if not pa.types.is_boolean(column.type):
        raise DataError(f"kmeans_init_col '{name}' must be a BOOL column (TRUE marks an initial centroid); it is "
                        f"{column.type}.")
    marked = np.flatnonzero(pc.fill_null(column, False).to_numpy(zero_copy_only=False))
    return name, table.take(train[marked])


def use_custom(estimator: t.Any, preprocessor: Preprocessor, marked: tuple[str, pa.Table] | None) -> None:
    """Start ``estimator`` (a KMeans) at the rows of :func:`marked_rows`, when there are any; one run
    (n_init = 1), as the starting point is given."""
    if marked is None:
        return
    name, rows = marked
    clusters = estimator.get_params()["n_clusters"]
    if rows.num_rows != clusters:
        raise DataError(f"kmeans_init_col '{name}' is TRUE on {rows.num_rows:,} training row(s); it must be TRUE "
                        f"on exactly num_clusters = {clusters} rows, the initial centroids (with a data split, the "
                        "marked rows must be training rows: use data_split_method = 'NO_SPLIT').")
    estimator.set_params(init=preprocessor.transform(rows, "C").astype(np.float64), n_init=1)
