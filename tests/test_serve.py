"""`sqlml serve` through real HTTP on 127.0.0.1: a uvicorn process the tests start and stop."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

import sqlml

TOKEN = "serve-test-token-1234567890"
ROWS = "SELECT *, sex = 'male' AS male, row_number() OVER (ORDER BY species, island, bill_length_mm, bill_depth_mm, body_mass_g, year) AS id FROM penguins WHERE sex IS NOT NULL"
TRAIN = """CREATE OR REPLACE MODEL sexes OPTIONS (model_type = 'logistic_reg', input_label_cols = ['male'] {extra})
           AS SELECT bill_length_mm, bill_depth_mm, island, male FROM p {where};"""
CLI = [sys.executable, "-c", "from sqlml.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sqlml_run(db: str, sql: str) -> subprocess.CompletedProcess:
    """Run SQL in another process, as a dbt run or `sqlml run` would."""
    return subprocess.run([*CLI, "run", "-", "--db", db], input=sql, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    db = str(tmp_path_factory.mktemp("serve") / "warehouse.duckdb")
    with sqlml.connect(db, progress=lambda m: None) as conn:
        sqlml.datasets.load(conn.duckdb, "penguins")
        conn.sql(f"CREATE TABLE p AS {ROWS}")
        conn.sql(TRAIN.format(extra="", where=""))
        conn.sql("""CREATE MODEL trees OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['species'],
                    max_iterations = 20) AS SELECT bill_length_mm, flipper_length_mm, island, species FROM p""")
    return db


@pytest.fixture(scope="module")
def server(database):
    port = free_port()
    env = {**os.environ, "SQLML_SERVE_TOKEN": TOKEN}
    process = subprocess.Popen([*CLI, "serve", "--db", database, "--port", str(port), "--model", "trees",
                                "--max-body-bytes", "200000", "--max-rows", "500", "--refresh", "0.2"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if call(url, "GET", "/healthz")[0] == 200:
                break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail(f"the server did not start: {process.communicate()[0]}")
    yield url
    process.terminate()
    output = process.communicate(timeout=30)[0]
    assert "Traceback" not in output


def call(url: str, method: str, path: str, body: object = None, token: str | None = TOKEN,
         headers: dict | None = None, raw: bytes | None = None) -> tuple[int, object]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {}),
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as e:
        text, status = e.read().decode(), e.code
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def expected(db: str, model: str, sql: str) -> list[dict]:
    """ML.PREDICT's prediction columns, read in this process (read-only, closed at once)."""
    with sqlml.connect(db, read_only=True, progress=lambda m: None) as conn:
        table = conn.sql(f"SELECT * FROM ML.PREDICT(MODEL {model}, ({sql}))").to_arrow_table()
    names = [n for n in table.column_names if n.startswith("predicted_") or n == "model_version"]
    return table.select(names).to_pylist()


def rows_of(db: str, sql: str) -> list[dict]:
    with sqlml.connect(db, read_only=True, progress=lambda m: None) as conn:
        return conn.sql(sql).to_arrow_table().to_pylist()


def test_predictions_equal_ml_predict_on_both_protocols(server, database):
    sql = "SELECT id, bill_length_mm, bill_depth_mm, flipper_length_mm, island FROM p ORDER BY id LIMIT 60"
    rows = rows_of(database, sql)
    status, answer = call(server, "POST", "/v1/models/sexes/predict", {"rows": rows})
    assert status == 200 and answer["model"] == "sexes" and answer["version"] == 1
    assert answer["predictions"] == expected(database, "sexes", sql)
    trees = expected(database, "trees", sql)
    columns = list(rows[0])
    for body in ({"dataframe_records": rows}, {"dataframe_split": {"columns": columns, "data": [list(r.values()) for r in rows]}},
                 {"instances": rows}):
        status, answer = call(server, "POST", "/invocations", body)  # --model trees
        assert status == 200 and answer == {"predictions": trees}
    status, answer = call(server, "POST", "/invocations", {"instances": rows}, headers={"sqlml-model": "sexes"})
    assert answer["predictions"] == expected(database, "sexes", sql)


def test_listings_and_health(server):
    status, listed = call(server, "GET", "/v1/models")
    assert status == 200 and sorted(m["name"] for m in listed["models"]) == ["sexes", "trees"]
    status, model = call(server, "GET", "/v1/models/trees")
    assert model["deployed"] == 1 and model["model_type"] == "boosted_tree_classifier"
    assert model["input_schema"] == [{"name": "bill_length_mm", "kind": "numeric"},
                                     {"name": "flipper_length_mm", "kind": "numeric"},
                                     {"name": "island", "kind": "categorical"}]
    assert model["output_columns"] == ["predicted_species", "predicted_species_probs"]
    assert call(server, "GET", "/ping")[0] == 200 and call(server, "GET", "/health")[0] == 200
    assert call(server, "GET", "/version")[1].strip() == "0.1.0"


