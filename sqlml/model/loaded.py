"""Vectorized scoring: a stored model applied to whole Arrow batches, never row by row.

One function, :meth:`LoadedModel.predict`, turns a batch of input rows into prediction columns.
Two callers share it: eager scoring (the executor streams the input query's record batches through
it) and lazy scoring (an Arrow UDF, used where SQL must stay SQL, as in ``CREATE VIEW``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
import typing as t
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from . import envelope, reduction
from .kinds import ARIMA, CLASSIFICATION, CLUSTERING, MATRIX_FACTORIZATION, MODEL_KINDS, REDUCTION, ModelKind
from .preprocess import Preprocessor
from .version import ModelVersion

SMALL_BATCH_ROWS = 20_000  # below this, one thread per call: OpenMP start-up swamps the work


@functools.cache
def threadpools() -> t.Any:
    """Created once, on first use: discovering the BLAS/OpenMP libraries costs ~20 ms (and imports
    threadpoolctl), limiting them then ~50 µs."""
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController()


def thread_limit(rows: int):
    """Cap native thread pools for small batches (the 2,048-row UDF calls); big batches use them all."""
    return threadpools().limit(limits=1) if rows < SMALL_BATCH_ROWS else contextlib.nullcontext()


LABEL_TYPES = {"int": pa.int64(), "float": pa.float64(), "string": pa.string(), "bool": pa.bool_()}


def label_type_name(dtype: pa.DataType) -> str:
    """How a label's Arrow type is stored in the model header."""
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_integer(dtype):
        return "int"
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "float"
    return "string"


def output_schema(info: ModelVersion) -> pa.Schema:
    """The columns ML.PREDICT adds for a model version, in BigQuery's names."""
    kind = MODEL_KINDS[info.model_type]
    task = kind.task
    if task == REDUCTION:
        return pa.schema([(name, pa.float64()) for name in reduction.column_names(kind.family, info.options, kind.defaults)])
    if task == CLUSTERING:
        distance = pa.struct([("centroid_id", pa.int64()), ("distance", pa.float64())])
        return pa.schema([("centroid_id", pa.int64()), ("nearest_centroids_distance", pa.list_(distance))])
    predicted = f"predicted_{info.label}"
    if task == CLASSIFICATION:
        label_type = LABEL_TYPES[info.label_type]
        prob = pa.struct([("label", label_type), ("prob", pa.float64())])
        return pa.schema([(predicted, label_type), (f"{predicted}_probs", pa.list_(prob))])
    return pa.schema([(predicted, pa.float64())])


