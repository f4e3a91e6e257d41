"""BigQuery's preprocessing functions in plain SELECTs (outside TRANSFORM): each equals the same function
inside a TRANSFORM (through ML.TRANSFORM, on the same rows) and an independent NumPy / pandas /
scikit-learn computation; BigQuery's reference examples give BigQuery's documented output; ML.TRANSFORM
and plain SELECTs return ONE_HOT_ENCODER / FEATURE_CROSS / POLYNOMIAL_EXPAND in BigQuery's shapes.

Reference pages (https://cloud.google.com/bigquery/docs/reference/standard-sql/<page>), named per case:
bigqueryml-syntax-standard-scaler, -min-max-scaler, -max-abs-scaler, -robust-scaler, -quantile-bucketize,
-bucketize, -imputer, -label-encoder, -one-hot-encoder, -feature-cross, -polynomial-expand.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.preprocessing import KBinsDiscretizer

import sqlml
from sqlml import datasets
from sqlml.sql.transform_functions import TransformError

PEN = """CREATE TABLE pen AS SELECT row_number() OVER (ORDER BY species, island, bill_length_mm, bill_depth_mm,
    flipper_length_mm, body_mass_g, sex) AS id, *,
    CASE WHEN id % 7 = 0 THEN NULL ELSE bill_length_mm END AS bill_n,   -- NULLs to scale and impute
    bill_depth_mm - 17 AS depth_c                                        -- negative values too
    FROM penguins WHERE body_mass_g IS NOT NULL"""


def _vocabulary(values: pd.Series, top_k: int, threshold: int) -> list[str]:
    """BigQuery's documented rule, by pandas: the top_k most frequent (ties to the smaller value)
    seen at least ``threshold`` times, sorted alphabetically."""
    counts = values.dropna().value_counts()
    ranked = sorted(counts.items(), key=lambda vc: (-vc[1], vc[0]))[:top_k]
    return sorted(v for v, n in ranked if n >= threshold)


def _encode(values: pd.Series, vocabulary: list[str]) -> list[int]:
    return [vocabulary.index(v) + 1 if v in vocabulary else 0 for v in values]


def _quantile_bins(x: pd.Series, n: int) -> list:
    bins = KBinsDiscretizer(n_bins=n, encode="ordinal", strategy="quantile", quantile_method="linear")
    bins.fit(x.dropna().to_numpy().reshape(-1, 1))
    codes = bins.transform(x.fillna(0).to_numpy().reshape(-1, 1))[:, 0].astype(int)
    return [None if pd.isna(v) else f"bin_{c + 1}" for v, c in zip(x, codes)]


def _bucketize(x: pd.Series, splits: list[float]) -> list:
    return [None if pd.isna(v) else f"bin_{np.searchsorted(splits, v, side='right') + 1}" for v in x]


def _cross(d: pd.DataFrame, fields: list[str], degree: int) -> list:
    combos = [c for size in range(2, degree + 1) for c in itertools.combinations(fields, size)]
    return [{"_".join(c): (None if any(pd.isna(row[f]) for f in c) else "_".join(row[f] for f in c)) for c in combos}
            for _, row in d.iterrows()]


def _poly(d: pd.DataFrame, fields: dict[str, str], degree: int) -> list:
    """Every product of up to ``degree`` fields, named in the STRUCT's field order; the fields of the
    output sorted by name, as the reference's example shows them."""
    combos = [c for size in range(1, degree + 1) for c in itertools.combinations_with_replacement(fields, size)]
    return [dict(sorted({"_".join(c): float(np.prod([row[fields[f]] for f in c])) for c in combos}.items()))
            for _, row in d.iterrows()]


def _robust(x: pd.Series, low: float, high: float, center: bool) -> pd.Series:
    q_low, median, q_high = np.nanpercentile(x, [low, 50, high])
    return (x - (median if center else 0)) / (q_high - q_low)


