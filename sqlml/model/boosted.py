"""XGBoost, BigQuery ML's engine for boosted trees and random forests, as sqlml's tree estimator.

BigQuery's options are XGBoost's parameters under other names (:data:`PARAMETERS`), so each is
honoured exactly: ``subsample``, the ``colsample_by*``, ``min_split_loss``, ``booster_type = 'DART'``,
``num_parallel_tree``, ``tree_method`` … A random forest is XGBoost's: one round of
``num_parallel_tree`` trees with ``learn_rate`` 1, rows and features subsampled.

``early_stop`` holds out a seeded 10 % of the training rows and stops after the first iteration whose
relative improvement of the held-out loss is below ``min_rel_progress``; the model keeps the trees up
to the iteration with the lowest held-out loss. ML.TRAINING_INFO's ``loss`` is the training loss per
iteration (log loss; mean squared error for regressors), ``eval_loss`` the held-out rows'.

Training data reaches XGBoost as a ``QuantileDMatrix`` built block by block through ``xgboost.DataIter``
(:meth:`Trees.fit_blocks`), so no dense copy of the whole training matrix is needed (``tree_method``
'EXACT' and 'APPROX' sketch raw values themselves: they get a ``DMatrix`` of all the rows). Category
columns are ordinal codes split on natively as categorical features (the exact method, which XGBoost
cannot use with them, splits the codes as numbers, as BigQuery's label encoding does); NaN (a category
unseen in training) is missing and follows each split's learned default branch.

The fitted booster is stored in XGBoost's own format (UBJSON, :meth:`Trees.raw`), never pickled, and
read back by :meth:`Trees.from_raw_parts` only after the envelope's signature verified. Importing xgboost
takes seconds (it loads pandas and scikit-learn): modules import this one only when a tree model is
fitted or loaded.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import typing as t

import numpy as np
import xgboost as xgb

#: BigQuery option → (XGBoost parameter, conversion of the option's value).
PARAMETERS: dict[str, tuple[str, t.Callable]] = {
    "max_tree_depth": ("max_depth", int),
    "learn_rate": ("eta", float),
    "l1_reg": ("alpha", float),
    "l2_reg": ("lambda", float),
    "min_split_loss": ("gamma", float),
    "min_tree_child_weight": ("min_child_weight", float),
    "subsample": ("subsample", float),
    "colsample_bytree": ("colsample_bytree", float),
    "colsample_bylevel": ("colsample_bylevel", float),
    "colsample_bynode": ("colsample_bynode", float),
    "num_parallel_tree": ("num_parallel_tree", int),
    "tree_method": ("tree_method", str.lower),
    "booster_type": ("booster", str.lower),
    "dart_normalize_type": ("normalize_type", str.lower),
    "dropout": ("rate_drop", float),
    "random_seed": ("seed", int),
}
VALIDATION_FRACTION = 0.1  # the training rows early_stop holds out
BLOCK_ROWS = 65_536  # rows handed to XGBoost at a time when fitting a matrix already in memory
MAX_BIN = 256  # XGBoost's default histogram bins per feature
RAW_PART, CONFIG_PART = "xgboost", "xgboost_config"  # the envelope's names of the booster's bytes


DART_ONLY = ("normalize_type", "rate_drop")  # XGBoost warns that they are unused by its other boosters


def parameters(options: dict) -> dict:
    """XGBoost's training parameters of the options given (with defaults filled in)."""
    params = {param: convert(options[name]) for name, (param, convert) in PARAMETERS.items() if name in options}
    return params if params.get("booster") == "dart" else {k: v for k, v in params.items() if k not in DART_ONLY}