def test_refusals(server):
    row = {"bill_length_mm": 40.0, "bill_depth_mm": 18.0, "island": "Dream"}
    status, answer = call(server, "POST", "/v1/models/sexes/predict", {"rows": [row]}, token=None)
    assert status == 401 and "token" in answer["error"]
    assert call(server, "POST", "/v1/models/sexes/predict", {"rows": [row]}, token="wrong")[0] == 401
    assert call(server, "GET", "/v1/models", token=None)[0] == 401
    status, answer = call(server, "POST", "/v1/models/nope/predict", {"rows": [row]})
    assert status == 404 and "No model named 'nope'" in answer["error"]
    status, answer = call(server, "POST", "/v1/models/sexes/predict", {"rows": [{"bill_length_mm": 40.0}]})
    assert status == 422 and answer["error"] == "Missing column(s) the model reads: bill_depth_mm, island."
    status, answer = call(server, "POST", "/v1/models/sexes/predict",
                          {"rows": [{**row, "bill_length_mm": "long", "island": 3}]})
    assert status == 422 and "bill_length_mm (expected a number)" in answer["error"] and "island" in answer["error"]
    status, answer = call(server, "POST", "/v1/models/sexes/predict", {"rows": [row] * 501})
    assert status == 413 and "500" in answer["error"]
    status, answer = call(server, "POST", "/v1/models/sexes/predict", raw=b'{"rows": [' + b" " * 300_000 + b"]}")
    assert status == 413 and "200,000 bytes" in answer["error"]
    status, answer = call(server, "POST", "/v1/models/sexes/predict", raw=b"{not json")
    assert status == 400 and "Traceback" not in json.dumps(answer)
    status, answer = call(server, "POST", "/invocations", {"dataframe_records": [row], "instances": [row]})
    assert status == 400 and "exactly one of" in answer["error"]


def test_refuses_a_public_address_without_a_token(database):
    env = {k: v for k, v in os.environ.items() if k != "SQLML_SERVE_TOKEN"}
    done = subprocess.run([*CLI, "serve", "--db", database, "--host", "0.0.0.0", "--port", str(free_port())],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Refusing to serve on 0.0.0.0 without a token" in done.stderr
    assert "Traceback" not in done.stderr


def wait_for(check, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail("the server did not pick up the change")


def test_follows_deployments_written_by_another_process(server, database):
    sql = "SELECT id, bill_length_mm, bill_depth_mm, island FROM p ORDER BY id LIMIT 25"
    rows = rows_of(database, sql)
    # a retrain in another process while the server runs: the file is not held, so it succeeds
    done = sqlml_run(database, TRAIN.format(extra=", deploy = 'always'", where="WHERE island <> 'Dream'"))
    assert done.returncode == 0, done.stderr
    wait_for(lambda: call(server, "GET", "/v1/models/sexes")[1]["deployed"] == 2)
    status, answer = call(server, "POST", "/v1/models/sexes/predict", {"rows": rows})
    assert answer["version"] == 2 and answer["predictions"] == expected(database, "sexes", sql)
    status, pinned = call(server, "POST", "/v1/models/sexes/predict", {"rows": rows, "version": 1})
    assert pinned["version"] == 1 and pinned["predictions"] == expected(database, "sexes VERSION 1", sql)

    # the kill switch: the baseline is served
    assert sqlml_run(database, "ALTER MODEL sexes DISABLE;").returncode == 0
    wait_for(lambda: call(server, "POST", "/v1/models/sexes/predict", {"rows": rows})[1].get("baseline"))
    answer = call(server, "POST", "/v1/models/sexes/predict", {"rows": rows})[1]
    assert answer["predictions"] == expected(database, "sexes", sql)  # ML.PREDICT serves the baseline too
    assert len({json.dumps(p) for p in answer["predictions"]}) == 1  # the class prior, whatever the row

    # A/B: version 1 as the challenger, rows split by the hash of their id
    assert sqlml_run(database, "ALTER MODEL sexes ENABLE; ALTER MODEL sexes VERSION 1 SET ALIAS challenger;").returncode == 0
    wait_for(lambda: call(server, "GET", "/v1/models/sexes")[1]["aliases"] == {"challenger": 1})
    ab = {"rows": rows, "split_key": "id", "challenger_fraction": 0.5}
    answer = call(server, "POST", "/v1/models/sexes/predict", ab)[1]
    with sqlml.connect(database, read_only=True, progress=lambda m: None) as conn:
        table = conn.sql(f"""SELECT predicted_male, predicted_male_probs, model_version FROM ML.PREDICT(MODEL sexes,
                             ({sql}), STRUCT(0.5 AS challenger_fraction, 'id' AS split_key))""").to_arrow_table()
    assert answer["predictions"] == table.to_pylist()
    assert {p["model_version"] for p in answer["predictions"]} == {1, 2}
    status, aliased = call(server, "POST", "/v1/models/sexes/predict", {"rows": rows, "alias": "challenger"})
    assert aliased["version"] == 1
