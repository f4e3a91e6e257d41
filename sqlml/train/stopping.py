"""Early stopping: BigQuery's ``early_stop`` / ``min_rel_progress`` / ``max_iterations``.

* Logistic regression (:attr:`ModelKind.stops_early`): lbfgs (saga with ``l1_reg``) runs in blocks of
  ``BLOCK`` iterations, warm-started from the weights so far. After each block the training objective
  (mean log loss plus the L2 penalty, as scikit-learn minimizes it) is measured; training stops when
  the block improved it by less than ``min_rel_progress`` per iteration (relative), when the solver
  converged inside a block, or at ``max_iterations``.
* Boosted trees (:mod:`sqlml.model.boosted`, on relative progress, as BigQuery) and DNNs
  (scikit-learn's ``early_stopping``) stop on a held-out 10 % of the training rows. With too few rows
  for that split (one row, a class with one row) early stopping is turned off, with a note, instead of
  failing.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

BLOCK = 10  # lbfgs iterations between two measurements of the objective
VALIDATION_FRACTION = 0.1  # the MLP's validation_fraction, and the boosted trees' held-out rows


def validation_split_possible(y: np.ndarray | None, classifier: bool) -> bool:
    """Whether scikit-learn can hold out ``VALIDATION_FRACTION`` of these rows (stratified for classifiers)."""
    n = len(y)
    held_out = math.ceil(VALIDATION_FRACTION * n)
    if n - held_out < 1:
        return False
    if not classifier:
        return True
    counts = np.bincount(y)
    counts = counts[counts > 0]
    return counts.min() >= 2 and held_out >= len(counts) and n - held_out >= len(counts)


def without_impossible_early_stop(estimator, y: np.ndarray | None, classifier: bool) -> list[str]:
    """Turn off an estimator's validation-based early stopping when the rows cannot be split for it."""
    if not getattr(estimator, "early_stopping", False) or y is None or validation_split_possible(y, classifier):
        return []
    estimator.set_params(early_stopping=False)
    return [f"early_stop turned off: {len(y):,} training row(s) are too few to hold out the 10 % validation "
            "rows it needs" + (" (at least two rows per class)." if classifier else ".")]


def fit_linear(estimator, X, y: np.ndarray, sample_weight: np.ndarray | None, options: dict) -> tuple[list[float], bool]:
    """Fit a LogisticRegression honouring early_stop: the objective after each block, and whether training
    stopped before max_iterations (converged or too little progress; without early_stop, scikit-learn's
    own ConvergenceWarning says when it did not, and this is True)."""
    budget = estimator.max_iter
    if not options["early_stop"]:
        estimator.fit(X, y, sample_weight=sample_weight)
        return [objective(estimator, X, y, sample_weight)], True
    estimator.set_params(warm_start=True)
    losses, done, stopped = [], 0, False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # each block ends at its own max_iter
        while done < budget and not stopped:
            block = min(BLOCK, budget - done)
            estimator.set_params(max_iter=block)
            estimator.fit(X, y, sample_weight=sample_weight)
            ran = int(np.max(estimator.n_iter_))
            done += ran
            losses.append(objective(estimator, X, y, sample_weight))
            converged = ran < block
            slow = len(losses) > 1 and (losses[-2] - losses[-1]) / max(abs(losses[-2]), 1e-12) < \
                options["min_rel_progress"] * ran
            stopped = converged or slow
    estimator.set_params(max_iter=budget, warm_start=False)
    return losses, stopped


def objective(estimator, X, y: np.ndarray, sample_weight: np.ndarray | None) -> float:
    """What scikit-learn's LogisticRegression minimizes: the mean (weighted) log loss plus the elastic-net
    penalty (l1_ratio·|w|₁ + (1 − l1_ratio)·||w||²/2) / (C · total weight)."""
    probs = np.clip(estimator.predict_proba(X), 1e-15, 1.0)
    weights = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    loss = -(weights * np.log(probs[np.arange(len(y)), y])).sum() / weights.sum()
    if not np.isfinite(estimator.C):
        return float(loss)
    l1 = estimator.l1_ratio or 0.0
    norm = l1 * np.abs(estimator.coef_).sum() + (1 - l1) * 0.5 * np.square(estimator.coef_).sum()
    penalty = float(norm) / (estimator.C * weights.sum())
    return float(loss + penalty)
