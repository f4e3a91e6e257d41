"""Boosted trees on XGBoost: the same predictions as XGBoost trained directly on the same rows, every
BigQuery option read back from the booster's own configuration, early stopping by relative progress,
explanations against shap, the trees in their documented form, and models stored by the engine before
(scikit-learn's HistGradientBoosting) still served."""

from __future__ import annotations

import hashlib
import hmac
import json
import struct

import numpy as np
import pyarrow as pa
import pytest
import shap
import skops.io as sio
import xgboost as xgb
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import mean_squared_error

from sqlml.model import envelope
from sqlml.model import trees as exported
from sqlml.model.kinds import CLASSIFICATION
from sqlml.train import tune

ALL = "STRUCT(50 AS top_k_features)"


def load(conn, name: str = "m"):
    return conn.executor.load(name)


def feature_types(model) -> list[str]:
    return ["c" if c["kind"] == "categorical" else "q" for c in model.preprocessor.columns]


def matrix(model, X: np.ndarray) -> xgb.DMatrix:
    return xgb.DMatrix(X, feature_types=feature_types(model), enable_categorical=True)


def codes(model, column: pa.ChunkedArray) -> np.ndarray:
    """Each row's class index in the model's classes (computed here, not by sqlml)."""
    return np.array([model.classes.index(v) for v in column.to_pylist()])


PENGUINS = "SELECT * FROM penguins WHERE sex IS NOT NULL AND body_mass_g IS NOT NULL"
DIRECT = [  # model type, label, objective
    ("boosted_tree_classifier", "sex", "binary:logistic"),
    ("boosted_tree_classifier", "species", "multi:softprob"),
    ("boosted_tree_regressor", "body_mass_g", "reg:squarederror"),
]


@pytest.mark.parametrize("model_type, label, objective", DIRECT)
def test_predictions_equal_xgboost_trained_directly_on_the_same_matrix(penguins, model_type, label, objective):
    penguins.sql(f"""CREATE MODEL m OPTIONS (model_type = '{model_type}', input_label_cols = ['{label}'],
                     data_split_method = 'NO_SPLIT', random_seed = 3, subsample = 0.8, colsample_bytree = 0.9,
                     max_iterations = 6, early_stop = FALSE) AS {PENGUINS}""")
    model = load(penguins)
    table = penguins.sql(PENGUINS).to_arrow_table()
    X = model.features(table)
    y = codes(model, table[label]) if model.kind.task == CLASSIFICATION else table[label].to_numpy()
    params = {"objective": objective, "seed": 3, "subsample": 0.8, "colsample_bytree": 0.9, "lambda": 1.0}
    if objective == "multi:softprob":
        params["num_class"] = 3
    booster = xgb.train(params, xgb.QuantileDMatrix(X, y, feature_types=feature_types(model), enable_categorical=True),
                        6)
    expected = booster.predict(matrix(model, X))
    scored = penguins.sql(f"SELECT * FROM ML.PREDICT(MODEL m, ({PENGUINS}))").arrow().read_all().to_pylist()
    for row, want in zip(scored, expected):
        if model.kind.task == CLASSIFICATION:
            probs = [p["prob"] for p in row[f"predicted_{label}_probs"]]
            want = [1 - want, want] if np.ndim(want) == 0 else want
            assert probs == pytest.approx(want, abs=1e-6)
        else:
            assert row[f"predicted_{label}"] == pytest.approx(float(want), abs=1e-6)