#: (TRANSFORM/SELECT expression, its reference page, the independent computation on the pandas frame).
CASES = {
    "standard": ("ML.STANDARD_SCALER(bill_n) OVER ()", "standard-scaler",
                 lambda d: (d.bill_n - d.bill_n.mean()) / d.bill_n.std(ddof=1)),
    "min_max": ("ML.MIN_MAX_SCALER(bill_n) OVER ()", "min-max-scaler",
                lambda d: (d.bill_n - d.bill_n.min()) / (d.bill_n.max() - d.bill_n.min())),
    "max_abs": ("ML.MAX_ABS_SCALER(depth_c) OVER ()", "max-abs-scaler", lambda d: d.depth_c / d.depth_c.abs().max()),
    "robust": ("ML.ROBUST_SCALER(bill_n) OVER ()", "robust-scaler", lambda d: _robust(d.bill_n, 25, 75, True)),
    "robust_args": ("ML.ROBUST_SCALER(bill_n, [10, 90], FALSE, TRUE) OVER ()", "robust-scaler",
                    lambda d: _robust(d.bill_n, 10, 90, False)),
    "quantile_bins": ("ML.QUANTILE_BUCKETIZE(bill_n, 5) OVER ()", "quantile-bucketize",
                      lambda d: _quantile_bins(d.bill_n, 5)),
    "buckets": ("ML.BUCKETIZE(bill_n, [35, 40, 45, 50])", "bucketize", lambda d: _bucketize(d.bill_n, [35, 40, 45, 50])),
    "inner_buckets": ("ML.BUCKETIZE(bill_n, [35, 40, 45, 50], TRUE)", "bucketize",
                      lambda d: _bucketize(d.bill_n, [40, 45])),
    "mean": ("ML.IMPUTER(bill_n, 'mean') OVER ()", "imputer", lambda d: d.bill_n.fillna(d.bill_n.mean())),
    "median": ("ML.IMPUTER(bill_n, 'median') OVER ()", "imputer", lambda d: d.bill_n.fillna(d.bill_n.median())),
    "mode": ("ML.IMPUTER(sex, 'most_frequent') OVER ()", "imputer", lambda d: d.sex.fillna(d.sex.mode()[0])),
    "labels": ("ML.LABEL_ENCODER(island, 2, 60) OVER ()", "label-encoder",
               lambda d: _encode(d.island, _vocabulary(d.island, 2, 60))),
    "dummy": ("ML.ONE_HOT_ENCODER(island, 'most_frequent') OVER ()", "one-hot-encoder",
              lambda d: [[{"index": i, "value": 0.0 if v == d.island.mode()[0] else 1.0}]
                         for v, i in zip(d.island, _encode(d.island, _vocabulary(d.island, 32000, 5)))]),
    "one_hot_top": ("ML.ONE_HOT_ENCODER(sex, 'none', 1, 1) OVER ()", "one-hot-encoder",
                    lambda d: [[{"index": i, "value": 1.0}] for i in _encode(d.sex, _vocabulary(d.sex, 1, 1))]),
    "cross": ("ML.FEATURE_CROSS(STRUCT(species, island, sex), 3)", "feature-cross",
              lambda d: _cross(d, ["species", "island", "sex"], 3)),
    "poly": ("ML.POLYNOMIAL_EXPAND(STRUCT(bill_length_mm AS b, bill_depth_mm AS a), 3)", "polynomial-expand",
             lambda d: _poly(d, {"b": "bill_length_mm", "a": "bill_depth_mm"}, 3)),
}


@pytest.fixture(scope="module")
def outputs():
    """(input rows, plain SELECT output, ML.TRANSFORM output) of every case, one model for all."""
    conn = sqlml.connect(progress=lambda message: None)
    datasets.load(conn.duckdb, "penguins")
    conn.sql(PEN)
    items = ", ".join(f"{sql} AS {name}" for name, (sql, _, _) in CASES.items())
    conn.sql(f"""CREATE MODEL every TRANSFORM ({items}, body_mass_g)
        OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g'], data_split_method = 'NO_SPLIT')
        AS SELECT * FROM pen""")
    data = conn.sql("SELECT * FROM pen ORDER BY id").df()
    plain = conn.sql(f"SELECT id, {items} FROM pen ORDER BY id").df()
    transformed = conn.sql("SELECT * FROM ML.TRANSFORM(MODEL every, TABLE pen) ORDER BY id").df()
    yield data, plain, transformed
    conn.close()


def _values(column: pd.Series) -> list:
    """Comparable Python values: NaN as None, arrays as lists."""
    return [None if not isinstance(v, (list, dict, np.ndarray)) and pd.isna(v) else
            list(v) if isinstance(v, np.ndarray) else v for v in column]


