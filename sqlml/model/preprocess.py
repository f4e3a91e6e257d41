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

from ..errors import DataError

if t.TYPE_CHECKING:
    import scipy.sparse as sp

MAX_CATEGORIES = 254  # HistGradientBoosting's native categorical limit, used for every model type
ROW_TILE = 16_384  # rows written at a time by Preprocessor.transform (a tile of 50 float64 columns is 6 MB)
SPARSE_DENSITY = 0.3  # at most this share of nonzeros per row, a CSR matrix pays (ColumnTransformer's threshold)


#: What a feature of each kind must be, in the words of an error message.
EXPECTED = {"numeric": "a number", "categorical": "a string or a boolean"}


def scalar_kind(dtype: pa.DataType) -> str | None:
    """'numeric', 'categorical', 'null' (a column of only NULLs fits either) or None (unusable)."""
    if pa.types.is_dictionary(dtype):  # DuckDB's ENUM, pandas' category
        dtype = dtype.value_type
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "numeric"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype) \
            or pa.types.is_boolean(dtype):
        return "categorical"
    return "null" if pa.types.is_null(dtype) else None


def column_kind(name: str, dtype: pa.DataType) -> str:
    """'numeric' or 'categorical', or a DataError naming the unusable column."""
    kind = scalar_kind(dtype)
    if kind in ("numeric", "categorical"):
        return kind
    raise DataError(
        f"Column '{name}' has type {dtype}, which sqlml cannot use as a feature. "
        "Convert it in the query (e.g. EXTRACT(hour FROM ts) AS hour) or leave it out."
    )


