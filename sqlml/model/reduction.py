"""PCA and autoencoder models: the reduced columns ML.PREDICT returns, reconstructions and their errors.

Both work in the preprocessed feature space (numbers standardized unless ``scale_features = FALSE``,
categories one-hot): a row's reconstruction error compares its features with their reconstruction
(PCA: projection onto the components and back; autoencoder: the network's output).

* PCA's ML.PREDICT columns are ``principal_component_1`` … (the scores), BigQuery's names.
* An autoencoder's are ``latent_col_1`` …: the activations of its narrowest hidden layer.
"""

from __future__ import annotations

import numpy as np

from .kinds import PCA

ACTIVATIONS = {"identity": lambda x: x, "relu": lambda x: np.maximum(x, 0.0), "tanh": np.tanh,
               "logistic": lambda x: 1.0 / (1.0 + np.exp(-x))}


def column_names(family: str, options: dict, defaults: dict) -> list[str]:
    """ML.PREDICT's reduced columns of a version, from its stored options (PCA's component count is
    recorded when the fit chose it)."""
    if family == PCA:
        return [f"principal_component_{j + 1}" for j in range(options["num_principal_components"])]
    width = min(options.get("hidden_units", defaults["hidden_units"]))
    return [f"latent_col_{j + 1}" for j in range(width)]


def reduce(family: str, estimator, X: np.ndarray) -> np.ndarray:
    """The reduced columns of each row of the feature matrix ``X``."""
    if family == PCA:
        return estimator.transform(X)
    return _latent(estimator, X)


def reconstruct(family: str, estimator, X: np.ndarray) -> np.ndarray:
    if family == PCA:
        return estimator.inverse_transform(estimator.transform(X))
    return estimator.predict(X)


def _latent(network, X: np.ndarray) -> np.ndarray:
    """The activations of the network's narrowest hidden layer (the first, when several are as narrow)."""
    bottleneck = int(np.argmin(network.hidden_layer_sizes))
    activation = ACTIVATIONS[network.activation]
    hidden = X
    for layer in range(bottleneck + 1):
        hidden = activation(hidden @ network.coefs_[layer] + network.intercepts_[layer])
    return hidden


def row_errors(X: np.ndarray, rebuilt: np.ndarray) -> dict[str, np.ndarray]:
    """Each row's reconstruction errors, BigQuery's ML.RECONSTRUCTION_LOSS columns (the squared log
    error is NaN for a row with a value below −1, where the log is undefined)."""
    difference = X - rebuilt
    with np.errstate(invalid="ignore"):
        log_difference = np.log1p(np.where(X > -1, X, np.nan)) - np.log1p(np.where(rebuilt > -1, rebuilt, np.nan))
    return {"mean_absolute_error": np.abs(difference).mean(axis=1),
            "mean_squared_error": (difference ** 2).mean(axis=1),
            "mean_squared_log_error": (log_difference ** 2).mean(axis=1)}


def evaluation(family: str, estimator, X: np.ndarray) -> dict:
    """ML.EVALUATE's row: PCA's ``total_explained_variance_ratio`` on these rows (one minus the share of their
    variance about the training mean the components leave out: on the training rows, the sum of
    explained_variance_ratio_), an autoencoder's mean reconstruction errors."""
    rebuilt = reconstruct(family, estimator, X)
    if family == PCA:
        total = np.sum((X - estimator.mean_) ** 2)
        return {"total_explained_variance_ratio": 1.0 - np.sum((X - rebuilt) ** 2) / total if total else None}
    means = {name: float(np.mean(values)) for name, values in row_errors(X, rebuilt).items()}
    return {name: value if np.isfinite(value) else None for name, value in means.items()}