@pytest.mark.parametrize("name", list(CASES))
def test_plain_select_equals_transform_and_independent_computation(outputs, name):
    """Reference page: bigqueryml-syntax-<CASES[name][1]>."""
    data, plain, transformed = outputs
    expected = CASES[name][2](data)
    assert _values(plain[name]) == _values(transformed[name])
    got = _values(plain[name])
    if isinstance(expected, pd.Series) and pd.api.types.is_float_dtype(expected):
        np.testing.assert_allclose(np.array(got, dtype=float), expected.to_numpy(dtype=float), rtol=1e-12, atol=1e-12)
    elif name == "poly":
        assert [list(v) for v in got] == [list(v) for v in expected]  # fields ordered by name, as BigQuery's
        np.testing.assert_allclose([list(v.values()) for v in got], [list(v.values()) for v in expected], rtol=1e-12)
    else:
        assert got == _values(pd.Series(expected, dtype=object))


def test_output_types_are_bigquerys(penguins):
    """One column per call, named by its alias: ONE_HOT_ENCODER an ARRAY<STRUCT<index INT64, value FLOAT64>>,
    FEATURE_CROSS a STRUCT of STRINGs, POLYNOMIAL_EXPAND a STRUCT of FLOAT64s, LABEL_ENCODER an integer
    (bigqueryml-syntax-one-hot-encoder, -feature-cross, -polynomial-expand, -label-encoder)."""
    relation = penguins.sql("""SELECT ML.ONE_HOT_ENCODER(island) OVER () AS o,
        ML.FEATURE_CROSS(STRUCT(species, island)) AS c, ML.POLYNOMIAL_EXPAND(STRUCT(bill_length_mm AS l)) AS p,
        ML.STANDARD_SCALER(bill_length_mm) OVER () AS z FROM penguins""")
    assert relation.columns == ["o", "c", "p", "z"]
    assert [str(t) for t in relation.types] == ["STRUCT(\"index\" BIGINT, \"value\" DOUBLE)[]",
                                                "STRUCT(species_island VARCHAR)",
                                                "STRUCT(l DOUBLE, l_l DOUBLE)", "DOUBLE"]


@pytest.fixture
def bigquery():
    connection = sqlml.connect(dialect="bigquery", progress=lambda message: None)
    yield connection
    connection.close()


@pytest.mark.parametrize("sql, expected", [
    # bigqueryml-syntax-standard-scaler: [1..5] → ±1.2649, ±0.6325, 0.
    ("SELECT f, ML.STANDARD_SCALER(f) OVER() AS output FROM UNNEST([1,2,3,4,5]) AS f ORDER BY f",
     [(1, -1.2649110640673518), (2, -0.6324555320336759), (3, 0.0), (4, 0.6324555320336759), (5, 1.2649110640673518)]),
    # bigqueryml-syntax-min-max-scaler.
    ("SELECT f, ML.MIN_MAX_SCALER(f) OVER() AS output FROM UNNEST([1,2,3,4,5]) AS f ORDER BY f",
     [(1, 0.0), (2, 0.25), (3, 0.5), (4, 0.75), (5, 1.0)]),
    # bigqueryml-syntax-max-abs-scaler.
    ("SELECT f, ML.MAX_ABS_SCALER(f) OVER() AS output FROM UNNEST([NULL, -3, 1, 2, 3, 4, 5]) AS f ORDER BY f",
     [(None, None), (-3, -0.6), (1, 0.2), (2, 0.4), (3, 0.6), (4, 0.8), (5, 1.0)]),
    # bigqueryml-syntax-imputer, both examples.
    ("SELECT f, ML.IMPUTER(f, 'mean') OVER () AS output FROM UNNEST([NULL, -3, -3, -3, 1, 2, 3, 4, 5]) AS f ORDER BY f",
     [(None, 0.75)] + [(-3, -3.0)] * 3 + [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, 5.0)]),
    ("SELECT f, ML.IMPUTER(f, 'most_frequent') OVER () AS output FROM UNNEST([NULL, NULL, 'a', 'a', 'b', 'b', 'c', "
     "'c', 'c']) AS f ORDER BY f", [(None, "c")] * 2 + [("a", "a")] * 2 + [("b", "b")] * 2 + [("c", "c")] * 3),
    # bigqueryml-syntax-bucketize.
    ("SELECT ML.BUCKETIZE(2.5, [1, 2, 3]) AS bucket, ML.BUCKETIZE(2.5, [1, 2, 3], TRUE) AS bucket_without_boundaries",
     [("bin_3", "bin_2")]),
    # bigqueryml-syntax-label-encoder: top_k 2 and frequency_threshold 2 over [NULL, a, b, b, c, c, c, d, d].
    ("SELECT f, ML.LABEL_ENCODER(f, 2, 2) OVER () AS output FROM UNNEST([NULL, 'a', 'b', 'b', 'c', 'c', 'c', 'd', "
     "'d']) AS f ORDER BY f", [(None, 0), ("a", 0), ("b", 1), ("b", 1), ("c", 2), ("c", 2), ("c", 2), ("d", 0),
                               ("d", 0)]),
    # bigqueryml-syntax-one-hot-encoder: dummy encoding, the most frequent (c) has value 0.0, NULL index 0.
    ("SELECT f, ML.ONE_HOT_ENCODER(f, 'most_frequent', 10, 0) OVER () AS output "
     "FROM UNNEST([NULL, 'a', 'b', 'b', 'c', 'c', 'c', 'd', 'd']) AS f ORDER BY f",
     [(None, [{"index": 0, "value": 1.0}]), ("a", [{"index": 1, "value": 1.0}])]
     + [("b", [{"index": 2, "value": 1.0}])] * 2 + [("c", [{"index": 3, "value": 0.0}])] * 3
     + [("d", [{"index": 4, "value": 1.0}])] * 2),
    # bigqueryml-syntax-feature-cross.
    ("SELECT ML.FEATURE_CROSS(STRUCT('a' AS f1, 'b' AS f2, 'c' AS f3)) AS output",
     [({"f1_f2": "a_b", "f1_f3": "a_c", "f2_f3": "b_c"},)]),
    # bigqueryml-syntax-polynomial-expand.
    ("SELECT ML.POLYNOMIAL_EXPAND(STRUCT(2 AS f1, 3 AS f2)) AS output",
     [({"f1": 2.0, "f1_f1": 4.0, "f1_f2": 6.0, "f2": 3.0, "f2_f2": 9.0},)]),
])
def test_reference_examples_in_the_bigquery_dialect(bigquery, sql, expected):
    """Written as the reference pages write them, read as BigQuery SQL (ORDER BY puts NULL first)."""
    assert bigquery.sql(sql).fetchall() == expected