#: option = value → where the booster's configuration keeps it and what it reads there.
OPTIONS = [
    ("subsample = 0.7", "tree", "subsample", "0.7"),
    ("colsample_bytree = 0.6", "tree", "colsample_bytree", "0.6"),
    ("colsample_bylevel = 0.5", "tree", "colsample_bylevel", "0.5"),
    ("colsample_bynode = 0.4", "tree", "colsample_bynode", "0.4"),
    ("min_split_loss = 2.5", "tree", "gamma", "2.5"),
    ("min_tree_child_weight = 3", "tree", "min_child_weight", "3"),
    ("max_tree_depth = 4", "tree", "max_depth", "4"),
    ("l1_reg = 0.25", "tree", "alpha", "0.25"),
    ("l2_reg = 4", "tree", "lambda", "4"),
    ("learn_rate = 0.15", "tree", "eta", "0.15"),
    ("num_parallel_tree = 3", "gbtree_model_param", "num_parallel_tree", "3"),
    ("tree_method = 'APPROX'", "gbtree_train_param", "tree_method", "approx"),
    ("tree_method = 'EXACT'", "gbtree_train_param", "tree_method", "exact"),
    ("tree_method = 'HIST'", "gbtree_train_param", "tree_method", "hist"),
    ("booster_type = 'DART', dropout = 0.3, dart_normalize_type = 'FOREST'", "dart", "rate_drop", "0.3"),
    ("booster_type = 'DART', dart_normalize_type = 'FOREST'", "dart", "normalize_type", "forest"),
    ("random_seed = 11", "generic", "seed", "11"),
]


def _read(config: dict, where: str, name: str) -> str:
    booster = config["learner"]["gradient_booster"]
    trees = booster.get("gbtree", booster)
    section = {"tree": trees.get("tree_train_param"), "gbtree_model_param": trees.get("gbtree_model_param"),
               "gbtree_train_param": trees.get("gbtree_train_param"), "dart": booster.get("dart_train_param"),
               "generic": config["learner"]["generic_param"]}[where]
    return section[name]


@pytest.mark.parametrize("option, where, name, value", OPTIONS)
def test_each_bigquery_option_reaches_the_booster(penguins, option, where, name, value):
    # reference: bigqueryml-syntax-create-boosted-tree (each option's meaning is XGBoost's parameter's)
    penguins.sql(f"""CREATE MODEL m OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['species'],
                     max_iterations = 4, early_stop = FALSE, {option}) AS SELECT * FROM penguins""")
    config = json.loads(load(penguins).estimator.booster.save_config())
    found = _read(config, where, name)
    assert float(found) == pytest.approx(float(value), rel=1e-6) if value[0].isdigit() else found == value, found
    assert load(penguins).estimator.booster.num_boosted_rounds() == 4  # max_iterations, early_stop off


def test_defaults_are_bigquerys(penguins):
    penguins.sql("""CREATE MODEL b OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['species'],
                    early_stop = FALSE) AS SELECT * FROM penguins""")
    boosted = json.loads(load(penguins, "b").estimator.booster.save_config())
    expected = {"max_depth": 6, "eta": 0.3, "lambda": 1, "alpha": 0, "gamma": 0, "min_child_weight": 1,
                "subsample": 1, "colsample_bytree": 1, "colsample_bylevel": 1, "colsample_bynode": 1}
    assert {k: float(_read(boosted, "tree", k)) for k in expected} == pytest.approx(expected)
    assert load(penguins, "b").estimator.booster.num_boosted_rounds() == 20
    assert _read(boosted, "gbtree_train_param", "tree_method") == "auto"
    assert _read(boosted, "gbtree_model_param", "num_parallel_tree") == "1"
    assert boosted["learner"]["gradient_booster"]["name"] == "gbtree"


def test_early_stop_stops_on_relative_progress_of_the_held_out_loss(flights):
    flights.sql("""CREATE MODEL m OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['is_late'],
                   max_iterations = 40, learn_rate = 0.5, min_rel_progress = 0.005)
                   AS SELECT * EXCLUDE (dep_delay) FROM flights""")
    info = flights.sql("SELECT iteration, loss, eval_loss FROM ML.TRAINING_INFO(MODEL m) ORDER BY iteration").fetchall()
    held = [row[2] for row in info]
    progress = [(a - b) / a for a, b in zip(held, held[1:])]
    assert len(info) < 40 and all(p >= 0.005 for p in progress[:-1]) and progress[-1] < 0.005
    kept = load(flights).estimator.booster.num_boosted_rounds()
    assert kept == int(np.argmin(held)) + 1  # the trees up to the lowest held-out loss
    flights.sql("""CREATE MODEL n OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['is_late'],
                   max_iterations = 40, learn_rate = 0.5, early_stop = FALSE) AS SELECT * EXCLUDE (dep_delay) FROM flights""")
    assert load(flights, "n").estimator.booster.num_boosted_rounds() == 40


