"""Model kinds: what a model type decides, and labels judged by their type."""

import warnings

import numpy as np
from sklearn.linear_model import LinearRegression

TABLE = """CREATE TABLE prices AS
           SELECT i % 7 AS x1, (i % 11) / 3.0 AS x2, CAST((2 * (i % 7) + (i * i) % 37) / 4 AS DECIMAL(10, 2)) AS y
           FROM range(200) AS r(i)"""


def test_linear_reg_on_a_decimal_label_is_a_regression_without_warnings(conn):
    """A DECIMAL label is a number: it is checked as a regression target (not as classes) and
    the model equals scikit-learn's LinearRegression on the same rows."""
    conn.sql(TABLE)
    assert conn.sql("SELECT count(DISTINCT y) FROM prices").fetchall()[0][0] <= 50  # few enough to pass for classes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conn.sql("CREATE MODEL m OPTIONS (model_type = 'linear_reg', input_label_cols = ['y']) AS SELECT * FROM prices")
    ours = conn.sql("SELECT predicted_y FROM ML.PREDICT(MODEL m, (SELECT * FROM prices))").df().predicted_y
    frame = conn.sql("SELECT x1, x2, CAST(y AS DOUBLE) AS y FROM prices").df()
    expected = LinearRegression().fit(frame[["x1", "x2"]], frame.y).predict(frame[["x1", "x2"]])
    np.testing.assert_allclose(ours, expected, rtol=1e-9)