class Trees:
    """An XGBoost booster with the scikit-learn methods sqlml scores, explains and measures through.

    ``params``: XGBoost's training parameters; ``rounds``: boosting iterations; ``classifier``: a
    classification task (the number of classes comes from the labels at fit)."""

    def __init__(self, params: dict, rounds: int, classifier: bool, early_stopping: bool = False,
                 min_rel_progress: float = 0.01):
        self.params, self.rounds, self.classifier = dict(params), rounds, classifier
        self.early_stopping, self.min_rel_progress = early_stopping, min_rel_progress
        self.booster: t.Any = None
        self.training_losses: list[float] = []
        self.validation_losses: list[float] = []

    def set_params(self, **params: t.Any) -> "Trees":
        """scikit-learn's way to change a setting (:mod:`sqlml.train.stopping` turns early stopping off
        when the rows are too few to hold any out)."""
        for name, value in params.items():
            setattr(self, name, value)
        return self

    # -- fitting ---------------------------------------------------------------------------------

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None,
            categorical: t.Sequence[bool] | None = None) -> "Trees":
        """Fit on a matrix in memory (handed to XGBoost in blocks of rows, like :meth:`fit_blocks`);
        ``categorical``: which columns are category codes (default none)."""
        return self.fit_blocks(lambda: (X[i:i + BLOCK_ROWS] for i in range(0, len(X), BLOCK_ROWS)), y,
                               sample_weight, categorical if categorical is not None else [False] * X.shape[1])

    def fit_blocks(self, blocks: t.Callable[[], t.Iterator[np.ndarray]], y: np.ndarray,
                   sample_weight: np.ndarray | None, categorical: t.Sequence[bool],
                   built: t.Callable[[], t.Any] | None = None) -> "Trees":
        """Fit on the training rows that ``blocks()`` yields as consecutive dense blocks, in the order of
        ``y`` (it is called once per pass XGBoost makes over the data). ``built`` is called once XGBoost
        holds its own (binned) copy of the rows, so the caller can free its own before the trees grow."""
        y = np.asarray(y)
        params = {**self.params, **self._objective(y)}
        method = params.get("tree_method", "auto")
        feature_types = ["c" if c and method != "exact" else "q" for c in categorical]
        held_out = self._held_out(len(y), params.get("seed", 0))
        source = _Blocks(blocks, y, sample_weight, held_out, feature_types)
        if method in ("auto", "hist"):
            with _interrupts_noted(source):
                train = xgb.QuantileDMatrix(source, enable_categorical=True, max_bin=MAX_BIN)
        else:  # the exact and approx methods sketch the raw values themselves: a DMatrix of all the rows
            train = xgb.DMatrix(**source.whole(), feature_types=feature_types, enable_categorical=True)
        evals = [(train, "train")]
        if held_out is not None:
            rows = source.held_out_rows()
            evals.append((xgb.QuantileDMatrix(**rows, ref=train, feature_types=feature_types, enable_categorical=True)
                          if method in ("auto", "hist") else
                          xgb.DMatrix(**rows, feature_types=feature_types, enable_categorical=True), "validation"))
        del source, blocks
        if built is not None:
            built()
        log: dict = {}
        stop = [_RelativeProgress(self.min_rel_progress, _squared(params))] if held_out is not None else []
        booster = xgb.train(params, train, self.rounds, evals=evals, evals_result=log, verbose_eval=False,
                            callbacks=stop)
        self.training_losses = _losses(log["train"], params)
        if held_out is not None:
            self.validation_losses = _losses(log["validation"], params)
            best = int(np.argmin(self.validation_losses)) + 1
            booster = booster[:best] if best < booster.num_boosted_rounds() else booster
        self.booster = booster
        return self

    def _objective(self, y: np.ndarray) -> dict:
        if not self.classifier:
            return {"objective": "reg:squarederror", "eval_metric": "rmse"}
        classes = int(y.max()) + 1 if len(y) else 2
        if classes <= 2:
            return {"objective": "binary:logistic", "eval_metric": "logloss"}
        return {"objective": "multi:softprob", "num_class": classes, "eval_metric": "mlogloss"}

    def _held_out(self, rows: int, seed: int) -> np.ndarray | None:
        """Which of the training rows early_stop holds out (None: no early stopping)."""
        if not self.early_stopping or self.rounds < 2:
            return None
        held_out = np.zeros(rows, dtype=bool)
        held_out[np.random.default_rng(seed).permutation(rows)[:int(np.ceil(VALIDATION_FRACTION * rows))]] = True
        return held_out

    # -- scoring ---------------------------------------------------------------------------------

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """The raw output (margin): log-odds of the positive class, per-class scores, or the prediction."""
        return np.asarray(self.booster.inplace_predict(X, predict_type="margin"), dtype=np.float64)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities; XGBoost's softmax is float32, so each row is summed to 1 again in float64."""
        probs = np.asarray(self.booster.inplace_predict(X), dtype=np.float64)
        return np.column_stack([1.0 - probs, probs]) if probs.ndim == 1 else probs / probs.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.classifier:
            return self.predict_proba(X).argmax(axis=1)
        return np.asarray(self.booster.inplace_predict(X), dtype=np.float64)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Exact Tree SHAP values of the margin (XGBoost's ``pred_contribs``): (rows, features + 1) or, for
        several classes, (rows, classes, features + 1); the last column is the bias (the expected margin)."""
        data = xgb.DMatrix(X, feature_types=self.booster.feature_types, enable_categorical=True)
        return np.asarray(self.booster.predict(data, pred_contribs=True), dtype=np.float64)

    @property
    def learning_rate(self) -> float:
        """The shrinkage of every iteration (``learn_rate``), read from the booster (which keeps it in float32:
        its shortest decimal is the value given)."""
        return float(str(np.float32(self.tree_parameters()["eta"])))

    def config(self) -> dict:
        """The booster's own configuration (``save_config``): every parameter as XGBoost uses it."""
        return json.loads(self.booster.save_config())

    def tree_parameters(self) -> dict:
        """The trees' parameters in :meth:`config` (a DART booster keeps them in its gbtree), as strings."""
        booster = self.config()["learner"]["gradient_booster"]
        return booster.get("gbtree", booster)["tree_train_param"]

    # -- storing ---------------------------------------------------------------------------------

    def raw_parts(self) -> dict[str, bytes]:
        """What the envelope stores (:func:`sqlml.model.envelope.dumps`' ``raw``): the booster in
        XGBoost's own binary format (UBJSON), and its configuration (JSON), which XGBoost keeps apart from
        the model: the parameters it was trained with, read back by :meth:`config`."""
        return {RAW_PART: bytes(self.booster.save_raw("ubj")), CONFIG_PART: self.booster.save_config().encode()}

    @classmethod
    def from_raw_parts(cls, parts: dict) -> "Trees":
        """A stored booster, read from the envelope's raw parts (the caller has verified their signature)."""
        booster = xgb.Booster(model_file=bytearray(parts[RAW_PART]))
        booster.load_config(bytes(parts[CONFIG_PART]).decode())
        config = json.loads(booster.save_config())
        trees = cls({}, booster.num_boosted_rounds(), config["learner"]["objective"]["name"] != "reg:squarederror")
        trees.booster = booster
        return trees


def _squared(params: dict) -> bool:
    return params["eval_metric"] == "rmse"


def _losses(log: dict, params: dict) -> list[float]:
    """A loss per iteration from XGBoost's evaluation log: log loss, or the mean squared error (RMSE²)."""
    values = np.asarray(log[params["eval_metric"]], dtype=np.float64)
    return (values ** 2 if _squared(params) else values).tolist()


def _relative_improvement(before: float, after: float) -> float:
    return (before - after) / max(abs(before), 1e-12)


class _RelativeProgress(xgb.callback.TrainingCallback):
    """Stops after the first iteration whose held-out loss improved by less than ``min_rel_progress``
    (relative): BigQuery's early_stop."""

    def __init__(self, min_rel_progress: float, squared: bool):
        self.min_rel_progress, self.squared = min_rel_progress, squared
        super().__init__()

    def after_iteration(self, model, epoch: int, evals_log: dict) -> bool:
        values = next(iter(evals_log["validation"].values()))
        if len(values) < 2:
            return False
        before, after = (v ** 2 if self.squared else v for v in values[-2:])
        return _relative_improvement(before, after) < self.min_rel_progress


class _Interrupted(Exception):
    """Ctrl-C while XGBoost reads the blocks: raised by the next block's callback, as an Exception,
    which XGBoost defers and re-raises once its C call has returned."""


@contextlib.contextmanager
def _interrupts_noted(source: "_Blocks") -> t.Iterator[None]:
    """While XGBoost builds its matrix from ``source``, Ctrl-C only marks ``source`` interrupted: raised
    at any moment, a KeyboardInterrupt lands inside XGBoost's callback wrappers, which cannot pass a
    BaseException on (XGBoost then fails with an internal error or a traceback at garbage collection).
    The interrupt is raised once XGBoost has returned, also when it came after the last block was read."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:  # ignored, or the caller's own
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda *_: setattr(source, "interrupted", True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if source.interrupted:
            raise KeyboardInterrupt  # noqa: B012  (it replaces the _Interrupted XGBoost re-raised, if any)


class _Blocks(xgb.DataIter):
    """Dense blocks of training rows handed to XGBoost one at a time, with their labels and weights;
    each block's held-out rows are kept aside instead (on the first pass)."""

    def __init__(self, blocks: t.Callable[[], t.Iterator[np.ndarray]], y: np.ndarray, weight: np.ndarray | None,
                 held_out: np.ndarray | None, feature_types: list[str]):
        self.blocks, self.y, self.weight, self.held_out = blocks, y, weight, held_out
        self.feature_types = feature_types
        self.aside: list[np.ndarray] = []
        self.first_pass, self.current, self.start = True, None, 0
        self.interrupted = False  # set on Ctrl-C (_interrupts_noted)
        super().__init__(release_data=True)

    def reset(self) -> None:
        self.current, self.start = None, 0

    def next(self, input_data: t.Callable) -> bool:
        if self.interrupted:
            raise _Interrupted()
        if self.current is None:
            self.current = iter(self.blocks())
        block = next(self.current, None)
        if block is None:
            self.first_pass = False
            return False
        rows = np.arange(self.start, self.start + len(block))
        self.start += len(block)
        if self.held_out is not None:
            aside = self.held_out[rows]
            if self.first_pass:
                self.aside.append(np.asarray(block[aside], dtype=np.float32))
            block, rows = block[~aside], rows[~aside]
        input_data(data=np.ascontiguousarray(block, dtype=np.float32), label=self.y[rows],
                   weight=None if self.weight is None else self.weight[rows], feature_types=self.feature_types)
        return True

    def whole(self) -> dict:
        """Every row handed to XGBoost, as one matrix with its labels and weights (one pass)."""
        parts: dict[str, list] = {"data": [], "label": [], "weight": []}

        def collect(**given: t.Any) -> None:
            for key, value in given.items():
                if key in parts and value is not None:
                    parts[key].append(value)
        while self.next(collect):
            pass
        self.reset()
        return {key: np.concatenate(values) if values else None for key, values in parts.items()}

    def held_out_rows(self) -> dict:
        """The held-out rows with their labels and weights (once the first pass is done)."""
        return {"data": np.concatenate(self.aside) if self.aside else np.empty((0, len(self.feature_types)), np.float32),
                "label": self.y[self.held_out], "weight": None if self.weight is None else self.weight[self.held_out]}