def test_a_regressors_training_loss_is_the_mean_squared_error_per_iteration(penguins):
    # the classifier's log loss: tests/test_predict_evaluate.py
    penguins.sql(f"""CREATE MODEL r OPTIONS (model_type = 'boosted_tree_regressor', input_label_cols = ['body_mass_g'],
                     data_split_method = 'NO_SPLIT', early_stop = FALSE, max_iterations = 5, learn_rate = 0.2)
                     AS {PENGUINS}""")
    table = penguins.sql(PENGUINS).to_arrow_table()
    model = load(penguins, "r")
    data = matrix(model, model.features(table))
    losses = penguins.sql("SELECT loss FROM ML.TRAINING_INFO(MODEL r) ORDER BY iteration").fetchall()
    expected = [mean_squared_error(table["body_mass_g"].to_numpy(),
                                   model.estimator.booster.predict(data, iteration_range=(0, i))) for i in range(1, 6)]
    assert [loss for (loss,) in losses] == pytest.approx(expected, rel=1e-5)
    assert penguins.sql("SELECT DISTINCT learning_rate FROM ML.TRAINING_INFO(MODEL r)").fetchall() == [(0.2,)]


def test_explanations_equal_shap_on_the_same_booster(penguins):
    for name, model_type, label in (("a", "boosted_tree_classifier", "species"), ("b", "boosted_tree_classifier", "sex"),
                                    ("c", "boosted_tree_regressor", "body_mass_g")):
        penguins.sql(f"""CREATE MODEL {name} OPTIONS (model_type = '{model_type}', input_label_cols = ['{label}'],
                         num_parallel_tree = 5, random_seed = 2) AS {PENGUINS}""")
        model = load(penguins, name)
        rows = penguins.sql(f"SELECT * FROM ML.EXPLAIN_PREDICT(MODEL {name}, ({PENGUINS}), {ALL})").arrow().read_all()
        X = model.features(rows)
        values = np.asarray(shap.TreeExplainer(model.estimator.booster).shap_values(X))
        margins = model.estimator.booster.predict(matrix(model, X), output_margin=True)
        if values.ndim == 3:  # a class per row: the predicted one
            chosen = margins.argmax(axis=1)
            values, margins = values[np.arange(len(X)), :, chosen], margins[np.arange(len(X)), chosen]
        for row, expected, margin in zip(rows.to_pylist(), values, margins):
            found = {a["feature"]: a["attribution"] for a in row["top_feature_attributions"]}
            assert [found[c] for c in model.preprocessor.input_columns] == pytest.approx(expected, abs=1e-5)
            assert row["prediction_value"] == pytest.approx(float(margin), abs=1e-5)


def test_xgboost_contributions_are_exact_tree_shap(penguins):
    """On numeric splits shap's own Tree SHAP over the booster's trees (its path-dependent algorithm,
    not XGBoost's) gives the same attributions. XGBoost goes left on x < split, shap on x <= threshold:
    the threshold is the float32 just below the split."""
    numbers = "bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g"
    penguins.sql(f"""CREATE MODEL m OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['sex'],
                     max_iterations = 6, early_stop = FALSE) AS SELECT {numbers}, sex FROM penguins WHERE sex IS NOT NULL""")
    model = load(penguins)
    frame = model.estimator.booster.trees_to_dataframe()
    trees = []
    for _, nodes in frame.groupby("Tree"):
        index = {node: i for i, node in enumerate(nodes["ID"])}
        child = lambda ids: np.array([index.get(n, -1) for n in ids])  # noqa: E731
        leaf = nodes["Feature"].to_numpy() == "Leaf"
        trees.append({"children_left": child(nodes["Yes"]), "children_right": child(nodes["No"]),
                      "children_default": child(nodes["Missing"]),
                      "features": np.where(leaf, -2, [int(f[1:]) if f != "Leaf" else 0 for f in nodes["Feature"]]),
                      "thresholds": np.where(leaf, 0.0, np.nextafter(nodes["Split"].fillna(0.0).to_numpy(np.float32),
                                                                     np.float32(-np.inf))).astype(np.float64),
                      "values": np.where(leaf, nodes["Gain"], 0.0)[:, None], "node_sample_weight": nodes["Cover"].to_numpy()})
    base = float(exported.of(model.estimator).base_score[0])
    explainer = shap.TreeExplainer({"trees": trees, "base_offset": base, "tree_output": "raw_value",
                                    "input_dtype": np.float32, "internal_dtype": np.float64}, model_output="raw")
    X = model.features(penguins.sql("SELECT * FROM penguins WHERE sex IS NOT NULL").to_arrow_table())
    assert model.estimator.contributions(X)[:, :-1] == pytest.approx(explainer.shap_values(X.astype(np.float32)), abs=1e-5)