def to_float64(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """A numeric column as float64. Integers above 2**53 (UBIGINT, large BIGINT) round to the nearest
    double instead of failing Arrow's safe cast: a feature or a regression target loses only digits
    a double cannot hold. Class labels are never converted (:func:`sqlml.train.labels.prepare_label`)."""
    return pc.cast(column, pa.float64(), safe=False)


def check_unique_names(names: t.Sequence[str], what: str) -> None:
    """Refuse a table that has two columns of the same name: which one a model reads would be a guess."""
    seen, repeated = set(), []
    for name in names:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    if repeated:
        listed = ", ".join(f"'{n}'" for n in repeated)
        raise DataError(f"The {what} has more than one column named {listed}; give each column its own name "
                        f"(e.g. SELECT a.{repeated[0]}, b.{repeated[0]} AS {repeated[0]}_2 ...).")


def as_float(table: pa.Table, name: str) -> pa.ChunkedArray:
    """A numeric column as float64, refusing NaN and infinity with the column's name."""
    column = to_float64(table[name])
    if pc.any(pc.is_nan(column)).as_py() or pc.any(pc.is_inf(column)).as_py():
        raise DataError(f"Column '{name}' contains NaN or infinite values; filter them out or replace them with NULL.")
    return column


def as_categories(column: pa.ChunkedArray) -> pa.DictionaryArray:
    """A categorical column as one dictionary array whose values are strings (booleans become
    'true'/'false', like BigQuery's one-hot names). Strings are hashed only when the column is not
    dictionary-encoded yet: see :func:`encode_categories`."""
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    encoded = column.unify_dictionaries().combine_chunks() if column.num_chunks else pa.array([], column.type)
    if encoded.dictionary.type != pa.string():
        encoded = pa.DictionaryArray.from_arrays(encoded.indices, pc.cast(encoded.dictionary, pa.string()))
    return encoded


def encode_categories(table: pa.Table, columns: t.Iterable[str]) -> pa.Table:
    """``table`` with its categorical ``columns`` dictionary-encoded once, so that counting, taking rows,
    encoding and profiling them read small integer indices instead of hashing strings again each time."""
    for name in columns:
        if column_kind(name, table.schema.field(name).type) == "categorical" \
                and not pa.types.is_dictionary(table.schema.field(name).type):
            table = table.set_column(table.schema.get_field_index(name), name, as_categories(table[name]))
    return table


def category_indices(encoded: pa.DictionaryArray) -> np.ndarray:
    """Each row's index in ``encoded``'s dictionary; NULL rows get one more, ``len(dictionary)``."""
    return encoded.indices.fill_null(len(encoded.dictionary)).to_numpy(zero_copy_only=False)


def category_counts(column: pa.ChunkedArray) -> list[tuple[str | None, int]]:
    """Each category present in ``column`` (None for NULL) with its row count."""
    encoded = as_categories(column)
    values = encoded.dictionary.to_pylist() + [None]
    counts = np.bincount(category_indices(encoded), minlength=len(values))
    return [(value, int(n)) for value, n in zip(values, counts) if n]


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
    def feature_sources(self) -> list[str]:
        """For each encoded feature, the input column it came from (to sum one-hot parts back)."""
        return [c["name"] for c in self.columns for _ in range(self.width(c))]

    @property
    def categorical_mask(self) -> list[bool]:
        """Which matrix columns are ordinal category codes (for HistGradientBoosting)."""
        return [c["kind"] == "categorical" and self.encoding == "ordinal" for c in self.columns]

    def width(self, column: dict) -> int:
        """How many matrix columns an input column becomes."""
        return len(column["categories"]) if column["kind"] == "categorical" and self.encoding == "onehot" else 1

    def transform(self, table: pa.Table, order: str = "F") -> np.ndarray:
        """The float64 feature matrix for ``table`` in the layout the estimator reads without copying
        (``"F"``: column-major, for trees; ``"C"``: row-major, for solvers that copy to it); missing
        columns are reported together. Each input column is encoded once, then written tile by tile
        of ``ROW_TILE`` rows so the writes stay in cache whatever the layout."""
        self.check_columns(table)
        encoded = self._encoded(table)
        X = np.empty((table.num_rows, sum(self.width(c) for c in self.columns)), order=order)
        for start in range(0, table.num_rows, ROW_TILE):
            rows = slice(start, start + ROW_TILE)
            position = 0
            for c, values in zip(self.columns, encoded):
                self._write(c, values[rows], X[rows, position:position + self.width(c)])
                position += self.width(c)
        return X

    def sparse_pays(self) -> bool:
        """Whether the one-hot matrix is sparse enough for CSR: each input column sets at most one entry
        of its block, so a row has at most ``len(columns)`` nonzeros."""
        width = sum(self.width(c) for c in self.columns)
        return self.encoding == "onehot" and len(self.columns) <= SPARSE_DENSITY * width

    def transform_sparse(self, table: pa.Table) -> sp.csr_matrix:
        """The one-hot feature matrix of :meth:`transform` as CSR, one stored entry per input column and
        row (an unseen category stores an explicit zero, so every row has the same number of entries).
        Written tile by tile of ``ROW_TILE`` rows, like :meth:`transform`."""
        self.check_columns(table)
        rows, per_row = table.num_rows, len(self.columns)
        index_type = np.int32 if rows * per_row < 2**31 else np.int64
        data, indices = np.empty((rows, per_row)), np.empty((rows, per_row), dtype=index_type)
        offsets = np.cumsum([0] + [self.width(c) for c in self.columns])
        encoded = self._encoded(table)
        for start in range(0, rows, ROW_TILE):
            tile = slice(start, start + ROW_TILE)
            for j, (c, values) in enumerate(zip(self.columns, encoded)):
                if c["kind"] == "numeric":
                    data[tile, j], indices[tile, j] = values[tile], offsets[j]
                else:
                    codes = values[tile]
                    data[tile, j], indices[tile, j] = codes >= 0, offsets[j] + np.maximum(codes, 0)
        indptr = np.arange(0, rows * per_row + 1, per_row, dtype=index_type)
        import scipy.sparse as sp  # here: connecting and serving plain SQL never need scipy
        return sp.csr_matrix((data.ravel(), indices.ravel(), indptr), shape=(rows, offsets[-1]))

    def _encoded(self, table: pa.Table) -> list[np.ndarray]:
        """Every input column encoded once: numbers imputed (and standardized), categories as codes."""
        return [self.numeric(c, table) if c["kind"] == "numeric" else self.codes(c, table) for c in self.columns]

    def check_columns(self, table: pa.Table) -> None:
        """Every input column the model was trained on must be there, once, with a type of its kind:
        name all that are missing, else the first of the wrong type (expected and found)."""
        check_unique_names(table.column_names, "input")
        missing = [name for name in self.input_columns if name not in table.column_names]
        if missing:
            raise DataError(f"The input is missing feature column(s) the model was trained on: {', '.join(missing)}.")
        for c in self.columns:
            found = table.schema.field(c["name"]).type
            if scalar_kind(found) not in (c["kind"], "null"):
                cast = "CAST({0} AS DOUBLE)" if c["kind"] == "numeric" else "CAST({0} AS VARCHAR)"
                raise DataError(f"Column '{c['name']}' must be {EXPECTED[c['kind']]}, as in training; the input has "
                                f"{found}. Convert it in the query ({cast.format(c['name'])}) or fix the column.")

    def codes(self, c: dict, table: pa.Table) -> np.ndarray:
        """One categorical input column as category indices, −1 where unseen at training."""
        return _category_codes(as_categories(table[c["name"]]), c["categories"])

    def numeric(self, c: dict, table: pa.Table) -> np.ndarray:
        """One numeric input column, imputed and (when the model needs it) standardized."""
        values = to_float64(table[c["name"]])
        out = (pc.fill_null(values, c["mean"]) if values.null_count else values).to_numpy()  # may be read-only
        if not np.isfinite(out).all():  # NULLs are filled by now: only NaN and infinity are left
            raise DataError(f"Column '{c['name']}' contains NaN or infinite values; filter them out or replace them with NULL.")
        if self.standardize:
            out = np.subtract(out, c["mean"])
            out /= c["std"]
        return out

    def _write(self, c: dict, values: np.ndarray, out: np.ndarray) -> None:
        """One encoded input column into its block of the matrix."""
        if c["kind"] == "numeric":
            out[:, 0] = values
        elif self.encoding == "ordinal":
            out[:, 0] = np.where(values >= 0, values, np.nan)  # unseen: "missing" for the trees
        else:
            np.equal(values[:, None], np.arange(out.shape[1]), out=out, casting="unsafe")

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
    ranked = sorted(category_counts(table[name]), key=lambda vc: (-vc[1], vc[0] is None, vc[0] or ""))
    kept = [value for value, _ in ranked[:MAX_CATEGORIES]]
    categories = sorted(v for v in kept if v is not None) + ([None] if None in kept else [])
    return {"name": name, "kind": "categorical", "categories": categories, "dropped": max(0, len(ranked) - MAX_CATEGORIES)}


def _category_codes(encoded: pa.DictionaryArray, categories: list[t.Any]) -> np.ndarray:
    """Index of each value in ``categories`` (NULL matches the NULL category), −1 when unseen."""
    lookup = {v: i for i, v in enumerate(categories)}
    dictionary_codes = np.array([lookup.get(v, -1) for v in encoded.dictionary.to_pylist()] + [lookup.get(None, -1)])
    return dictionary_codes[category_indices(encoded)]
