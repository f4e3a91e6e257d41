"""The paired bootstrap of a metric's difference between two models scored on the same rows, shared by
ML.COMPARE and the deploy gate's ``deploy_significance`` (docs/evaluation.md, "ML.COMPARE").

With ``rng = numpy.random.default_rng(seed)``, resample *i* is the row positions
``rng.integers(0, n, size=n)`` drawn in turn, ``count`` times; both models' metrics are computed on the
same drawn rows and their difference a − b kept. A resample where a metric is undefined for either
model (roc_auc of rows of one class) is left out of that metric's figures. The interval at ``level``
is the ``(1 − level) / 2`` and ``(1 + level) / 2`` quantiles of the differences (``numpy.quantile``,
linear interpolation); ``p_value`` is ``min(1, 2 * min(share of differences <= 0, share >= 0))``.

The metrics of a block of resamples are computed at once: a resample is how many times it drew each
row (a weight per row), and each metric is scikit-learn's formula with those weights — sums and
confusion counts as one matrix product, roc_auc and pr_auc from the rows sorted by score once, the
median absolute error from the errors sorted once. ``tests/test_compare.py`` checks every metric
against scikit-learn on the drawn rows themselves, resample by resample.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

import numpy as np

from .metrics import Scored

#: Weights held at once (resamples × rows): ~16 MB per array, whatever the number of resamples.
BLOCK_WEIGHTS = 2**21
EPS = np.finfo(np.float64).eps  # scikit-learn clips probabilities to [eps, 1 - eps] in log_loss


@dataclass
class Interval:
    low: float
    high: float
    p_value: float


def differences(scored_a: Scored, scored_b: Scored, names: list[str], count: int, seed: int) -> dict[str, np.ndarray]:
    """Each metric's differences a − b over ``count`` paired resamples of the rows (the module's scheme)."""
    rng = np.random.default_rng(seed)
    n = len(scored_a)
    a, b = Weighted.of(scored_a), Weighted.of(scored_b)
    found: dict[str, list[np.ndarray]] = {m: [] for m in names}
    block = max(1, BLOCK_WEIGHTS // max(n, 1))
    for start in range(0, count, block):
        drawn = np.stack([rng.integers(0, n, size=n) for _ in range(min(block, count - start))])
        weights = resample_weights(drawn, n)
        values_a, values_b = a.metrics(weights, names), b.metrics(weights, names)
        for m in names:
            difference = values_a[m] - values_b[m]
            found[m].append(difference[np.isfinite(values_a[m]) & np.isfinite(values_b[m])])
    return {m: np.concatenate(parts) if parts else np.zeros(0) for m, parts in found.items()}


def resample_weights(drawn: np.ndarray, n: int) -> np.ndarray:
    """How many times each resample (a row of ``drawn``, row positions) drew each of the ``n`` rows."""
    k = len(drawn)
    return np.bincount((drawn + n * np.arange(k)[:, None]).ravel(), minlength=k * n).reshape(k, n).astype(np.float64)


def interval(drawn: np.ndarray, level: float = 0.95) -> Interval | None:
    """The ``level`` confidence interval of the difference and its two-sided p-value (None: no resample)."""
    if not len(drawn):
        return None
    low, high = (float(q) for q in np.quantile(drawn, [(1 - level) / 2, (1 + level) / 2]))
    return Interval(low, high, min(1.0, 2 * min(float(np.mean(drawn <= 0)), float(np.mean(drawn >= 0)))))


class Weighted:
    """One model's scored rows, prepared once; :meth:`metrics` gives a metric per resample (NaN where it
    is undefined on that resample's rows, as :func:`sqlml.model.metrics.finite` makes it NULL)."""

    @staticmethod
    def of(scored: Scored) -> "Weighted":
        return WeightedClassifier(scored) if scored.probs is not None else WeightedRegressor(scored)

    def metrics(self, weights: np.ndarray, names: t.Iterable[str]) -> dict[str, np.ndarray]:
        with np.errstate(divide="ignore", invalid="ignore"):
            return {name: getattr(self, name)(weights) for name in names}