def test_quantile_bucketize_reference_example_uses_exact_quantiles(bigquery):
    """bigqueryml-syntax-quantile-bucketize shows 2 in bin_2 (APPROX_QUANTILES); sqlml's exact linear
    quantiles of [1..5] in 3 buckets are 2.33 and 3.67, so 2 is in bin_1 (documented deviation)."""
    rows = bigquery.sql("SELECT f, ML.QUANTILE_BUCKETIZE(f, 3) OVER() AS bucket FROM UNNEST([1,2,3,4,5]) AS f "
                        "ORDER BY f").fetchall()
    edges = np.quantile([1, 2, 3, 4, 5], [1 / 3, 2 / 3])
    assert rows == [(f, f"bin_{np.searchsorted(edges, f, side='right') + 1}") for f in range(1, 6)]
    assert [b for _, b in rows] == ["bin_1", "bin_1", "bin_2", "bin_3", "bin_3"]


def test_statistics_come_from_the_selects_own_input_rows(penguins):
    """OVER () windows over the rows after FROM, WHERE and GROUP BY, before DISTINCT, ORDER BY and LIMIT."""
    data = penguins.sql("SELECT * FROM penguins").df()
    adelie = data[data.species == "Adelie"].bill_length_mm
    rows = penguins.sql("""SELECT bill_length_mm, ML.STANDARD_SCALER(bill_length_mm) OVER () AS z FROM penguins
        WHERE species = 'Adelie' AND bill_length_mm IS NOT NULL ORDER BY bill_length_mm LIMIT 3""").fetchall()
    expected = (np.sort(adelie.dropna())[:3] - adelie.mean()) / adelie.std(ddof=1)
    np.testing.assert_allclose([z for _, z in rows], expected, rtol=1e-12)
    grouped = penguins.sql("""SELECT species, ML.MIN_MAX_SCALER(avg(body_mass_g)) OVER () AS m FROM penguins
        GROUP BY species ORDER BY species""").fetchall()
    means = data.groupby("species").body_mass_g.mean().sort_index()
    np.testing.assert_allclose([m for _, m in grouped], (means - means.min()) / (means.max() - means.min()))


