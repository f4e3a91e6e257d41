"""Each model family's scores as SQL steps, and ML.PREDICT's prediction columns from them.

The arithmetic follows :class:`sqlml.model.loaded.LoadedModel`: a linear model's decision is the
intercept plus each column's weight times its standardized value (a one-hot block: its category's
weight); logistic probabilities are ``1 / (1 + e^-d)`` and ``1 - p`` (binary) or a softmax shifted by
the row's largest score; a network's dense layers are sums of products with their activation;
k-means' distances are Euclidean in the standardized one-hot space, the nearest first; PCA's scores
are the projection ``X @ components.T - mean @ components.T`` (as scikit-learn computes it), an
autoencoder's latent columns its narrowest hidden layer's activations.
"""

from __future__ import annotations

import typing as t

import numpy as np
from sqlglot import exp

from ..model.kinds import AUTOENCODER, BOOSTED, CLASSIFICATION, DNN, FOREST, KMEANS, LINEAR, PCA
from ..model.loaded import LoadedModel, output_schema
from . import expressions as x
from .expressions import NotCompilableError
from .inputs import Inputs
from .program import Program
from .trees import compile_ensemble, ensemble_of

#: Weights (and biases) a compiled network may hold: each one is a term of the SQL.
MAX_NETWORK_WEIGHTS = 50_000
ACTIVATIONS = ("identity", "relu", "logistic", "tanh")
#: The model types ML.GENERATE_SQL compiles, named in the refusal of the others.
COMPILED = ("linear_reg", "logistic_reg", "boosted_tree_*", "random_forest_*", "dnn_*", "kmeans", "pca", "autoencoder")


def predictions(model: LoadedModel, inputs: Inputs, dialect: str, threshold: float | None = None) -> Program:
    """The program computing ``model``'s ML.PREDICT columns."""
    program = Program()
    family, task = model.kind.family, model.kind.task
    inputs.compute(program, codes=family in (BOOSTED, FOREST))
    if family == KMEANS:
        _clusters(program, model, inputs, dialect)
        return program
    if family in (PCA, AUTOENCODER):
        reduced = _projection(program, model, inputs) if family == PCA else _latent(program, model, inputs)
        program.outputs += list(zip(output_schema(model.info).names, reduced))
        return program
    if family == LINEAR:
        scores = _linear(program, model, inputs)
        link = "logistic" if task == CLASSIFICATION and len(model.classes) == 2 else "softmax"
    elif family == DNN:
        scores, link = _network(program, model, inputs)
    elif family in (BOOSTED, FOREST):
        ensemble = ensemble_of(model.estimator)
        wanted = [1] if task == CLASSIFICATION and ensemble.link == "identity" and len(model.classes) == 2 \
            else range(len(ensemble.base))
        scores, link = compile_ensemble(program, ensemble, inputs, wanted), ensemble.link
        if task == CLASSIFICATION and link == "identity":  # a forest's averaged class fractions
            link = "fractions"
    else:
        raise NotCompilableError(f"model_type '{model.kind.name}' does not compile to SQL: sqlml compiles "
                                 f"{', '.join(COMPILED)}. Score '{model.info.name}' with ML.PREDICT.")
    if task == CLASSIFICATION:
        _classes(program, model, scores, link, dialect, model.threshold if threshold is None else threshold)
    else:
        _values(program, model, scores)
    return program


def _linear(program: Program, model: LoadedModel, inputs: Inputs) -> list[exp.Expr]:
    weights = np.atleast_2d(model.estimator.coef_).T  # matrix columns × outputs
    intercepts = np.atleast_1d(model.estimator.intercept_).astype(np.float64)
    return program.step(inputs.weighted_sums(weights, intercepts), "d")


def _network(program: Program, model: LoadedModel, inputs: Inputs) -> tuple[list[exp.Expr], str]:
    """A fitted MLP: each hidden layer one step of its units, the output layer's scores last."""
    estimator = model.estimator
    units = _layers(program, estimator, inputs, len(estimator.coefs_))
    link = {"logistic": "logistic", "softmax": "softmax", "identity": "identity"}[estimator.out_activation_]
    return units, link


def _latent(program: Program, model: LoadedModel, inputs: Inputs) -> list[exp.Expr]:
    """An autoencoder's latent columns (:func:`sqlml.model.reduction.reduce`): its layers up to the narrowest
    hidden one (the first of the narrowest), activated."""
    estimator = model.estimator
    units = _layers(program, estimator, inputs, int(np.argmin(estimator.hidden_layer_sizes)) + 1)
    return program.step([_activation(u, estimator.activation) for u in units], "a")


def _layers(program: Program, estimator: t.Any, inputs: Inputs, count: int) -> list[exp.Expr]:
    """The units of the ``count``-th dense layer of a fitted MLP before its activation (the layers before it
    activated), one step per layer; refused over :data:`MAX_NETWORK_WEIGHTS`."""
    coefs, intercepts = estimator.coefs_[:count], estimator.intercepts_[:count]
    size = sum(w.size + b.size for w, b in zip(coefs, intercepts))
    if size > MAX_NETWORK_WEIGHTS:
        raise NotCompilableError(
            f"The network has {size:,} weights and biases; sqlml compiles at most {MAX_NETWORK_WEIGHTS:,} to SQL "
            "(each is a term of the SQL). Use fewer hidden_units, or score with ML.PREDICT.")
    if estimator.activation not in ACTIVATIONS:
        raise NotCompilableError(f"The network's activation '{estimator.activation}' does not compile to SQL.")
    units = program.step(inputs.weighted_sums(coefs[0], intercepts[0]), "u")
    for weights, biases in zip(coefs[1:], intercepts[1:]):
        units = program.step([_activation(u, estimator.activation) for u in units], "a")
        units = program.step([x.balanced_sum([x.number(b)] + [x.times(x.number(w), u.copy()) for w, u in
                                                             zip(weights[:, k], units) if w != 0.0])
                              for k, b in enumerate(biases)], "u")
    return units