def _margins(ensemble: exported.Ensemble, X: np.ndarray) -> np.ndarray:
    """The margins the documented form describes, node by node."""
    out = np.tile(ensemble.base_score, (len(X), 1))
    for tree, output, weight in zip(ensemble.trees, ensemble.output, ensemble.weight):
        for r, x in enumerate(X.astype(np.float32)):
            node = 0
            while tree.feature[node] >= 0:
                value = x[tree.feature[node]]
                if np.isnan(value):
                    right = not tree.missing_left[node]
                elif tree.categories[node] is not None:
                    right = int(value) in tree.categories[node]
                else:
                    right = not value < tree.threshold[node]
                node = tree.right[node] if right else tree.left[node]
            out[r, output] += weight * tree.value[node]
    return out


@pytest.mark.parametrize("options", ["model_type = 'boosted_tree_classifier', input_label_cols = ['species']",
                                     "model_type = 'boosted_tree_classifier', input_label_cols = ['sex'], "
                                     "booster_type = 'DART', dropout = 0.4, early_stop = FALSE",
                                     "model_type = 'boosted_tree_regressor', input_label_cols = ['body_mass_g']",
                                     "model_type = 'boosted_tree_classifier', input_label_cols = ['sex'], "
                                     "num_parallel_tree = 4, subsample = 0.7"])
def test_exported_trees_compute_the_models_margins(penguins, options):
    penguins.sql(f"CREATE MODEL m OPTIONS ({options}, max_tree_depth = 4) AS SELECT * FROM penguins")
    model = load(penguins)
    X = model.features(penguins.sql("SELECT * FROM penguins").to_arrow_table())  # NULLs and unseen: NaN codes
    ensemble = exported.of(model.estimator)
    margins = model.estimator.booster.predict(matrix(model, X), output_margin=True).reshape(len(X), -1)
    np.testing.assert_allclose(_margins(ensemble, X), margins, rtol=1e-6, atol=1e-5)  # XGBoost sums in float32
    assert ensemble.link == {"reg:squarederror": "identity", "binary:logistic": "logistic",
                             "multi:softprob": "softmax"}[model.estimator.config()["learner"]["objective"]["name"]]
    assert any(c is not None for tree in ensemble.trees for c in tree.categories)  # species / island / sex splits


def test_an_unseen_category_and_a_null_follow_the_missing_branch(penguins):
    penguins.sql("""CREATE MODEL m OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['sex'])
                    AS SELECT * FROM penguins WHERE sex IS NOT NULL""")
    model = load(penguins)
    probe = penguins.sql("SELECT * REPLACE ('Atlantis' AS island) FROM penguins LIMIT 3").to_arrow_table()
    X = model.features(probe)
    assert np.isnan(X[:, model.preprocessor.input_columns.index("island")]).all()
    expected = model.estimator.booster.predict(matrix(model, X))
    got = penguins.sql("SELECT predicted_sex_probs FROM ML.PREDICT(MODEL m, "
                       "(SELECT * REPLACE ('Atlantis' AS island) FROM penguins LIMIT 3))").fetchall()
    assert [p[0][1]["prob"] for p in got] == pytest.approx(expected, abs=1e-6)