def test_ctes_joins_and_chained_scalers(penguins):
    """A CTE's call is computed over the CTE's rows, a later call over the rows that read it; qualified
    columns of a join are the argument as written."""
    rows = penguins.sql("""
        WITH z AS (SELECT rowid AS r, ML.STANDARD_SCALER(body_mass_g) OVER () AS zm FROM penguins
                   WHERE body_mass_g IS NOT NULL),
             big AS (SELECT r, zm FROM z WHERE zm > 0)
        SELECT big.r, ML.MAX_ABS_SCALER(big.zm * p.flipper_length_mm) OVER () AS v
        FROM big JOIN (SELECT rowid AS r, flipper_length_mm FROM penguins) AS p ON big.r = p.r ORDER BY big.r""").df()
    data = penguins.sql("SELECT rowid AS r, body_mass_g, flipper_length_mm FROM penguins ORDER BY r").df()
    mass = data.body_mass_g
    data["zm"] = (mass - mass.mean()) / mass.std(ddof=1)
    kept = data[data.zm > 0]
    product = kept.zm * kept.flipper_length_mm
    np.testing.assert_array_equal(rows.r, kept.r)
    np.testing.assert_allclose(rows.v, product / product.abs().max(), rtol=1e-12)


def test_inside_and_around_ml_calls(penguins):
    """In an ML.PREDICT input, the statistics come from that input's rows; around it, from its output."""
    penguins.sql("""CREATE MODEL lm OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g'],
        data_split_method = 'NO_SPLIT') AS SELECT bill_length_mm, body_mass_g FROM penguins
        WHERE body_mass_g IS NOT NULL""")
    rows = penguins.sql("""SELECT bill_length_mm, ML.STANDARD_SCALER(predicted_body_mass_g) OVER () AS z
        FROM ML.PREDICT(MODEL lm, (SELECT ML.IMPUTER(bill_length_mm, 'median') OVER () AS bill_length_mm
                                   FROM penguins)) ORDER BY bill_length_mm""").df()
    bill = penguins.sql("SELECT bill_length_mm FROM penguins").df().bill_length_mm
    filled = np.sort(bill.fillna(bill.median()).to_numpy())
    np.testing.assert_allclose(rows.bill_length_mm, filled)
    # A linear model's predictions are affine in its one feature, so their z-scores are the feature's.
    np.testing.assert_allclose(rows.z, (filled - filled.mean()) / filled.std(ddof=1), rtol=1e-9, atol=1e-12)


def test_ties_and_thresholds_of_the_vocabulary(conn):
    """top_k keeps the most frequent, a tie going to the alphabetically smaller value; frequency_threshold
    drops the rare ones; the vocabulary is then alphabetical (bigqueryml-syntax-label-encoder, -one-hot-encoder)."""
    conn.sql("CREATE TABLE v AS SELECT * FROM (VALUES ('d'), ('d'), ('d'), ('c'), ('c'), ('b'), ('b'), ('a'), (NULL)) t(s)")
    rows = conn.sql("""SELECT s, ML.LABEL_ENCODER(s, 2, 1) OVER () AS top2, ML.LABEL_ENCODER(s, 9, 2) OVER () AS freq2,
        ML.ONE_HOT_ENCODER(s, 'most_frequent', 3, 2) OVER () AS dummy FROM v ORDER BY s""").fetchall()
    frame = pd.DataFrame({"s": ["a", "b", "b", "c", "c", "d", "d", "d", None]})
    assert [r[1] for r in rows] == _encode(frame.s, _vocabulary(frame.s, 2, 1)) == [0, 1, 1, 0, 0, 2, 2, 2, 0]  # b beats c
    assert [r[2] for r in rows] == _encode(frame.s, _vocabulary(frame.s, 9, 2)) == [0, 1, 1, 2, 2, 3, 3, 3, 0]
    assert [(r[3][0]["index"], r[3][0]["value"]) for r in rows] == \
        [(0, 1.0), (1, 1.0), (1, 1.0), (2, 1.0), (2, 1.0), (3, 0.0), (3, 0.0), (3, 0.0), (0, 1.0)]


def test_row_wise_functions_in_a_view(penguins):
    """BUCKETIZE, FEATURE_CROSS and POLYNOMIAL_EXPAND need no statistics, so a view may hold them."""
    penguins.sql("""CREATE VIEW shaped AS SELECT ML.BUCKETIZE(bill_length_mm, [40, 50]) AS b,
        ML.FEATURE_CROSS(STRUCT(species, island)) AS c FROM penguins""")
    got = penguins.sql("SELECT b, c.species_island FROM shaped").fetchall()
    data = penguins.sql("SELECT bill_length_mm, species, island FROM penguins").df()
    assert got == list(zip(_bucketize(data.bill_length_mm, [40, 50]), data.species + "_" + data.island))


