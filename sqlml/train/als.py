"""Alternating least squares for matrix factorization: explicit ratings in NumPy, implicit feedback with
the ``implicit`` library's CPU solver.

Explicit feedback minimizes, over user factors p, item factors q and biases b (the intercept μ is the
training ratings' mean)::

    Σ_(u,i) (r_ui − μ − b_u − b_i − p_u·q_i)²  +  l2_reg · (Σ|p_u|² + Σ|q_i|² + Σb_u² + Σb_i²)

Each half-step solves, for every user (then every item) at once, the ridge regression of its ratings on the
other side's factors and a constant: ``(ZᵀZ + l2_reg·I) w = Zᵀt`` with ``Z = [q_i, 1]`` and ``t = r − μ − b_i``.
The systems of every user (then item) are summed by scipy's sparse products and solved in batched calls.

Implicit feedback is Hu, Koren & Volinsky's weighted ALS: preference 1 for every observed pair with
confidence ``1 + wals_alpha · r``, preference 0 with confidence 1 for every other pair, l2_reg on the
factors. ``implicit``'s ``AlternatingLeastSquares`` solves it (conjugate gradient, float32), one iteration
per call so that the loss can be recorded and early_stop honoured; its factors are those of one call
with all the iterations. OpenBLAS must run single-threaded under it (``implicit`` warns, and is slower,
otherwise): the limit is set around the fit only, so the rest of sqlml keeps its threads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

GRAM_ENTRIES = 2_000_000  # Gram matrix entries built at a time (16 MB of float64)


@dataclass
class Factors:
    """What a fit learned, with its loss after each iteration."""

    user_factors: np.ndarray
    item_factors: np.ndarray
    user_bias: np.ndarray
    item_bias: np.ndarray
    intercept: float
    losses: list[float | None] = field(default_factory=list)  # None: not computed after that iteration
    eval_losses: list[float | None] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    converged: bool = False  # stopped by early_stop before max_iterations


@dataclass
class Settings:
    factors: int
    l2_reg: float
    max_iterations: int
    early_stop: bool
    min_rel_progress: float
    seed: int


def explicit(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, shape: tuple[int, int],
             settings: Settings, evaluation: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> Factors:
    """Biased matrix factorization of the ratings (user index, item index, rating; every index of ``shape``
    has a rating), by ALS. ``evaluation``: held-out (users, items, ratings), −1 for ids not in ``shape``,
    whose mean squared error is recorded per iteration. ``settings.factors`` = 0 fits the biases alone."""
    rng = np.random.default_rng(settings.seed)
    k = settings.factors
    intercept = float(ratings.mean())
    by_user, by_item = _Side(users, items, ratings, shape), _Side(items, users, ratings, shape[::-1])
    fit = Factors(rng.normal(0.0, 0.1, (shape[0], k)), rng.normal(0.0, 0.1, (shape[1], k)),
                  np.zeros(shape[0]), np.zeros(shape[1]), intercept)
    previous = None
    for _ in range(settings.max_iterations):
        started = time.perf_counter()
        fit.user_factors, fit.user_bias = by_user.solve(fit.item_factors, fit.item_bias, intercept, settings.l2_reg)
        fit.item_factors, fit.item_bias = by_item.solve(fit.user_factors, fit.user_bias, intercept, settings.l2_reg)
        error = by_user.squared_error(fit)
        objective = error + settings.l2_reg * sum(float(np.sum(a ** 2)) for a in
                                                  (fit.user_factors, fit.item_factors, fit.user_bias, fit.item_bias))
        fit.losses.append(error / len(ratings))
        fit.eval_losses.append(_held_out_error(fit, evaluation))
        fit.seconds.append(time.perf_counter() - started)
        if _stops(previous, objective, settings):
            fit.converged = True
            break
        previous = objective
    return fit


def _stops(previous: float | None, objective: float, settings: Settings) -> bool:
    """early_stop: the objective fell by less than min_rel_progress of itself in the last iteration."""
    return (settings.early_stop and previous is not None
            and (previous - objective) < settings.min_rel_progress * abs(previous))


class _Side:
    """The ratings as a rows × others sparse matrix, for the half-step that solves the rows (users, then items).

    Every row's Gram matrix ``Σ z zᵀ`` over its ratings is the sparse product of the rows × others counts with
    each other's outer product ``z zᵀ``, and its right-hand side
    ``Σ t z`` the product of the targets with the others' ``z``: scipy's sparse kernels do the sums, a block of
    rows at a time, and the systems are solved in one batched call per block."""

    def __init__(self, rows: np.ndarray, others: np.ndarray, ratings: np.ndarray, shape: tuple[int, int]):
        self.order = np.argsort(rows, kind="stable")
        self.rows, self.others, self.ratings = rows, others, ratings
        self.indptr = np.searchsorted(rows[self.order], np.arange(shape[0] + 1)).astype(np.int64)
        self.indices = others[self.order]
        self.shape = shape
        self.counts = self._matrix(np.ones(len(rows)))  # a repeated pair counts twice, as its two ratings do

    def _matrix(self, values: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((values[self.order], self.indices, self.indptr), shape=self.shape)

    def solve(self, other_factors: np.ndarray, other_bias: np.ndarray, intercept: float,
              l2_reg: float) -> tuple[np.ndarray, np.ndarray]:
        """Every row's factors and bias given the other side's: ridge solutions, in blocks of rows."""
        k = other_factors.shape[1]
        design = np.empty((len(other_factors), k + 1))  # each of the other side's rows, then 1 (the bias)
        design[:, :k], design[:, k] = other_factors, 1.0
        outer = (design[:, :, None] * design[:, None, :]).reshape(len(design), -1)
        rhs = self._matrix(self.ratings - intercept - other_bias[self.others]) @ design
        solution = np.empty((self.shape[0], k + 1))
        step = max(1, GRAM_ENTRIES // ((k + 1) * (k + 1)))
        for first in range(0, self.shape[0], step):
            block = slice(first, min(first + step, self.shape[0]))
            gram = (self.counts[block] @ outer).reshape(-1, k + 1, k + 1)
            gram[:, np.arange(k + 1), np.arange(k + 1)] += l2_reg
            solution[block] = np.linalg.solve(gram, rhs[block][:, :, None])[:, :, 0]
        return solution[:, :k], solution[:, k]

    def squared_error(self, fit: Factors) -> float:
        return float(np.sum((self.ratings - _predict(fit, self.rows, self.others)) ** 2))


def _predict(fit: Factors, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    return (fit.intercept + fit.user_bias[users] + fit.item_bias[items]
            + np.einsum("ij,ij->i", fit.user_factors[users], fit.item_factors[items]))


def _held_out_error(fit: Factors, evaluation: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> float | None:
    """The mean squared error on held-out ratings; an id not seen in training gets the intercepts."""
    if evaluation is None or not len(evaluation[0]):
        return None
    users, items, ratings = evaluation
    known_user, known_item = users >= 0, items >= 0
    predicted = np.full(len(ratings), fit.intercept)
    predicted[known_user] += fit.user_bias[users[known_user]]
    predicted[known_item] += fit.item_bias[items[known_item]]
    both = known_user & known_item
    predicted[both] += np.einsum("ij,ij->i", fit.user_factors[users[both]], fit.item_factors[items[both]])
    return float(np.mean((ratings - predicted) ** 2))


def confidences(interactions: sp.csr_matrix, wals_alpha: float) -> sp.csr_matrix:
    """The confidence matrix ``1 + wals_alpha · r`` of the observed pairs (float32, as ``implicit`` fits)."""
    matrix = interactions.astype(np.float32)
    matrix.data = 1.0 + np.float32(wals_alpha) * matrix.data
    return matrix


def implicit(interactions: sp.csr_matrix, settings: Settings, wals_alpha: float) -> Factors:
    """Weighted ALS on the users × items matrix of summed ratings (zeros not stored). With early_stop, one
    call of ``implicit``'s fit per iteration and the loss after each; without, one call for every iteration
    (exactly ``implicit``'s own fit) and the loss after the last only: computing it each time would cost
    about a quarter of the fit."""
    from implicit.cpu.als import AlternatingLeastSquares  # imported first: its BLAS must exist when limited
    from threadpoolctl import threadpool_limits

    matrix = confidences(interactions, wals_alpha)
    objective = ImplicitObjective(matrix, settings.l2_reg)
    fit = Factors(np.empty(0), np.empty(0), np.zeros(matrix.shape[0]), np.zeros(matrix.shape[1]), 0.0)
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=settings.factors, regularization=settings.l2_reg, alpha=1.0,
                                        iterations=1 if settings.early_stop else settings.max_iterations,
                                        random_state=settings.seed)
        if not settings.early_stop:
            model.fit(matrix, show_progress=False, callback=lambda iteration, seconds, loss: fit.seconds.append(seconds))
            fit.losses = [None] * (len(fit.seconds) - 1) + [objective(model.user_factors, model.item_factors)
                                                            / objective.total_confidence]
        previous = None
        for _ in range(settings.max_iterations if settings.early_stop else 0):
            started = time.perf_counter()
            model.fit(matrix, show_progress=False)  # continues from the factors of the last call
            value = objective(model.user_factors, model.item_factors)
            fit.losses.append(value / objective.total_confidence)
            fit.seconds.append(time.perf_counter() - started)
            if _stops(previous, value, settings):
                fit.converged = True
                break
            previous = value
    fit.eval_losses = [None] * len(fit.losses)
    fit.user_factors, fit.item_factors = model.user_factors, model.item_factors
    return fit


class ImplicitObjective:
    """Hu, Koren & Volinsky's objective of a confidence matrix, for factors; ``total_confidence`` (observed
    pairs weigh their confidence, the others 1) is what ML.TRAINING_INFO's loss divides it by. Over the
    unobserved pairs Σ (p·q)² comes from the factors' Gram matrices: no users × items product is made."""

    def __init__(self, confidence: sp.csr_matrix, l2_reg: float):
        coo = confidence.tocoo()
        self.rows, self.columns, self.confidence = coo.row, coo.col, coo.data.astype(np.float64)
        self.l2_reg = l2_reg
        self.total_confidence = float(self.confidence.sum()) + confidence.shape[0] * confidence.shape[1] - confidence.nnz

    def __call__(self, user_factors: np.ndarray, item_factors: np.ndarray) -> float:
        # the factors are float32: their dot products are too (summing 100,000s of them is done in float64)
        scores = np.einsum("ij,ij->i", user_factors[self.rows], item_factors[self.columns]).astype(np.float64)
        x, y = user_factors.astype(np.float64), item_factors.astype(np.float64)  # small: users, items × factors
        everywhere = float(np.sum((x.T @ x) * (y.T @ y)))  # Σ over every pair of (p·q)²
        observed = float(np.sum(self.confidence * (1.0 - scores) ** 2 - scores * scores))
        return everywhere + observed + self.l2_reg * (float(np.sum(x * x)) + float(np.sum(y * y)))