def test_the_booster_is_stored_in_xgboosts_own_format_inside_the_signed_envelope(penguins):
    penguins.sql("""CREATE MODEL m OPTIONS (model_type = 'boosted_tree_regressor', input_label_cols = ['body_mass_g'])
                    AS SELECT * FROM penguins WHERE body_mass_g IS NOT NULL""")
    model = load(penguins)
    blob = bytes(penguins.executor.registry.blob(model.info))
    _, header, parts = envelope.loads_parts(blob)
    raw, config = model.estimator.booster.save_raw("ubj"), model.estimator.booster.save_config().encode()
    assert header["raw"] == {"xgboost": len(raw), "xgboost_config": len(config)}
    assert parts["xgboost"] == raw and json.loads(parts["xgboost_config"]) == json.loads(config)
    (length,) = struct.unpack(">I", blob[38:42])
    assert blob[42 + length:] == raw + parts["xgboost_config"]  # the booster and its configuration: no skops bytes
    tampered = blob[:-5] + bytes([blob[-5] ^ 1]) + blob[-4:]
    with pytest.raises(envelope.ModelIntegrityError, match="failed verification"):
        envelope.loads_parts(tampered)


# -- models stored by the engines before XGBoost ---------------------------------------------------

def _old_blob(estimator, header: dict) -> bytes:
    """A model blob exactly as sqlml wrote it before XGBoost: header JSON, then the skops bytes, signed."""
    header_bytes = json.dumps(header).encode()
    payload = struct.pack(">I", len(header_bytes)) + header_bytes + sio.dumps(estimator)
    key = envelope.secret_key()
    return b"SQLML" + bytes([1]) + hmac.new(key, payload, hashlib.sha256).digest() + payload


def test_a_model_stored_by_the_old_engine_is_served_as_before(penguins, monkeypatch):
    """A boosted model stored by sqlml before XGBoost: HistGradientBoosting in the skops part of the envelope."""
    table = penguins.sql(PENGUINS).to_arrow_table()
    real_train, stored = tune.train, {}

    def train_the_old_way(*args, **kwargs):
        row = real_train(*args, **kwargs)
        _, header, parts = row["fitted"]
        model = tune.loaded(row)
        X = model.features(table)
        old = HistGradientBoostingClassifier(max_iter=20, max_depth=6, learning_rate=0.3, l2_regularization=1.0,
                                             early_stopping=True, categorical_features=model.preprocessor.categorical_mask)
        old.fit(X, codes(model, table["species"]))  # as sqlml fitted it: class codes
        blob = _old_blob(old, header)
        stored.update(estimator=old, X=X)
        return {**row, "model": blob, "fingerprint": envelope.fingerprint(blob), "fitted": None}

    monkeypatch.setattr(tune, "train", train_the_old_way)
    penguins.sql(f"""CREATE MODEL old OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['species'],
                     data_split_method = 'NO_SPLIT') AS {PENGUINS}""")
    monkeypatch.undo()
    model, old, X = load(penguins, "old"), stored["estimator"], stored["X"]
    assert type(model.estimator) is HistGradientBoostingClassifier
    rows = penguins.sql(f"SELECT * FROM ML.PREDICT(MODEL old, ({PENGUINS}))").arrow().read_all().to_pylist()
    expected = old.predict_proba(X)
    got = [[p["prob"] for p in r["predicted_species_probs"]] for r in rows]
    assert np.abs(np.array(got) - expected).max() < 1e-12
    assert [r["predicted_species"] for r in rows] == [model.classes[k] for k in expected.argmax(axis=1)]
    explained = penguins.sql(f"SELECT * FROM ML.EXPLAIN_PREDICT(MODEL old, ({PENGUINS}), {ALL})").arrow().read_all()
    for row in explained.to_pylist():
        total = row["baseline_prediction_value"] + sum(a["attribution"] for a in row["top_feature_attributions"])
        assert total == pytest.approx(row["prediction_value"], abs=1e-6)
    importance = penguins.sql("SELECT * FROM ML.FEATURE_IMPORTANCE(MODEL old)").arrow().read_all().to_pylist()
    assert sum(r["importance_weight"] for r in importance) > 0
    # the new engine's models sit beside the old one in the same database
    penguins.sql(f"""CREATE MODEL new OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['species'])
                     AS {PENGUINS}""")
    assert hasattr(load(penguins, "new").estimator, "booster")
