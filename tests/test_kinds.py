"""Model kinds: what a model type decides, and labels judged by their type."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from sqlml.errors import OptionError
from sqlml.model import options as opts
from sqlml.model.kinds import MODEL_KINDS

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


def test_importing_the_kinds_loads_no_scikit_learn():
    probe = "import sys, sqlml.model.kinds, sqlml.model.options; print('sklearn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_each_kind_declares_only_real_options_and_searches_what_it_takes():
    for kind in MODEL_KINDS.values():
        assert set(kind.options) <= {n for n, o in opts.OPTIONS.items() if o.scope == opts.TAKEN}, kind.name
        assert set(kind.defaults) | set(kind.penalties) <= set(kind.options), kind.name
        assert set(kind.search_space) <= set(kind.options), kind.name
        assert all(opts.OPTIONS[n].tunable for n in kind.search_space), kind.name
        # the defaults are valid values (None: decided by the data, as PCA's component count)
        opts.validate({n: kind.default(n) for n in kind.options if kind.default(n) is not None}, kind.name)


def test_option_applicability_comes_from_the_kinds():
    assert opts.applies_to("max_tree_depth", opts.OPTIONS["max_tree_depth"]) == (
        "boosted_tree_classifier", "boosted_tree_regressor", "random_forest_classifier", "random_forest_regressor")
    # BigQuery documents num_parallel_tree for boosted trees too (sqlml.model.bigquery_options)
    assert opts.applies_to("num_parallel_tree", opts.OPTIONS["num_parallel_tree"]) == (
        "boosted_tree_classifier", "boosted_tree_regressor", "random_forest_classifier", "random_forest_regressor")
    with pytest.raises(OptionError, match="it applies to logistic_reg, boosted_tree_classifier, "
                                          "random_forest_classifier, dnn_classifier"):
        opts.validate({"auto_class_weights": True}, "linear_reg")
