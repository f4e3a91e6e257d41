"""Automatic feature preprocessing with BigQuery ML's semantics, fitted once and replayed exactly.

* numeric: NULL → training mean; standardized ((x − mean) / stddev) for models that need it.
* strings and booleans: one-hot with a NULL category (linear, DNN, k-means), or one ordinal code
  per column (trees). A category unseen at training contributes nothing (all-zero one-hot; "missing"
  for trees). At most ``MAX_CATEGORIES`` most frequent categories per column are kept.

The fitted state is plain JSON (means, deviations, vocabularies) so it can be stored, authenticated
and later compiled to SQL.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import DataError

MAX_CATEGORIES = 254  # HistGradientBoosting's native categorical limit, used for every model type


def column_kind(name: str, dtype: pa.DataType) -> str:
    """'numeric' or 'categorical', or a DataError naming the unusable column."""
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "numeric"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype) \
            or pa.types.is_boolean(dtype):
        return "categorical"
    raise DataError(
        f"Column '{name}' has type {dtype}, which sqlml cannot use as a feature. "
        "Convert it in the query (e.g. EXTRACT(hour FROM ts) AS hour) or leave it out."
    )


def as_float(table: pa.Table, name: str) -> pa.ChunkedArray:
    """A numeric column as float64, refusing NaN and infinity with the column's name."""
    column = pc.cast(table[name], pa.float64())
    if pc.any(pc.is_nan(column)).as_py() or pc.any(pc.is_inf(column)).as_py():
        raise DataError(f"Column '{name}' contains NaN or infinite values; filter them out or replace them with NULL.")
    return column


def as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Categories as strings: booleans become 'true'/'false', like BigQuery's one-hot names."""
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    return pc.cast(column, pa.string())


@dataclass
class Preprocessor:
    """Fitted preprocessing of the input columns into the estimator's feature matrix."""

    encoding: str
    standardize: bool
    columns: list[dict] = field(default_factory=list)

    @classmethod
    def fit(cls, table: pa.Table, features: list[str], encoding: str, standardize: bool) -> "Preprocessor":
        prep = cls(encoding, standardize)
        for name in features:
            if column_kind(name, table.schema.field(name).type) == "numeric":
                prep.columns.append(_fit_numeric(table, name))
            else:
                prep.columns.append(_fit_categorical(table, name))
        return prep

    @property
    def input_columns(self) -> list[str]:
        return [c["name"] for c in self.columns]

    @property
    def feature_names(self) -> list[str]:
        """Names of the encoded features, in matrix order."""
        names = []
        for c in self.columns:
            if c["kind"] == "categorical" and self.encoding == "onehot":
                names += [f"{c['name']}_{'NULL' if v is None else v}" for v in c["categories"]]
            else:
                names.append(c["name"])
        return names

    @property
    def feature_sources(self) -> list[str]:
        """For each encoded feature, the input column it came from (to sum one-hot parts back)."""
        sources = []
        for c in self.columns:
            width = len(c["categories"]) if c["kind"] == "categorical" and self.encoding == "onehot" else 1
            sources += [c["name"]] * width
        return sources

    @property
    def categorical_mask(self) -> list[bool]:
        """Which matrix columns are ordinal category codes (for HistGradientBoosting)."""
        return [c["kind"] == "categorical" and self.encoding == "ordinal" for c in self.columns]

    def transform(self, table: pa.Table) -> np.ndarray:
        """The feature matrix (float64) for ``table``; missing columns are reported together."""
        missing = [name for name in self.input_columns if name not in table.column_names]
        if missing:
            raise DataError(f"The input is missing feature column(s) the model was trained on: {', '.join(missing)}.")
        blocks = [self._transform_column(c, table) for c in self.columns]
        if not blocks:
            return np.empty((table.num_rows, 0))
        return np.column_stack(blocks)

    def _transform_column(self, c: dict, table: pa.Table) -> np.ndarray:
        if c["kind"] == "numeric":
            values = pc.fill_null(as_float(table, c["name"]), c["mean"]).to_numpy()
            return (values - c["mean"]) / c["std"] if self.standardize else values
        codes = _category_codes(as_text(table[c["name"]]), c["categories"])
        if self.encoding == "ordinal":
            return np.where(codes >= 0, codes, np.nan)
        onehot = np.zeros((len(codes), len(c["categories"])))
        seen = codes >= 0
        onehot[np.flatnonzero(seen), codes[seen]] = 1.0
        return onehot

    def to_dict(self) -> dict:
        return {"encoding": self.encoding, "standardize": self.standardize, "columns": self.columns}

    @classmethod
    def from_dict(cls, state: dict) -> "Preprocessor":
        return cls(state["encoding"], state["standardize"], state["columns"])


def _fit_numeric(table: pa.Table, name: str) -> dict:
    values = as_float(table, name)
    mean = pc.mean(values).as_py() or 0.0
    std = pc.stddev(pc.fill_null(values, mean), ddof=0).as_py()  # after imputation, as a pipeline would
    return {"name": name, "kind": "numeric", "mean": mean, "std": std if std else 1.0}


def _fit_categorical(table: pa.Table, name: str) -> dict:
    counts = pc.value_counts(as_text(table[name])).to_pylist()
    ranked = sorted(counts, key=lambda vc: (-vc["counts"], vc["values"] is None, vc["values"] or ""))
    kept = [vc["values"] for vc in ranked[:MAX_CATEGORIES]]
    categories = sorted(v for v in kept if v is not None) + ([None] if None in kept else [])
    return {"name": name, "kind": "categorical", "categories": categories, "dropped": max(0, len(ranked) - MAX_CATEGORIES)}


def _category_codes(values: pa.ChunkedArray, categories: list[t.Any]) -> np.ndarray:
    """Index of each value in ``categories`` (NULL matches the NULL category), −1 when unseen."""
    lookup = {v: i for i, v in enumerate(categories)}
    null_code = lookup.get(None, -1)
    encoded = pc.dictionary_encode(values).combine_chunks()
    dictionary_codes = np.array([lookup.get(v, -1) for v in encoded.dictionary.to_pylist()] + [null_code])
    indices = encoded.indices.fill_null(len(encoded.dictionary)).to_numpy(zero_copy_only=False)
    return dictionary_codes[indices]
