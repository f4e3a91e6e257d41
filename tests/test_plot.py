"""sqlml.plot: each picture renders to a PNG, and what it draws is the SQL function's rows."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import confusion_matrix as sk_confusion

import sqlml.plot

DATA = "SELECT *, sex = 'male' AS male, make_date(year, 6, 1) AS seen FROM penguins WHERE sex IS NOT NULL"
FEATURES = "bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, island"


@pytest.fixture
def trees(penguins):
    penguins.sql(f"""CREATE MODEL sexes OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['male'],
                     random_seed = 3) AS SELECT {FEATURES}, male FROM ({DATA}) WHERE year < 2009""")
    return penguins


def png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    return buffer.getvalue()


def model_line(figure) -> np.ndarray:
    (line,) = [ln for ln in figure.axes[0].get_lines() if ln.get_label().startswith("model")]
    return np.column_stack(line.get_data())


def test_roc_points_are_ml_roc_curve(trees):
    figure = sqlml.plot.roc(trees, "sexes", DATA)
    png(figure)
    curve = trees.sql(f"SELECT false_positive_rate, recall FROM ML.ROC_CURVE(MODEL sexes, ({DATA}))").fetchall()
    assert model_line(figure).tolist() == sorted(map(list, curve))
    auc = trees.sql(f"SELECT roc_auc FROM ML.EVALUATE(MODEL sexes, ({DATA}))").fetchall()[0][0]
    assert figure.axes[0].get_legend().get_texts()[1].get_text() == f"model roc_auc ({auc:.3f})"


def test_precision_recall_points_are_ml_roc_curve(trees):
    figure = sqlml.plot.precision_recall(trees, "sexes", DATA)
    png(figure)
    curve = trees.sql(f"SELECT recall, precision FROM ML.ROC_CURVE(MODEL sexes, ({DATA}))").fetchall()
    assert model_line(figure).tolist() == sorted(map(list, curve))
    truth = trees.sql(f"SELECT avg(male::INT) FROM ({DATA})").fetchall()[0][0]
    assert figure.axes[0].get_lines()[0].get_ydata()[0] == pytest.approx(truth)


def test_confusion_matrix_cells_are_counts(trees):
    trees.sql(f"CREATE TABLE held AS {DATA}")
    figure = sqlml.plot.confusion_matrix(trees, "sexes", "held")
    png(figure)
    scored = trees.sql("SELECT male, predicted_male FROM ML.PREDICT(MODEL sexes, TABLE held)").df()
    drawn = np.asarray(figure.axes[0].get_images()[0].get_array())
    assert drawn.tolist() == sk_confusion(scored.male, scored.predicted_male, labels=[False, True]).tolist()


def test_calibration_matches_scikit_learn(trees):
    figure = sqlml.plot.calibration(trees, "sexes", DATA, bins=5)
    png(figure)
    scored = trees.sql(f"SELECT male, predicted_male_probs[2].prob AS p FROM ML.PREDICT(MODEL sexes, ({DATA}))").df()
    observed, predicted = calibration_curve(scored.male, scored.p, n_bins=5, strategy="uniform")
    np.testing.assert_allclose(model_line(figure), np.column_stack([predicted, observed]), rtol=1e-12)


def test_feature_importance_bars_are_gains(trees):
    figure = sqlml.plot.feature_importance(trees, "sexes")
    png(figure)
    gains = dict(trees.sql("SELECT feature, importance_gain FROM ML.FEATURE_IMPORTANCE(MODEL sexes)").fetchall())
    bars = figure.axes[0].patches
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert {label: bar.get_width() for label, bar in zip(labels, bars)} == gains
    assert labels[-1] == max(gains, key=gains.get)  # the largest on top


def test_feature_importance_of_a_linear_model_is_global_explain(penguins):
    penguins.sql(f"""CREATE MODEL lin OPTIONS (model_type = 'logistic_reg', input_label_cols = ['male'])
                     AS SELECT {FEATURES}, male FROM ({DATA})""")
    figure = sqlml.plot.feature_importance(penguins, "lin")
    attributions = dict(penguins.sql("SELECT feature, attribution FROM ML.GLOBAL_EXPLAIN(MODEL lin)").fetchall())
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert {label: bar.get_width() for label, bar in zip(labels, figure.axes[0].patches)} == attributions
    assert "ML.GLOBAL_EXPLAIN" in figure.axes[0].get_title()


def test_slices_flag_the_worse_ones(trees):
    figure = sqlml.plot.slices(trees, "sexes", DATA, slice_by=["island"], slice_margin=0.0)
    png(figure)
    rows = trees.sql(f"""SELECT slice_value, roc_auc, worse_than_overall FROM ML.EVALUATE(MODEL sexes, ({DATA}),
                         STRUCT(['island'] AS slice_by, 0.0 AS slice_margin)) WHERE slice_column = 'island'""").fetchall()
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    drawn = {label: (bar.get_width(), bar.get_facecolor()[:3]) for label, bar in zip(labels, figure.axes[0].patches)}
    red = (214 / 255, 39 / 255, 40 / 255)
    for value, auc, worse in rows:
        width, color = drawn[f"island = {value}"]
        assert width == auc and (np.allclose(color, red) == bool(worse))
    assert any(worse for *_, worse in rows)


def test_over_time_points_are_windows(trees):
    figure = sqlml.plot.over_time(trees, "sexes", DATA, time_column="seen", time_window="year")
    png(figure)
    rows = trees.sql(f"""SELECT window_start, roc_auc FROM ML.EVALUATE(MODEL sexes, ({DATA}),
                         STRUCT('seen' AS time_column, 'year' AS time_window)) ORDER BY window_start""").fetchall()
    xs, ys = figure.axes[0].get_lines()[0].get_data()
    assert list(ys) == [auc for _, auc in rows] and len(xs) == 3


def test_drift_shows_the_distributions_skew_compares(trees):
    serving = "SELECT * FROM penguins WHERE species = 'Gentoo'"  # one species: island and sizes move
    figure = sqlml.plot.drift(trees, "sexes", serving)
    png(figure)
    rows = trees.sql(f"SELECT input, value, is_anomaly FROM ML.VALIDATE_DATA_SKEW(MODEL sexes, ({serving}))").fetchall()
    titles = {ax.get_title().split(":")[0]: ax for ax in figure.axes}
    assert set(titles) == {r[0] for r in rows}
    for name, value, anomaly in rows:
        assert f"{value:.3f}" in titles[name].get_title()
        assert (titles[name].title.get_color() == "#d62728") == anomaly
    island = titles["island"]
    labels = [t.get_text() for t in island.get_xticklabels()]
    study = [bar.get_height() for bar in island.containers[1]]
    served = trees.sql(serving).df().island.value_counts(normalize=True)
    assert dict(zip(labels, study)) == pytest.approx({k: served.get(k, 0.0) for k in labels})
    trained = trees.sql(f"SELECT island FROM ({DATA}) WHERE year < 2009").df().island.value_counts(normalize=True)
    assert [bar.get_height() for bar in island.containers[0]] == pytest.approx([trained.get(k, 0.0) for k in labels],
                                                                               abs=0.02)  # the training split's


def test_drift_between_two_tables(penguins):
    figure = sqlml.plot.drift(penguins, None, "SELECT island, body_mass_g FROM penguins WHERE year = 2009",
                              base="SELECT island, body_mass_g FROM penguins WHERE year = 2007")
    rows = penguins.sql("""SELECT input, value FROM ML.VALIDATE_DATA_DRIFT((SELECT island, body_mass_g FROM penguins
                           WHERE year = 2007), (SELECT island, body_mass_g FROM penguins WHERE year = 2009))""").fetchall()
    for (name, value), ax in zip(rows, figure.axes):
        assert ax.get_title().startswith(f"{name}:") and f"{value:.3f}" in ax.get_title()
        assert sum(b.get_height() for b in ax.containers[1]) == pytest.approx(1.0)
    base = penguins.sql("SELECT island FROM penguins WHERE year = 2007").df().island.value_counts(normalize=True)
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert [b.get_height() for b in figure.axes[0].containers[0]] == pytest.approx(list(base[labels]))


def test_a_plain_duckdb_connection_works(trees):
    figure = sqlml.plot.roc(trees.duckdb, "sexes", DATA)
    assert len(model_line(figure)) > 10


def test_the_card_draws_with_the_same_functions(trees, monkeypatch):
    from sqlml.functions import figures
    drawn = []
    for name in ("roc", "precision_recall", "confusion_matrix", "feature_importance"):
        original = getattr(figures, name)
        monkeypatch.setattr(figures, name, lambda *a, _f=original, _n=name, **k: drawn.append(_n) or _f(*a, **k))
    html = trees.sql("SELECT model_card FROM ML.MODEL_CARD(MODEL sexes, STRUCT('html' AS format))").fetchall()[0][0]
    assert sorted(drawn) == ["confusion_matrix", "feature_importance", "precision_recall", "roc"]
    assert html.count("data:image/png;base64,") == 4


def test_unknown_model_is_a_sqlml_error(trees):
    with pytest.raises(sqlml.ModelNotFoundError, match="nope"):
        sqlml.plot.roc(trees, "nope", DATA)
