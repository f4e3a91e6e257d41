"""TRANSFORM clause: fitted statistics, exact replay, ML.TRANSFORM and views, against hand-made
numpy / scikit-learn pipelines on the same rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder

from conftest import same_predictions
from sqlml.errors import SqlmlError

CLEAN = """CREATE TABLE clean AS SELECT row_number() OVER (ORDER BY species, island, bill_length_mm, bill_depth_mm,
    flipper_length_mm, body_mass_g) AS id, * FROM penguins
    WHERE bill_length_mm IS NOT NULL AND bill_depth_mm IS NOT NULL AND body_mass_g IS NOT NULL"""

MODEL = """CREATE MODEL w
TRANSFORM (
    ML.STANDARD_SCALER(bill_length_mm) OVER () AS bill,
    ML.MIN_MAX_SCALER(flipper_length_mm) OVER () AS flipper,
    ML.QUANTILE_BUCKETIZE(bill_depth_mm, 4) OVER () AS depth_bin,
    ML.ONE_HOT_ENCODER(island, 'none', 32000, 1) OVER () AS island,
    body_mass_g
)
OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g'], data_split_method = 'NO_SPLIT')
AS SELECT * FROM clean"""


@pytest.fixture
def trained(penguins):
    penguins.sql(CLEAN)
    penguins.sql(MODEL)
    return penguins


def _columns(conn, sql: str) -> dict:
    return conn.sql(sql).fetchnumpy()


def _hand_pipeline(data: dict):
    """The same features built by hand: sample-stddev z-score (BigQuery's), min-max, sklearn's
    linear-quantile bins and one-hot encoding."""
    bill = (data["bill_length_mm"] - data["bill_length_mm"].mean()) / data["bill_length_mm"].std(ddof=1)
    flipper = data["flipper_length_mm"]
    flipper = (flipper - flipper.min()) / (flipper.max() - flipper.min())
    bins = KBinsDiscretizer(n_bins=4, encode="ordinal", strategy="quantile", quantile_method="linear")
    depth = bins.fit_transform(data["bill_depth_mm"].reshape(-1, 1))[:, 0].astype(int)
    island = OneHotEncoder(sparse_output=False).fit(data["island"].reshape(-1, 1))
    return bill, flipper, bins, depth, island


def test_transform_matches_hand_pipeline(trained):
    data = _columns(trained, "SELECT * FROM clean ORDER BY id")
    bill, flipper, bins, depth, island = _hand_pipeline(data)
    out = _columns(trained, "SELECT * FROM ML.TRANSFORM(MODEL w, TABLE clean) ORDER BY id")
    np.testing.assert_allclose(out["bill"], bill, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["flipper"], flipper, rtol=1e-12, atol=1e-12)
    assert list(out["depth_bin"]) == [f"bin_{k + 1}" for k in depth]
    # BigQuery's ONE_HOT_ENCODER shape: ARRAY<STRUCT<index, value>>, index the alphabetical position, 1-based
    # (https://cloud.google.com/bigquery/docs/reference/standard-sql/bigqueryml-syntax-one-hot-encoder).
    onehot = island.transform(data["island"].reshape(-1, 1))
    assert [list(v) for v in out["island"]] == [[{"index": int(k) + 1, "value": 1.0}] for k in onehot.argmax(axis=1)]
    assert not any(c.startswith("island_") for c in out)  # the model's per-category columns stay internal
    # Input columns pass through unchanged unless a TRANSFORM output reuses their name (island).
    np.testing.assert_array_equal(out["bill_length_mm"], data["bill_length_mm"])


def test_fitted_statistics_equal_numpy(trained):
    data = _columns(trained, "SELECT * FROM clean")
    model = trained.executor.load("w")
    stats = {i["name"]: i["statistics"] for i in model.transform["items"]}
    assert stats["bill"]["standard_scaler"]["mean"] == pytest.approx(data["bill_length_mm"].mean(), rel=1e-14)
    assert stats["bill"]["standard_scaler"]["stddev"] == pytest.approx(data["bill_length_mm"].std(ddof=1), rel=1e-13)
    assert stats["flipper"]["min_max_scaler"]["min"] == data["flipper_length_mm"].min()
    assert stats["flipper"]["min_max_scaler"]["max"] == data["flipper_length_mm"].max()
    bins = KBinsDiscretizer(n_bins=4, encode="ordinal", strategy="quantile", quantile_method="linear")
    bins.fit(data["bill_depth_mm"].reshape(-1, 1))
    np.testing.assert_allclose(stats["depth_bin"]["quantile_bucketize"]["split_points"], bins.bin_edges_[0][1:-1],
                               rtol=1e-14)
    assert stats["island_Biscoe"]["vocabulary"] == sorted(set(data["island"]))


def test_predictions_equal_hand_pipeline(trained):
    data = _columns(trained, "SELECT * FROM clean ORDER BY id")
    bill, flipper, bins, depth, island = _hand_pipeline(data)
    X = np.column_stack([bill, flipper, np.eye(4)[depth], island.transform(data["island"].reshape(-1, 1))])
    expected = LinearRegression().fit(X, data["body_mass_g"]).predict(X)
    got = _columns(trained, "SELECT id, predicted_body_mass_g FROM ML.PREDICT(MODEL w, TABLE clean) ORDER BY id")
    np.testing.assert_allclose(got["predicted_body_mass_g"], expected, rtol=1e-9)
    # EVALUATE replays the same TRANSFORM: its r2 is the hand pipeline's.
    r2 = trained.sql("SELECT r2_score FROM ML.EVALUATE(MODEL w, TABLE clean)").fetchall()[0][0]
    residual = ((data["body_mass_g"] - expected) ** 2).sum()
    assert r2 == pytest.approx(1 - residual / ((data["body_mass_g"] - data["body_mass_g"].mean()) ** 2).sum(), rel=1e-9)


def test_view_equals_eager_scoring(trained):
    trained.sql("CREATE VIEW scored AS SELECT * FROM ML.PREDICT(MODEL w, TABLE clean)")
    lazy = trained.sql("SELECT * FROM scored ORDER BY id").fetchall()
    eager = trained.sql("SELECT * FROM ML.PREDICT(MODEL w, TABLE clean) ORDER BY id").fetchall()
    assert same_predictions(lazy, eager)
    assert trained.sql("SELECT * FROM scored").columns == trained.sql("SELECT * FROM ML.PREDICT(MODEL w, TABLE clean)").columns


def test_predictions_do_not_need_the_training_table(trained):
    """The stored TRANSFORM scores by itself: dropping the table the model was trained on changes nothing
    (the training query is re-read only by what needs its rows, e.g. ML.GLOBAL_EXPLAIN)."""
    query = "SELECT id, predicted_body_mass_g FROM ML.PREDICT(MODEL w, TABLE kept) ORDER BY id"
    trained.sql("CREATE TABLE kept AS SELECT * FROM clean")
    before = trained.sql(query).fetchall()
    trained.sql("DROP TABLE clean")
    assert trained.sql(query).fetchall() == before


def test_prediction_input_without_label_and_unseen_values(trained):
    rows = trained.sql("""SELECT predicted_body_mass_g, island_Biscoe, island_Dream, island_Torgersen, flipper
        FROM ML.PREDICT(MODEL w, (SELECT 45.0 AS bill_length_mm, 500.0 AS flipper_length_mm, 17.0 AS bill_depth_mm,
                                          'Atlantis' AS island))""").fetchall()
    (prediction, *onehot, flipper), = rows
    assert onehot == [0.0, 0.0, 0.0]  # an island unseen at training is all zeros
    assert flipper == 1.0  # capped to [0, 1] like BigQuery's MIN_MAX_SCALER
    assert np.isfinite(prediction)


def test_functions_against_bigquery_examples(conn):
    """Values from BigQuery's documentation examples of each function."""
    conn.sql("""CREATE TABLE small AS SELECT * FROM (VALUES
        (1, NULL, -3.0, 'b', 1.0), (2, 'a', -3.0, 'b', 2.0), (3, 'b', -3.0, 'c', 3.0), (4, 'b', 1.0, 'c', 4.0),
        (5, 'c', 2.0, 'c', 5.0), (6, 'c', 3.0, 'x', 1.0), (7, 'c', 4.0, 'x', 2.0), (8, 'd', 5.0, 'x', 3.0),
        (9, 'd', NULL, 'x', 4.0)) AS t(id, f, g, s, y)""")
    conn.sql("""CREATE MODEL tiny TRANSFORM (
        ML.LABEL_ENCODER(f, 2, 2) OVER () AS f_code,
        ML.IMPUTER(g, 'mean') OVER () AS g_mean,
        ML.IMPUTER(g, 'median') OVER () AS g_median,
        ML.IMPUTER(s, 'most_frequent') OVER () AS s_mode,
        ML.MAX_ABS_SCALER(g) OVER () AS g_maxabs,
        ML.ROBUST_SCALER(g) OVER () AS g_robust,
        ML.BUCKETIZE(g, [0, 2, 4]) AS g_bucket,
        ML.BUCKETIZE(g, [0, 2, 4], TRUE) AS g_inner,
        ML.FEATURE_CROSS(STRUCT(f, s)) AS cross,
        ML.POLYNOMIAL_EXPAND(STRUCT(g AS a, y AS b)) AS poly,
        id % 2 = 0 AS even,
        y)
        OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'], data_split_method = 'NO_SPLIT')
        AS SELECT * FROM small""")
    out = conn.sql("SELECT * FROM ML.TRANSFORM(MODEL tiny, TABLE small) ORDER BY id").fetchnumpy()
    g = np.array([-3, -3, -3, 1, 2, 3, 4, 5, np.nan])
    # LABEL_ENCODER(f, 2, 2): vocabulary {b, c} (d ties b at 2 and loses alphabetically); others are 0.
    assert list(out["f_code"]) == [0, 0, 1, 1, 2, 2, 2, 0, 0]
    assert out["g_mean"][-1] == 0.75  # BigQuery's IMPUTER example
    assert out["g_median"][-1] == np.nanmedian(g)
    assert list(out["s_mode"]) == ["b", "b", "c", "c", "c", "x", "x", "x", "x"]
    np.testing.assert_allclose(out["g_maxabs"][:-1], g[:-1] / 5)
    q1, median, q3 = np.nanpercentile(g, [25, 50, 75])
    np.testing.assert_allclose(out["g_robust"][:-1], (g[:-1] - median) / (q3 - q1))
    assert list(out["g_bucket"][:-1]) == ["bin_1"] * 3 + ["bin_2", "bin_3", "bin_3", "bin_4", "bin_4"]
    assert out["g_bucket"].mask[-1]  # NULL stays NULL
    assert list(out["g_inner"][:-1]) == ["bin_1"] * 4 + ["bin_2", "bin_2", "bin_2", "bin_2"]
    # FEATURE_CROSS and POLYNOMIAL_EXPAND are one STRUCT each, fields named by the crossed features
    # (bigqueryml-syntax-feature-cross, bigqueryml-syntax-polynomial-expand).
    assert [c["f_s"] for c in out["cross"][:3]] == [None, "a_b", "b_c"] and list(out["cross"][0]) == ["f_s"]
    assert list(out["poly"][0]) == ["a", "a_a", "a_b", "b", "b_b"]
    np.testing.assert_allclose([p["a_b"] for p in out["poly"][:-1]], g[:-1] * out["y"][:-1])
    assert list(out["even"]) == [i % 2 == 0 for i in range(1, 10)]


def test_standard_scaler_bigquery_example(conn):
    conn.sql("CREATE TABLE five AS SELECT f, f * 2.0 AS y FROM range(1, 6) t(f)")
    conn.sql("""CREATE MODEL five_m TRANSFORM (ML.STANDARD_SCALER(f) OVER () AS z, y)
        OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'], data_split_method = 'NO_SPLIT')
        AS SELECT * FROM five""")
    z = [r[0] for r in conn.sql("SELECT z FROM ML.TRANSFORM(MODEL five_m, TABLE five) ORDER BY f").fetchall()]
    assert z == pytest.approx([-1.2649110640673518, -0.6324555320336759, 0.0, 0.6324555320336759, 1.2649110640673518],
                              rel=1e-15)


@pytest.mark.parametrize("transform, message", [
    ("ML.STANDARD_SCALER(bill_length_mm) OVER () AS bill", "label column 'body_mass_g' must come out of the TRANSFORM"),
    ("ML.STANDARD_SCALAR(bill_length_mm) OVER () AS bill, body_mass_g", "ML.STANDARD_SCALAR is not a preprocessing"),
    ("bill_length_mm + 1, body_mass_g", "needs a name"),
    ("ML.ONE_HOT_ENCODER(island) OVER () || 'x' AS i, body_mass_g", "must be a whole TRANSFORM item"),
    ("ML.IMPUTER(bill_length_mm, 'mode') OVER () AS b, body_mass_g", "'mean', 'median' or 'most_frequent'"),
    ("ML.QUANTILE_BUCKETIZE(bill_length_mm, 0) OVER () AS b, body_mass_g", "positive integer number of buckets"),
    ("ML.BUCKETIZE(bill_length_mm, [3, 1]) AS b, body_mass_g", "increasing order"),
    ("ML.STANDARD_SCALER(bill_length_mm) OVER (PARTITION BY island) AS b, body_mass_g", "empty OVER ()"),
    ("* EXCLUDE (nope)", "unknown column(s) nope"),
])
def test_transform_errors(penguins, transform, message):
    with pytest.raises(SqlmlError, match=message.replace("(", r"\(").replace(")", r"\)")):
        penguins.sql(f"""CREATE MODEL bad TRANSFORM ({transform})
            OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g']) AS SELECT * FROM penguins""")


def test_ml_transform_needs_a_transform_model(penguins):
    penguins.sql("""CREATE MODEL plain OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g'])
        AS SELECT bill_length_mm, body_mass_g FROM penguins WHERE body_mass_g IS NOT NULL""")
    with pytest.raises(SqlmlError, match="needs a model trained with a TRANSFORM clause"):
        penguins.sql("SELECT * FROM ML.TRANSFORM(MODEL plain, TABLE penguins)")


def test_prediction_input_missing_a_transform_column(trained):
    with pytest.raises(SqlmlError, match="missing column.*island"):
        trained.sql("SELECT * FROM ML.PREDICT(MODEL w, (SELECT bill_length_mm, flipper_length_mm, bill_depth_mm FROM clean))")


def test_example_runs(penguins):
    with open("examples/transform_penguins.sql") as f:
        penguins.sql(f.read())
    rows = penguins.sql("SELECT * FROM ML.TRANSFORM(MODEL penguin_weight_tf, TABLE penguins)").df()
    assert {"bill", "flipper", "depth_bin", "island", "cross", "recent"} <= set(rows.columns)
    assert set(rows["cross"][0]) == {"species_island"}
    assert rows["sex"].notna().all()  # imputed