def _projection(program: Program, model: LoadedModel, inputs: Inputs) -> list[exp.Expr]:
    """PCA's scores, as scikit-learn's ``transform`` computes them (no whitening: BigQuery's PCA has none)."""
    weights = model.estimator.components_.T  # matrix columns × components
    return program.step(inputs.weighted_sums(weights, -(model.estimator.mean_ @ weights)), "d")


def _activation(node: exp.Expr, name: str) -> exp.Expr:
    if name == "relu":
        return x.greatest(node.copy(), x.number(0.0))
    if name == "logistic":
        return x.logistic(node.copy())
    if name == "tanh":
        return exp.Anonymous(this="TANH", expressions=[node.copy()])
    return node.copy()


def _classes(program: Program, model: LoadedModel, scores: list[exp.Expr], link: str, dialect: str,
             threshold: float) -> None:
    """predicted_<label> and predicted_<label>_probs from the scores, by the link between them."""
    if link == "logistic":
        (positive,) = program.step([x.logistic(scores[0])], "p")
        probs = [x.minus(x.number(1.0), positive), positive]
    elif link == "fractions" and len(model.classes) == 2:
        probs = [x.minus(x.number(1.0), scores[0]), scores[0]]
    elif link == "fractions":
        probs = scores
    else:
        (largest,) = program.step([x.greatest(*[s.copy() for s in scores])], "m")
        shifted = program.step([x.safe_exp(x.minus(s, largest.copy())) for s in scores], "e")
        total = x.balanced_sum([e.copy() for e in shifted])
        probs = program.step([x.divide(e, total.copy()) for e in shifted], "p")
    labels = [x.literal(c, model.info.label_type) for c in model.classes]
    if len(probs) == 2:
        decided = x.if_(exp.GTE(this=probs[1].copy(), expression=x.number(threshold)), labels[1], labels[0])
    else:
        decided = x.case([(_largest(probs, k), labels[k]) for k in range(len(probs) - 1)], labels[-1])
    name = output_schema(model.info).names[0]
    items = [[("label", label.copy()), ("prob", p.copy())] for label, p in zip(labels, probs)]
    program.outputs += [(name, decided), (f"{name}_probs", x.struct_list(items, dialect))]


def _largest(values: list[exp.Expr], k: int) -> exp.Expr:
    """Whether ``values[k]`` is the first largest (numpy's argmax): above every earlier one, at least every
    later one."""
    tests = [exp.GT(this=values[k].copy(), expression=v.copy()) for v in values[:k]]
    tests += [exp.GTE(this=values[k].copy(), expression=v.copy()) for v in values[k + 1:]]
    return exp.and_(*tests)


def _values(program: Program, model: LoadedModel, scores: list[exp.Expr]) -> None:
    mean, std = model.target_scale
    value = scores[0]
    if (mean, std) != (0.0, 1.0):
        value = x.plus(x.times(value, x.number(std)), x.number(mean))
    program.outputs.append((output_schema(model.info).names[0], value))


def _clusters(program: Program, model: LoadedModel, inputs: Inputs, dialect: str) -> None:
    """centroid_id and nearest_centroids_distance: each distance, each centroid's rank (ties: the lower
    number first, as numpy's argsort of a few values), then the centroids in rank order."""
    centers = model.estimator.cluster_centers_
    squares = []
    for center in centers:
        terms = []
        for c, block in inputs.blocks():
            if c["kind"] == "numeric":
                gap = x.minus(inputs.numeric(c), x.number(center[block.start]))
                terms.append(x.times(gap, gap.copy()))
            else:  # (one-hot − center)² summed over the block: Σ center² + (1 − 2·center of the row's category)
                part = center[block]
                row_part = inputs.lookup(c, [1.0 - 2.0 * v for v in part])
                terms.append(x.plus(x.number(float(np.sum(part ** 2))), row_part))
        squares.append(x.balanced_sum(terms))
    distances = program.step([exp.Sqrt(this=x.greatest(s, x.number(0.0))) for s in squares], "d")
    ranks = program.step([_rank(distances, k) for k in range(len(distances))], "r")

    def at(position: int, values: t.Sequence[exp.Expr]) -> exp.Expr:
        return x.case([(exp.EQ(this=r.copy(), expression=x.integer(position)), v.copy())
                       for r, v in zip(ranks[:-1], values[:-1])], values[-1].copy())
    ids = [exp.cast(x.integer(k + 1), exp.DataType.build("bigint")) for k in range(len(distances))]
    nearest = [[("centroid_id", at(p, ids)), ("distance", at(p, distances))] for p in range(len(distances))]
    program.outputs += [("centroid_id", at(0, ids)), ("nearest_centroids_distance", x.struct_list(nearest, dialect))]


def _rank(distances: list[exp.Expr], k: int) -> exp.Expr:
    """How many centroids come before centroid ``k``: nearer, or as near with a lower number."""
    before = [x.if_(exp.LT(this=d.copy(), expression=distances[k].copy()) if j > k else
                    exp.LTE(this=d.copy(), expression=distances[k].copy()), x.integer(1), x.integer(0))
              for j, d in enumerate(distances) if j != k]
    return x.balanced_sum(before) if before else x.integer(0)