@dataclass
class LoadedModel:
    """A deserialized model version, ready to score Arrow data."""

    info: ModelVersion
    kind: ModelKind
    estimator: t.Any
    preprocessor: Preprocessor
    classes: list | None
    label_type: pa.DataType
    target_scale: tuple[float, float] = (0.0, 1.0)  # (mean, std) a regressor's label was scaled by
    background: dict | None = None  # training reference for explanations (sqlml.explain.background)
    transform: dict | None = None  # the fitted TRANSFORM clause (sqlml.transform), replayed on every input
    training_stats: dict | None = None  # per input column statistics of the training split (sqlml.model.drift)
    calibrator: t.Any = None  # isotonic calibration of a binary classifier's scores, for CBPE (sqlml.model.cbpe)

    def __post_init__(self) -> None:
        # A forest fitted with n_jobs=-1 would also predict on threads that add up the trees' outputs in
        # whichever order they finish: the same rows would score differently in the last bits from call
        # to call. Scoring adds them in tree order (on a 2-core VM, ~5 % slower on 500,000 rows).
        if getattr(self.estimator, "n_jobs", None) == -1:
            self.estimator.n_jobs = None

    @classmethod
    def from_blob(cls, info: ModelVersion, blob: bytes) -> "LoadedModel":
        return cls.from_parts(info, *envelope.loads_parts(blob))

    @classmethod
    def from_parts(cls, info: ModelVersion, estimator: t.Any, header: dict, parts: dict) -> "LoadedModel":
        """The model of a blob's deserialized ``estimator``, JSON ``header`` and ``parts``. A blob whose
        model is stored in its library's own format (XGBoost's, header ``raw``) has no skops estimator:
        it is read from its raw part; older blobs hold a scikit-learn estimator (HistGradientBoosting,
        RandomForest) and are served as they are."""
        if estimator is None and header.get("raw"):
            from .boosted import Trees  # imports xgboost, which takes seconds
            estimator = Trees.from_raw_parts(parts)
        kind = MODEL_KINDS[header["model_type"]]
        if kind.family == MATRIX_FACTORIZATION:
            from .factorization import Factorization  # scipy: not loaded by connecting
            estimator = Factorization.from_state(estimator)
        if kind.family == ARIMA:  # its arrays and JSON, read once into the model of its series
            from .arima import ArimaModel
            estimator = ArimaModel.of(estimator)
        return cls(
            info=info,
            kind=kind,
            estimator=estimator,
            preprocessor=Preprocessor.from_dict(header["preprocess"]),
            classes=header.get("classes"),
            label_type=LABEL_TYPES[header["label_type"]],
            target_scale=tuple(header.get("target_scale", (0.0, 1.0))),
            background=header.get("background"),
            transform=header.get("transform"),
            training_stats=header.get("training_stats"),
            calibrator=parts.get("calibrator"),
        )

    @property
    def label(self) -> str:
        return self.info.label

    @property
    def threshold(self) -> float:
        """The decision threshold of a binary classifier: stored option, else 0.5."""
        return self.info.options.get("threshold", 0.5)

    def output_schema(self) -> pa.Schema:
        return output_schema(self.info)

    def features(self, data: pa.Table | pa.RecordBatch) -> np.ndarray:
        return self.preprocessor.transform(pa.table(data) if isinstance(data, pa.RecordBatch) else data,
                                           self.kind.matrix_order)

    def linear_decision(self, data: pa.Table) -> np.ndarray:
        """``X @ coef.T + intercept`` computed column by column from the raw input: a one-hot block
        times its weights is a lookup of the category's weight (unseen categories add nothing).
        Equal to scikit-learn's decision_function up to float summation order."""
        weights = np.atleast_2d(self.estimator.coef_)
        decision = np.tile(np.atleast_1d(self.estimator.intercept_).astype(np.float64), (data.num_rows, 1))
        position = 0
        for column in self.preprocessor.columns:
            width = self.preprocessor.width(column)
            if column["kind"] == "numeric":
                decision += np.outer(self.preprocessor.numeric(column, data), weights[:, position])
            else:
                lookup = np.vstack([weights[:, position:position + width].T, np.zeros(weights.shape[0])])
                decision += lookup[self.preprocessor.codes(column, data)]  # code −1 hits the zero row
            position += width
        return decision

    def linear_probabilities(self, data: pa.Table) -> np.ndarray:
        """LogisticRegression.predict_proba from :meth:`linear_decision`."""
        from scipy import special
        decision = self.linear_decision(data)
        if decision.shape[1] == 1:
            positive = special.expit(decision[:, 0])
            return np.column_stack([1.0 - positive, positive])
        return special.softmax(decision, axis=1)

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        with thread_limit(len(X)):
            return self.estimator.predict_proba(X)

    def predict(self, data: pa.Table | pa.RecordBatch, threshold: float | None = None) -> pa.Table:
        """Prediction columns for every row of ``data`` (same order, same length)."""
        data = pa.table(data) if isinstance(data, pa.RecordBatch) else data
        self.preprocessor.check_columns(data)
        if data.num_rows == 0:  # scikit-learn refuses inputs of zero rows
            return self.output_schema().empty_table()
        if self.kind.task == CLUSTERING:
            return self._clusters(self.features(data))
        if self.kind.task == REDUCTION:
            X = self.features(data)
            with thread_limit(len(X)):
                reduced = reduction.reduce(self.kind.family, self.estimator, X)
            return pa.Table.from_arrays([pa.array(column) for column in reduced.T], schema=self.output_schema())
        if self.kind.task == CLASSIFICATION:
            probs = self.class_probabilities(data)
            return self.classification_output(probs, self.decide(probs, threshold))
        return pa.Table.from_arrays([pa.array(self.regression_values(data))], schema=self.output_schema())

    def class_probabilities(self, data: pa.Table) -> np.ndarray:
        """Class probabilities of every row: the one path ML.PREDICT and every metric share, so a
        score exactly at a threshold is decided the same way everywhere."""
        return self.linear_probabilities(data) if self.kind.scores_linearly else self.probabilities(self.features(data))

    def regression_values(self, data: pa.Table) -> np.ndarray:
        """A regressor's predictions of every row, in the label's units (shared like the above)."""
        if not self.kind.scores_linearly:
            return self.regress(self.features(data))
        mean, std = self.target_scale
        return self.linear_decision(data)[:, 0] * std + mean

    def regress(self, X: np.ndarray) -> np.ndarray:
        """A regressor's predictions in the label's own units."""
        with thread_limit(len(X)):
            predicted = np.asarray(self.estimator.predict(X), dtype=np.float64)
        mean, std = self.target_scale
        return predicted * std + mean

    def decide(self, probs: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """Class index per row: binary uses the threshold on the positive class, else the argmax."""
        if probs.shape[1] == 2:
            return (probs[:, 1] >= (self.threshold if threshold is None else threshold)).astype(np.int64)
        return probs.argmax(axis=1)

    def classification_output(self, probs: np.ndarray, codes: np.ndarray) -> pa.Table:
        classes = pa.array(self.classes, type=self.label_type)
        rows, k = probs.shape
        prob_structs = pa.StructArray.from_arrays(
            [classes.take(pa.array(np.tile(np.arange(k), rows))), pa.array(probs.ravel())], names=["label", "prob"]
        )
        prob_lists = pa.ListArray.from_arrays(pa.array(np.arange(0, rows * k + 1, k, dtype=np.int32)), prob_structs)
        return pa.Table.from_arrays([classes.take(pa.array(codes)), prob_lists], schema=self.output_schema())

    def _clusters(self, X: np.ndarray) -> pa.Table:
        with thread_limit(len(X)):
            distances = self.estimator.transform(X)
        rows, k = distances.shape
        order = np.argsort(distances, axis=1)
        ids = order + 1  # BigQuery numbers centroids from 1
        nearest = pa.StructArray.from_arrays(
            [pa.array(ids.ravel()), pa.array(np.take_along_axis(distances, order, axis=1).ravel())],
            names=["centroid_id", "distance"],
        )
        lists = pa.ListArray.from_arrays(pa.array(np.arange(0, rows * k + 1, k, dtype=np.int32)), nearest)
        return pa.Table.from_arrays([pa.array(ids[:, 0]), lists], schema=self.output_schema())


class ModelCache:
    """Loaded models by fingerprint (immutable), shared by every connection and thread."""

    def __init__(self, size: int = 32):
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, info: ModelVersion, load_blob: t.Callable[[str], bytes]) -> LoadedModel:
        with self._lock:
            model = self._models.get(info.fingerprint)
            if model is not None:
                self._models.move_to_end(info.fingerprint)
                # The caller's registry row: ALTER MODEL may have changed the threshold since. A copy,
                # so callers holding other rows (a view's UDF, another thread) are not affected.
                return dataclasses.replace(model, info=info)
        blob = load_blob(info.fingerprint)
        try:
            model = LoadedModel.from_blob(info, blob)
        except envelope.ModelIntegrityError as e:  # say which model
            raise envelope.ModelIntegrityError(f"Model '{info.name}' version {info.version} cannot be loaded: {e}") from None
        with self._lock:
            self._models[info.fingerprint] = model
            while len(self._models) > self._size:
                self._models.popitem(last=False)
        return model


    def forget(self, fingerprints: t.Iterable[str]) -> None:
        """Drop versions that no longer exist (DROP MODEL), so views over them stop scoring."""
        with self._lock:
            for fingerprint in fingerprints:
                self._models.pop(fingerprint, None)


CACHE = ModelCache()
