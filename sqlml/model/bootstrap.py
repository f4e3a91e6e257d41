"""The paired bootstrap of a metric's difference between two models scored on the same rows, shared by
ML.COMPARE and the deploy gate's ``deploy_significance`` (docs/evaluation.md, "ML.COMPARE").

With ``rng = numpy.random.default_rng(seed)``, resample *i* is the row positions
``rng.integers(0, n, size=n)`` drawn in turn, ``count`` times; both models' metrics are computed on the
same drawn rows and their difference a − b kept. A resample where a metric is undefined for either
model (roc_auc of rows of one class) is left out of that metric's figures. The interval at ``level``
is the ``(1 − level) / 2`` and ``(1 + level) / 2`` quantiles of the differences (``numpy.quantile``,
linear interpolation); ``p_value`` is ``min(1, 2 * min(share of differences <= 0, share >= 0))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .baseline import metric_values
from .metrics import Scored


@dataclass
class Interval:
    low: float
    high: float
    p_value: float


def differences(scored_a: Scored, scored_b: Scored, names: list[str], count: int, seed: int) -> dict[str, np.ndarray]:
    """Each metric's differences a − b over ``count`` paired resamples of the rows (the module's scheme)."""
    rng = np.random.default_rng(seed)
    n = len(scored_a)
    found: dict[str, list[float]] = {m: [] for m in names}
    for _ in range(count):
        rows = rng.integers(0, n, size=n)
        values_a, values_b = metric_values(scored_a.take(rows), names), metric_values(scored_b.take(rows), names)
        for m in names:
            if values_a[m] is not None and values_b[m] is not None:
                found[m].append(values_a[m] - values_b[m])
    return {m: np.asarray(d, dtype=np.float64) for m, d in found.items()}


def interval(drawn: np.ndarray, level: float = 0.95) -> Interval | None:
    """The ``level`` confidence interval of the difference and its two-sided p-value (None: no resample)."""
    if not len(drawn):
        return None
    low, high = (float(q) for q in np.quantile(drawn, [(1 - level) / 2, (1 + level) / 2]))
    return Interval(low, high, min(1.0, 2 * min(float(np.mean(drawn <= 0)), float(np.mean(drawn >= 0)))))
