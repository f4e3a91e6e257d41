"""Output columns as BigQuery ML's reference pages define them (issue 15): ML.EVALUATE and ML.WEIGHTS of a
tuned model, ML.FEATURE_INFO, ML.TRAINING_INFO and ML.DESCRIBE_DATA. Each test names the page it checks;
values are recomputed here with NumPy, pandas or scikit-learn."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pyarrow as pa
import pytest

from sqlml.errors import ParameterError
from sqlml.functions import info
from sqlml.functions.base import Call

NUMERIC = "bill_length_mm, bill_depth_mm, flipper_length_mm"


@pytest.fixture
def tuned(penguins):
    """A linear_reg tuned over two l2_reg values far apart, so its two trials are different models."""
    penguins.sql("""CREATE MODEL tuned OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g'],
        num_trials = 2, hparam_tuning_algorithm = 'GRID_SEARCH', l2_reg = HPARAM_CANDIDATES([0.0, 5000.0]))
        AS SELECT body_mass_g, bill_length_mm, flipper_length_mm FROM penguins WHERE body_mass_g IS NOT NULL""")
    return penguins


def _optimal(conn) -> int:
    return conn.sql("SELECT trial_id FROM ML.TRIAL_INFO(MODEL tuned) WHERE is_optimal").fetchall()[0][0]


def test_evaluate_of_a_tuned_model_leads_with_trial_id(tuned):
    # https://cloud.google.com/bigquery/docs/reference/standard-sql/bigqueryml-syntax-evaluate: "trial_id: ... only returned if you ran hyperparameter tuning";
    # the optimal trial by default, else the one TRIAL_ID names.
    stored = tuned.sql("SELECT * FROM ML.EVALUATE(MODEL tuned)").to_arrow_table()
    assert stored.schema.field(0) == pa.field("trial_id", pa.int64())
    assert stored["trial_id"].to_pylist() == [_optimal(tuned)]
    other = 3 - _optimal(tuned)
    on_data = tuned.sql(f"""SELECT trial_id, r2_score FROM ML.EVALUATE(MODEL tuned,
        (SELECT * FROM penguins WHERE body_mass_g IS NOT NULL), STRUCT({other} AS trial_id))""").fetchall()
    best = tuned.sql("""SELECT trial_id, r2_score FROM ML.EVALUATE(MODEL tuned,
        (SELECT * FROM penguins WHERE body_mass_g IS NOT NULL))""").fetchall()
    assert on_data[0][0] == other and best[0][0] == _optimal(tuned)
    assert on_data[0][1] != best[0][1]  # the trial named is the model evaluated
    tuned.sql("""CREATE MODEL plain OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g'])
        AS SELECT body_mass_g, bill_length_mm FROM penguins WHERE body_mass_g IS NOT NULL""")
    assert "trial_id" not in tuned.sql("SELECT * FROM ML.EVALUATE(MODEL plain)").to_arrow_table().column_names


def test_weights_of_a_tuned_model_lead_with_trial_id(tuned):
    # https://cloud.google.com/bigquery/docs/reference/standard-sql/bigqueryml-syntax-weights: trial_id, processed_input, weight, category_weights, class_label.
    table = tuned.sql("SELECT * FROM ML.WEIGHTS(MODEL tuned)").to_arrow_table()
    assert table.column_names == ["trial_id", "processed_input", "weight", "category_weights", "class_label"]
    assert set(table["trial_id"].to_pylist()) == {_optimal(tuned)}
    weights = {}
    for trial in (1, 2):
        rows = tuned.sql(f"SELECT trial_id, processed_input, weight FROM ML.WEIGHTS(MODEL tuned, STRUCT({trial} AS trial_id))").fetchall()
        assert {r[0] for r in rows} == {trial}
        weights[trial] = {r[1]: r[2] for r in rows}
    # The trial with l2_reg = 5000 has weights shrunk far below the unpenalized trial's.
    l2 = dict(tuned.sql("SELECT trial_id, hyperparameters.l2_reg FROM ML.TRIAL_INFO(MODEL tuned)").fetchall())
    penalized, free = max(l2, key=l2.get), min(l2, key=l2.get)
    assert abs(weights[penalized]["flipper_length_mm"]) < abs(weights[free]["flipper_length_mm"]) / 2


def test_feature_info_has_dimension(penguins):
    # https://cloud.google.com/bigquery/docs/reference/standard-sql/bigqueryml-syntax-feature: input, min, max, mean, median, stddev, category_count, null_count,
    # dimension (NULL for columns that are not ARRAY<STRUCT>; sqlml takes no array features).
    penguins.sql(f"""CREATE MODEL m OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g'])
        AS SELECT body_mass_g, species, {NUMERIC} FROM penguins WHERE body_mass_g IS NOT NULL""")
    table = penguins.sql("SELECT * FROM ML.FEATURE_INFO(MODEL m)").to_arrow_table()
    assert table.column_names == ["input", "min", "max", "mean", "median", "stddev", "category_count", "null_count",
                                  "dimension"]
    assert table.schema.field("dimension").type == pa.int64() and table["dimension"].null_count == table.num_rows


TRAINING_INFO = ["training_run", "iteration", "loss", "eval_loss", "learning_rate", "duration_ms", "notes"]


@pytest.mark.parametrize("model_type, options, expected", [
    ("boosted_tree_regressor", "learn_rate = 0.2, max_iterations = 4, early_stop = FALSE", 0.2),
    ("dnn_regressor", "learn_rate = 0.005, max_iterations = 5, hidden_units = [4]", 0.005),
    ("linear_reg", "l2_reg = 0.1", None),  # solved in closed form: no learning rate
    ("random_forest_regressor", "num_parallel_tree = 5", None),
])
def test_training_info_learning_rate(penguins, model_type, options, expected):
    # https://cloud.google.com/bigquery/docs/reference/standard-sql/bigqueryml-syntax-train: training_run, iteration, loss, eval_loss, learning_rate, duration_ms
    # (sqlml's notes after them); learning_rate is the learning rate in each iteration.
    penguins.sql(f"""CREATE MODEL m OPTIONS (model_type = '{model_type}', input_label_cols = ['body_mass_g'],
        random_seed = 1, {options}) AS SELECT body_mass_g, {NUMERIC} FROM penguins WHERE body_mass_g IS NOT NULL""")
    table = penguins.sql("SELECT * FROM ML.TRAINING_INFO(MODEL m)").to_arrow_table()
    assert table.column_names == TRAINING_INFO
    assert table.schema.field("learning_rate").type == pa.float64()
    assert table["learning_rate"].to_pylist() == [expected] * table.num_rows
    estimator = penguins.executor.load("m").estimator
    if hasattr(estimator, "booster"):  # the option reached XGBoost as that rate (kept in float32)
        eta = json.loads(estimator.booster.save_config())["learner"]["gradient_booster"]["tree_train_param"]["eta"]
        assert float(eta) == pytest.approx(expected, rel=1e-6)
    elif expected is not None:  # the option reached scikit-learn as that rate
        params = estimator.get_params()
        assert params.get("learning_rate_init", params.get("learning_rate")) == expected


def test_kmeans_training_info_has_cluster_info_and_no_eval_loss(penguins):
    # https://cloud.google.com/bigquery/docs/reference/standard-sql/bigqueryml-syntax-train: "For k-means models, ML.TRAINING_INFO doesn't return an eval_loss
    # column"; cluster_info ARRAY<STRUCT<centroid_id, cluster_radius, cluster_size>> "with standardized
    # features". Radius and size as the BigQuery API's ClusterInfo defines them
    # (https://cloud.google.com/bigquery/docs/reference/rest/v2/models#clusterinfo): "the average distance
    # from centroid to each point assigned to the cluster", "the total number of points assigned".
    query = f"SELECT {NUMERIC} FROM penguins WHERE bill_length_mm IS NOT NULL"
    penguins.sql(f"CREATE MODEL k OPTIONS (model_type = 'kmeans', num_clusters = 3, random_seed = 2) AS {query}")
    table = penguins.sql("SELECT * FROM ML.TRAINING_INFO(MODEL k)").to_arrow_table()
    assert table.column_names == ["training_run", "iteration", "loss", "learning_rate", "duration_ms", "cluster_info",
                                  "notes"]
    frame = penguins.sql(query).df()
    z = ((frame - frame.mean()) / frame.std(ddof=0)).to_numpy()  # standardized as at training (see the check)
    model = penguins.executor.load("k")
    assert np.allclose(model.features(penguins.duckdb.sql(query).to_arrow_table()), z)
    centers = model.estimator.cluster_centers_
    distances = np.sqrt(((z[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2))
    nearest = distances.argmin(axis=1)
    expected = [{"centroid_id": k + 1, "cluster_radius": pytest.approx(distances[nearest == k, k].mean(), rel=1e-9),
                 "cluster_size": int((nearest == k).sum())} for k in range(3)]
    assert table["cluster_info"][0].as_py() == expected
    assert sum(c["cluster_size"] for c in table["cluster_info"][0].as_py()) == len(frame)
    # A version stored before cluster_info was kept shows NULL.
    older = dataclasses.replace(model, info=dataclasses.replace(
        model.info, training_info=[{k: v for k, v in row.items() if k != "cluster_info"} for row in model.info.training_info]))
    assert info.training_info(Call("TRAINING_INFO", older))["cluster_info"].to_pylist() == [None]


DESCRIBE_COLUMNS = [
    ("name", pa.string()), ("num_rows", pa.int64()), ("num_nulls", pa.int64()), ("num_zeros", pa.int64()),
    ("min", pa.string()), ("max", pa.string()), ("mean", pa.float64()), ("stdev", pa.float64()),
    ("median", pa.float64()), ("quantiles", pa.list_(pa.float64())), ("unique", pa.int64()),
    ("avg_string_length", pa.float64()), ("num_values", pa.int64()),
    ("top_values", pa.list_(pa.struct([("value", pa.string()), ("count", pa.int64())]))),
    ("min_array_length", pa.int64()), ("max_array_length", pa.int64()), ("avg_array_length", pa.float64()),
    ("total_array_length", pa.int64()), ("array_length_quantiles", pa.list_(pa.int64())), ("dimension", pa.int64()),
]


def _inverted_cdf(values, n: int) -> list[float]:
    """APPROX_QUANTILES(x, n)'s boundaries, exactly: for each i / n, the smallest value whose cumulative
    share reaches it (the k-th smallest with k = ceil(i * len / n), the minimum for i = 0)."""
    ordered = np.sort(np.asarray(values, dtype=float))
    return [float(ordered[max(int(np.ceil(i * len(ordered) / n)) - 1, 0)]) for i in range(n + 1)]


def test_describe_data_columns_and_numbers(penguins):
    # https://cloud.google.com/bigquery/docs/reference/standard-sql/bigqueryml-syntax-describe-data: the output columns, their types and order; sqlml's
    # findings last. Numbers are FLOAT64, MIN/MAX as STRING.
    table = penguins.sql("""SELECT * FROM ML.DESCRIBE_DATA((SELECT body_mass_g, year, species, sex FROM penguins),
        STRUCT(4 AS num_quantiles, 2 AS top_k))""").to_arrow_table()
    assert [(f.name, f.type) for f in table.schema][:-1] == DESCRIBE_COLUMNS
    assert table.column_names[-1] == "findings"
    rows = {r["name"]: r for r in table.to_pylist()}
    frame = penguins.sql("SELECT body_mass_g, year, species, sex FROM penguins").df()
    for column in ("body_mass_g", "year"):
        row, values = rows[column], frame[column].dropna().astype(float)
        assert (row["num_rows"], row["num_nulls"], row["num_zeros"]) == (len(frame), frame[column].isna().sum(), 0)
        assert (row["min"], row["max"]) == (repr(float(values.min())), repr(float(values.max())))
        assert row["mean"] == pytest.approx(values.mean(), rel=1e-12)
        assert row["stdev"] == pytest.approx(values.std(), rel=1e-12)
        assert row["median"] == values.median()
        assert row["quantiles"] == _inverted_cdf(values, 4)
        assert row["num_values"] == len(values)
        assert row["unique"] is None and row["avg_string_length"] is None and row["top_values"] == []
        assert row["dimension"] is None and row["min_array_length"] is None and row["array_length_quantiles"] == []
    sex = rows["sex"]
    counts = frame["sex"].value_counts(dropna=False)
    assert sex["top_values"] == [{"value": v if isinstance(v, str) else None, "count": int(n)} for v, n in counts.items()][:2]
    assert (sex["min"], sex["max"], sex["unique"]) == ("female", "male", frame["sex"].nunique())
    assert sex["avg_string_length"] == pytest.approx(frame["sex"].dropna().str.len().mean(), rel=1e-12)
    assert sex["num_zeros"] is None and sex["mean"] is None and sex["quantiles"] is None


def test_describe_data_defaults_and_the_reference_examples(conn):
    # https://cloud.google.com/bigquery/docs/reference/standard-sql/bigqueryml-syntax-describe-data: num_quantiles 2, top_k 1 by default; and
    # https://cloud.google.com/bigquery/docs/reference/standard-sql/approximate_aggregate_functions#approx_quantiles: APPROX_QUANTILES(x, 2) of 1, 1, 1, 4, 5, 6, 7, 8, 9, 10
    # is [1, 5, 10]; APPROX_QUANTILES(x, 100)[OFFSET(90)] of 1..10 is 9.
    conn.sql("CREATE TABLE t AS SELECT unnest([1, 1, 1, 4, 5, 6, 7, 8, 9, 10]) AS x, unnest(range(1, 11)) AS y, "
             "unnest([true, true, false, true, true, true, false, true, true, true]) AS flag")
    rows = {r["name"]: r for r in conn.sql("SELECT * FROM ML.DESCRIBE_DATA(TABLE t)").to_arrow_table().to_pylist()}
    assert rows["x"]["quantiles"] == [1.0, 5.0, 10.0]
    assert rows["flag"]["top_values"] == [{"value": "true", "count": 8}]  # BOOL is described as STRING
    assert (rows["flag"]["min"], rows["flag"]["max"]) == ("false", "true")
    y = conn.sql("SELECT quantiles FROM ML.DESCRIBE_DATA(TABLE t, STRUCT(100 AS num_quantiles)) WHERE name = 'y'")
    assert y.fetchall()[0][0][90] == 9.0


def test_describe_data_arrays_sparse_and_structs(conn):
    # https://cloud.google.com/bigquery/docs/reference/standard-sql/bigqueryml-syntax-describe-data: ARRAY columns unnested, with the array-length columns;
    # ARRAY<STRUCT<INT64, numerical>> by its values with dimension = MAX(index) + 1; STRUCT fields expanded.
    conn.sql("""CREATE TABLE a AS SELECT i, [i, 0, i * 2][1:1 + i % 3] AS xs,
        [struct_pack(idx := i % 7, v := i / 2)] AS sparse, {'w': i % 4, 'tag': 'k' || (i % 3)} AS s FROM range(50) t(i)""")
    rows = {r["name"]: r for r in conn.sql("""SELECT * FROM ML.DESCRIBE_DATA(TABLE a,
        STRUCT(3 AS num_array_length_quantiles))""").to_arrow_table().to_pylist()}
    frame = conn.sql("SELECT i FROM a").df()
    lengths = np.array([1 + i % 3 for i in frame.i])
    elements = np.concatenate([[i, 0, i * 2][: 1 + i % 3] for i in frame.i]).astype(float)
    xs = rows["xs"]
    assert (xs["min_array_length"], xs["max_array_length"], xs["total_array_length"]) == (1, 3, lengths.sum())
    assert xs["avg_array_length"] == pytest.approx(lengths.mean())
    assert xs["array_length_quantiles"] == [int(v) for v in _inverted_cdf(lengths, 3)]
    assert xs["num_values"] == len(elements) and xs["num_zeros"] == (elements == 0).sum()
    assert xs["mean"] == pytest.approx(elements.mean()) and xs["quantiles"] == _inverted_cdf(elements, 2)
    assert rows["sparse"]["dimension"] == 7 and rows["sparse"]["mean"] == pytest.approx((frame.i / 2).mean())
    assert rows["s.w"]["mean"] == pytest.approx((frame.i % 4).mean()) and rows["s.tag"]["unique"] == 3
    assert rows["i"]["dimension"] is None and rows["i"]["array_length_quantiles"] == []


@pytest.mark.parametrize("struct, message", [
    ("0 AS num_quantiles", "The 'num_quantiles' parameter of ML.DESCRIBE_DATA must be an integer in the range [1, 100000]"),
    ("10001 AS top_k", "The 'top_k' parameter of ML.DESCRIBE_DATA must be an integer in the range [1, 10000]"),
    ("0 AS num_array_length_quantiles", "'num_array_length_quantiles' parameter of ML.DESCRIBE_DATA must be an integer"),
])
def test_describe_data_parameter_ranges(penguins, struct, message):
    # https://cloud.google.com/bigquery/docs/reference/standard-sql/bigqueryml-syntax-describe-data: NUM_QUANTILES and NUM_ARRAY_LENGTH_QUANTILES in [1, 100,000],
    # TOP_K in [1, 10,000].
    with pytest.raises(ParameterError) as raised:
        penguins.sql(f"SELECT * FROM ML.DESCRIBE_DATA(TABLE penguins, STRUCT({struct}))")
    assert message in str(raised.value)