@pytest.mark.parametrize("sql, message", [
    ("SELECT ML.STANDARD_SCALER(bill_length_mm) FROM penguins",
     "ML.STANDARD_SCALER is an analytic function: write ML.STANDARD_SCALER(...) OVER ()."),
    ("SELECT ML.ONE_HOT_ENCODER(island) OVER (PARTITION BY species) FROM penguins",
     "ML.ONE_HOT_ENCODER takes an empty OVER (): statistics come from all rows."),
    ("SELECT ML.MIN_MAX_SCALER(bill_length_mm) OVER (ORDER BY year) FROM penguins", "takes an empty OVER ()"),
    ("SELECT ML.BUCKETIZE(bill_length_mm, [40]) OVER () FROM penguins",
     "ML.BUCKETIZE is not an analytic function: drop its OVER ()."),
    ("SELECT ML.MULTI_HOT_ENCODER(island) OVER () FROM penguins", "ML.MULTI_HOT_ENCODER is not a function sqlml knows"),
    ("SELECT ML.STANDARD_SCALER(ML.IMPUTER(bill_length_mm, 'mean') OVER ()) OVER () FROM penguins",
     "argument of ML.STANDARD_SCALER cannot be an analytic function"),
    ("CREATE VIEW scaled AS SELECT ML.STANDARD_SCALER(bill_length_mm) OVER () AS z FROM penguins",
     "ML.STANDARD_SCALER cannot be used inside CREATE VIEW"),
    ("SELECT ML.IMPUTER(bill_length_mm, 'mode') OVER () FROM penguins", "'mean', 'median' or 'most_frequent'"),
])
def test_errors(penguins, sql, message):
    with pytest.raises(TransformError) as error:
        penguins.sql(sql)
    assert message in str(error.value)


def test_model_still_trains_on_numeric_parts(conn):
    """ML.TRANSFORM shows POLYNOMIAL_EXPAND as one STRUCT, but the model is fitted on its terms as
    separate numeric features: predictions equal scikit-learn's on the hand-made terms."""
    conn.sql("CREATE TABLE d AS SELECT i, i / 10 AS a, (i * 7 % 11) / 3 AS b, i % 5 + (i * 7 % 11) / 3 AS y "
             "FROM range(40) t(i)")
    conn.sql("""CREATE MODEL poly TRANSFORM (ML.POLYNOMIAL_EXPAND(STRUCT(a, b)) AS p, y)
        OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'], data_split_method = 'NO_SPLIT')
        AS SELECT * FROM d""")
    data = conn.sql("SELECT * FROM d ORDER BY i").df()
    X = np.column_stack([data.a, data.a ** 2, data.a * data.b, data.b, data.b ** 2])
    expected = LinearRegression().fit(X, data.y).predict(X)
    got = conn.sql("SELECT predicted_y FROM ML.PREDICT(MODEL poly, TABLE d) ORDER BY i").df().predicted_y
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    features = [r[0] for r in conn.sql("SELECT input FROM ML.FEATURE_INFO(MODEL poly)").fetchall()]
    assert sorted(features) == ["p_a", "p_a_a", "p_a_b", "p_b", "p_b_b"]
    assert conn.sql("SELECT p FROM ML.TRANSFORM(MODEL poly, TABLE d) ORDER BY i LIMIT 1").fetchall() == \
        [({"a": 0.0, "a_a": 0.0, "a_b": 0.0, "b": 0.0, "b_b": 0.0},)]


def test_in_a_training_query(conn):
    """Outside TRANSFORM the statistics are not kept with the model (BigQuery's rule): the training query's
    calls are computed over its rows once, and the model equals scikit-learn's on the scaled feature."""
    conn.sql("CREATE TABLE d AS SELECT i, i * 3.5 + 1 AS x, (i * 7 % 11) + i / 2 AS y FROM range(30) t(i)")
    conn.sql("""CREATE MODEL scaled OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],
        data_split_method = 'NO_SPLIT') AS SELECT ML.STANDARD_SCALER(x) OVER () AS z, y FROM d""")
    data = conn.sql("SELECT * FROM d ORDER BY i").df()
    z = (data.x - data.x.mean()) / data.x.std(ddof=1)
    fitted = LinearRegression().fit(z.to_numpy().reshape(-1, 1), data.y)
    got = conn.sql("SELECT predicted_y FROM ML.PREDICT(MODEL scaled, (SELECT 0.5 AS z))").fetchall()[0][0]
    assert got == pytest.approx(fitted.predict([[0.5]])[0], rel=1e-9)
