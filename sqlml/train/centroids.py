"""k-means' kmeans_init_method = 'CUSTOM': the rows whose kmeans_init_col is TRUE are the initial centroids
(reference page bigqueryml-syntax-create-kmeans), preprocessed like every training row."""

from __future__ import annotations

import typing as t

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError
from ..model.preprocess import Preprocessor


def use_custom(estimator: t.Any, preprocessor: Preprocessor, rows: pa.Table, options: dict) -> None:
    """Start ``estimator`` (a KMeans) at the marked training rows when the options ask for it; one run
    (n_init = 1), as the starting point is given."""
    if options.get("kmeans_init_method") != "CUSTOM":
        return
    name = options["kmeans_init_col"]
    column = rows[name]
    if not pa.types.is_boolean(column.type):
        raise DataError(f"kmeans_init_col '{name}' must be a BOOL column (TRUE marks an initial centroid); it is "
                        f"{column.type}.")
    marked = pc.fill_null(column, False).to_numpy(zero_copy_only=False)
    clusters = estimator.get_params()["n_clusters"]
    if int(marked.sum()) != clusters:
        raise DataError(f"kmeans_init_col '{name}' is TRUE on {int(marked.sum()):,} training row(s); it must be TRUE "
                        f"on exactly num_clusters = {clusters} rows, the initial centroids (with a data split, the "
                        "marked rows must be training rows: use data_split_method = 'NO_SPLIT').")
    estimator.set_params(init=preprocessor.transform(rows.filter(pa.array(marked)), "C").astype(np.float64), n_init=1)