class WeightedClassifier(Weighted):
    """scikit-learn's classification metrics as sqlml.model.metrics calls them: binary ones for the second
    class, macro averages over every class otherwise, zero_division = 0."""

    def __init__(self, scored: Scored):
        self.n, self.classes = len(scored), scored.probs.shape[1]
        self.binary = self.classes == 2
        codes = np.arange(self.classes)
        self.truth = (scored.y[:, None] == codes).astype(np.float64)
        self.chosen = (scored.predicted[:, None] == codes).astype(np.float64)
        self.hits = self.truth * self.chosen  # true positives of each class
        self.loss = -np.log(np.clip(scored.probs[np.arange(self.n), scored.y], EPS, 1 - EPS))
        self.ranked = [Ranked(scored.probs[:, c], scored.y == c) for c in codes]

    def _counts(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per resample and class: true positives, predicted positives, actual positives."""
        return weights @ self.hits, weights @ self.chosen, weights @ self.truth

    def _per_class(self, values: np.ndarray) -> np.ndarray:
        return values[:, 1] if self.binary else values.mean(axis=1)

    def precision(self, weights: np.ndarray) -> np.ndarray:
        tp, predicted, _ = self._counts(weights)
        return self._per_class(np.where(predicted > 0, tp / predicted, 0.0))

    def recall(self, weights: np.ndarray) -> np.ndarray:
        tp, _, actual = self._counts(weights)
        return self._per_class(np.where(actual > 0, tp / actual, 0.0))

    def f1_score(self, weights: np.ndarray) -> np.ndarray:
        tp, predicted, actual = self._counts(weights)
        return self._per_class(np.where(predicted + actual > 0, 2 * tp / (predicted + actual), 0.0))

    def accuracy(self, weights: np.ndarray) -> np.ndarray:
        return weights @ self.hits.sum(axis=1) / self.n

    def log_loss(self, weights: np.ndarray) -> np.ndarray:
        return weights @ self.loss / self.n

    def roc_auc(self, weights: np.ndarray) -> np.ndarray:
        """Binary: the second class's; multiclass: the mean one-vs-rest, defined when every class was drawn."""
        if self.binary:
            return self.ranked[1].roc_auc(weights)
        return np.mean([r.roc_auc(weights) for r in self.ranked], axis=0)  # NaN where a class is absent

    def pr_auc(self, weights: np.ndarray) -> np.ndarray:
        """Binary only (as ML.EVALUATE reports it)."""
        return self.ranked[1].average_precision(weights) if self.binary else np.full(len(weights), np.nan)


class Ranked:
    """Rows sorted by one score once, ties grouped, for roc_auc and average precision of any resample.
    The weights are counts, so every sum below is an exact integer: the order of summing changes nothing."""

    def __init__(self, score: np.ndarray, positive: np.ndarray):
        self.order = np.argsort(score, kind="stable")
        ordered = score[self.order]
        ties = ordered[1:] == ordered[:-1]
        self.starts = np.flatnonzero(np.concatenate([[True], ~ties])) if ties.any() else None
        self.positive = positive[self.order].astype(np.float64)
        self._last: tuple[np.ndarray, tuple] | None = None

    def _groups(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per resample and distinct score (ascending): the weight of its positive and negative rows, and
        of those at or below it (computed once per block of resamples, for both curves)."""
        if self._last is not None and self._last[0] is weights:
            return self._last[1]
        ordered = weights[:, self.order]
        positive = ordered * self.positive
        if self.starts is not None:
            positive, ordered = (np.add.reduceat(x, self.starts, axis=1) for x in (positive, ordered))
        negative = ordered - positive
        found = positive, negative, np.cumsum(positive, axis=1), np.cumsum(negative, axis=1)
        self._last = (weights, found)
        return found

    def roc_auc(self, weights: np.ndarray) -> np.ndarray:
        """The Mann-Whitney form of the area under the ROC curve: the share of (positive, negative) pairs
        ordered right, ties counting one half (the trapezoids of roc_auc_score)."""
        positive, negative, _, negatives_to = self._groups(weights)
        pairs = negatives_to[:, -1] * positive.sum(axis=1)
        return np.where(pairs > 0, (positive * (negatives_to - 0.5 * negative)).sum(axis=1) / pairs, np.nan)

    def average_precision(self, weights: np.ndarray) -> np.ndarray:
        """average_precision_score: the precision at each distinct score (of the rows scored at least as
        high), weighted by the recall it adds."""
        positive, negative, positives_to, negatives_to = self._groups(weights)
        total_positive, total_negative = positives_to[:, -1:], negatives_to[:, -1:]
        found = total_positive - positives_to + positive  # positives scored at least this high
        taken = found + total_negative - negatives_to + negative
        precision = np.divide(found, taken, out=np.zeros_like(found), where=taken > 0)
        pairs = (total_positive * total_negative)[:, 0]
        return np.where(pairs > 0, np.maximum((positive * precision).sum(axis=1) / total_positive[:, 0], 0.0), np.nan)


class WeightedRegressor(Weighted):
    """scikit-learn's regression metrics; r2_score and explained_variance with force_finite (a constant
    label gives 1.0 for an exact fit, else 0.0), found exact by comparing the drawn rows' extremes."""

    def __init__(self, scored: Scored):
        y, predicted = scored.y.astype(np.float64), scored.predicted.astype(np.float64)
        self.n, self.y, self.error = len(y), y, y - predicted
        self.centred_y, self.centred_error = y - y.mean(), self.error - self.error.mean()  # sums lose no digits
        self.negative = ((y < 0) | (predicted < 0)).astype(np.float64)
        with np.errstate(invalid="ignore"):
            self.log_error = np.where(self.negative > 0, 0.0, np.log1p(np.maximum(y, 0)) - np.log1p(np.maximum(predicted, 0)))
        self.by_error = np.argsort(np.abs(self.error), kind="stable")

    def mean_absolute_error(self, weights: np.ndarray) -> np.ndarray:
        return weights @ np.abs(self.error) / self.n

    def mean_squared_error(self, weights: np.ndarray) -> np.ndarray:
        return weights @ self.error ** 2 / self.n

    def mean_squared_log_error(self, weights: np.ndarray) -> np.ndarray:
        return np.where(weights @ self.negative > 0, np.nan, weights @ self.log_error ** 2 / self.n)

    def median_absolute_error(self, weights: np.ndarray) -> np.ndarray:
        """numpy.median of the drawn absolute errors: the middle one, or the mean of the middle two."""
        drawn = np.cumsum(weights[:, self.by_error], axis=1)
        ordered = np.abs(self.error)[self.by_error]
        low, high = ((drawn <= position).sum(axis=1) for position in ((self.n - 1) // 2, self.n // 2))
        return (ordered[low] + ordered[high]) / 2

    def _spread(self, weights: np.ndarray, centred: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Per resample, the sum of squared deviations of the drawn ``values`` from their mean (exactly 0
        when every drawn value is the same)."""
        total = np.maximum(weights @ centred ** 2 - (weights @ centred) ** 2 / self.n, 0.0)
        drawn = weights > 0
        constant = np.where(drawn, values, np.inf).min(axis=1) == np.where(drawn, values, -np.inf).max(axis=1)
        return np.where(constant, 0.0, total)

    def r2_score(self, weights: np.ndarray) -> np.ndarray:
        residual = np.where(weights @ (self.error != 0) > 0, weights @ self.error ** 2, 0.0)
        return _explained(residual, self._spread(weights, self.centred_y, self.y), self.n)

    def explained_variance(self, weights: np.ndarray) -> np.ndarray:
        residual = self._spread(weights, self.centred_error, self.error)
        return _explained(residual, self._spread(weights, self.centred_y, self.y), self.n)


def _explained(residual: np.ndarray, spread: np.ndarray, n: int) -> np.ndarray:
    """1 − residual / spread with scikit-learn's force_finite; undefined (NaN) on fewer than two rows."""
    if n < 2:
        return np.full(len(residual), np.nan)
    return np.where(spread > 0, 1 - residual / spread, np.where(residual > 0, 0.0, 1.0))
