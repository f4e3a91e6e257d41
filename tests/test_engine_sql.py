"""What needs no Spark session: each engine's dialect writes every sqlml node, compiled TRANSFORM SQL is
stored canonically and written for the engine that runs it (also what older versions stored), and
the Spark registry store's transactions and concurrency rule (it answers the registry's statements
in this process; its files are plain Parquet)."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlglot import exp

import sqlml.sql.dialect  # noqa: F401 (registers the sqlml dialect)
from sqlml.engines.duckdb.dialect import NAME as DUCKDB
from sqlml.engines.spark.dialect import NAME as SPARK
from sqlml.engines.spark.store import CATALOG, ConflictError, Store
from sqlml.errors import SqlmlError, UnsupportedError
from sqlml.registry import schema
from sqlml.sql import nodes, transform

#: A ONE_HOT_ENCODER item as sqlml stored it before engines had dialects of their own (DuckDB's text).
STORED_ONE_HOT = {
    "items": [{"name": "carrier_AA", "sql": "CASE WHEN CAST(carrier AS VARCHAR) = 'AA' THEN 1e0 ELSE 0e0 END",
               "role": "feature", "inputs": ["carrier"], "function": "ONE_HOT_ENCODER", "output": "carrier"},
              {"name": "is_late", "sql": "is_late", "role": "label", "inputs": ["is_late"], "unchanged": True}],
    "passthrough": [],
    "shaped": {"carrier": "[{'index': CAST(CASE CAST(carrier AS VARCHAR) WHEN 'AA' THEN 1 ELSE 0 END AS BIGINT), "
                          "'value': 1e0}]"},
}


@pytest.mark.parametrize("dialect", [DUCKDB, SPARK])
def test_each_engine_writes_every_sqlml_node(dialect):
    for node in nodes.NODES:
        written = _written(node, dialect)
        assert node.key.upper() not in written.upper().replace("_", ""), (node.key, written)


def _written(node: type, dialect: str) -> str:
    examples = {"generatearray": lambda: sqlglot.parse_one("GENERATE_ARRAY(0, 1, 0.25)", read="sqlml"),
                "quantiles": lambda: nodes.Quantiles(this=exp.column("x"), expressions=[exp.Literal.number(0.5)]),
                "rownumbers": lambda: nodes.RowNumbers(),
                "othercolumns": lambda: nodes.OtherColumns(expressions=[exp.to_identifier("a")])}
    try:
        return examples[node.key]().sql(dialect)
    except UnsupportedError:
        return "refused"  # an engine may refuse a node, with a reason (Spark: OtherColumns)


def test_the_nodes_in_each_engines_words():
    array = sqlglot.parse_one("SELECT GENERATE_ARRAY(0, 1, 0.25)", read="sqlml")
    assert "list_transform(range(0," in array.sql(DUCKDB)
    assert "slice(transform(sequence(0," in array.sql(SPARK)
    assert sqlglot.parse_one("SELECT GENERATE_ARRAY(0, 1, 0.25)", read="sqlml").sql("sqlml") == \
        "SELECT GENERATE_ARRAY(0, 1, 0.25)"  # the canonical form reads back as it was written
    quantiles = nodes.Quantiles(this=exp.column("x"), expressions=[exp.Literal.number(0.25), exp.Literal.number(0.75)])
    assert quantiles.sql(DUCKDB) == "QUANTILE_CONT(x, [0.25, 0.75])"
    assert quantiles.sql(SPARK) == "PERCENTILE(x, ARRAY(0.25, 0.75))"
    with pytest.raises(UnsupportedError, match="Spark cannot select"):
        nodes.OtherColumns(expressions=[exp.to_identifier("a")]).sql(SPARK)


def test_a_stored_transform_is_written_for_the_engine_that_runs_it():
    for dialect, absent, present in ((SPARK, "VARCHAR", "CAST(carrier AS STRING)"),
                                     (DUCKDB, "STRING", "CAST(carrier AS TEXT)")):
        sql = transform.wrap_sql(STORED_ONE_HOT, "SELECT * FROM flights", ["carrier", "is_late", "dep_delay"],
                                 dialect=dialect)
        assert absent not in sql and present in sql and sqlglot.parse_one(sql, read=dialect)
    shaped = transform.wrap_sql(STORED_ONE_HOT, "SELECT * FROM flights", ["carrier"], bigquery_shape=True, dialect=SPARK)
    assert "ARRAY(STRUCT(CAST(CASE CAST(carrier AS STRING) WHEN 'AA' THEN 1 ELSE 0 END AS BIGINT) AS index" in shaped


# --- The Spark registry store ------------------------------------------------------------------------


def migrated(path) -> Store:
    """A store at ``path`` with the registry's own tables (its migrations, as the registry runs them)."""
    store = Store(None, str(path))
    tables = schema.Tables.of(CATALOG)
    store.run(f"CREATE SCHEMA IF NOT EXISTS {exp.table_(schema.SCHEMA, db=CATALOG, quoted=True).sql('duckdb')}")
    for statements in schema.migrations(tables):
        with store.transaction():
            for statement in statements:
                store.run(statement)
    return store


def test_the_registrys_statements_round_trip_through_parquet(tmp_path):
    store = migrated(tmp_path)
    serving = schema.Tables.of(CATALOG).serving  # the registry names its tables with their catalog
    store.run(f"INSERT INTO {serving} (model, state, signature) VALUES (?, ?, ?)", ["m", '{"a": 1}', "s1"])
    store.run("INSERT OR REPLACE INTO sqlml.serving (model, state, signature) VALUES (?, ?, ?)", ["m", '{"a": 2}', "s2"])
    store.run("INSERT OR IGNORE INTO sqlml.serving (model, state, signature) VALUES (?, ?, ?)", ["m", '{"a": 3}', "s3"])
    store.run("INSERT INTO sqlml.serving (model, state, signature) VALUES (?, ?, ?)", ["n", "{}", "t"])
    with pytest.raises(SqlmlError, match="Duplicate key"):
        store.run("INSERT INTO sqlml.serving (model, state, signature) VALUES (?, ?, ?)", ["n", "{}", "u"])
    store.run("UPDATE sqlml.serving SET signature = ? WHERE model = ?", ["t2", "n"])
    blob = os.urandom(100_000)
    store.run("INSERT INTO sqlml.models (name, version, model_type, fingerprint, model) VALUES (?, ?, ?, ?, ?)",
              ["m", 1, "linear_reg", "f", blob])
    reopened = Store(None, str(tmp_path))  # another session reads what was committed
    assert reopened.run("SELECT model, CAST(state AS VARCHAR), signature FROM sqlml.serving ORDER BY model") == \
        [("m", '{"a": 2}', "s2"), ("n", "{}", "t2")]
    assert reopened.run("SELECT model FROM sqlml.models WHERE name = ? AND version = ?", ["m", 1]) == [(blob,)]
    assert reopened.run("SELECT coalesce(max(version), 0) + 1 FROM sqlml.models WHERE name = ?", ["x"]) == [(1,)]
    reopened.run("DELETE FROM sqlml.serving WHERE model = ?", ["m"])
    assert store.run("SELECT model FROM sqlml.serving") == [("n",)]
    assert reopened.has_table("trials") and not reopened.has_table("nothing")
    files = {f for d in os.listdir(tmp_path) if d != "_log" for f in os.listdir(tmp_path / d)}
    assert files and all(pq.read_table(tmp_path / d / f) is not None for d in os.listdir(tmp_path) if d != "_log"
                         for f in os.listdir(tmp_path / d))


def test_an_insert_appends_a_file_and_another_change_rewrites_the_table(tmp_path):
    """A new version's bytes are written once: the models table grows by a file per INSERT."""
    store = migrated(tmp_path)
    for version in (1, 2):
        store.run("INSERT INTO sqlml.models (name, version, model_type, fingerprint, model) VALUES (?, ?, ?, ?, ?)",
                  ["m", version, "linear_reg", "f", b"bytes"])
    assert [pq.read_table(tmp_path / f)["version"].to_pylist() for f in store.manifest["models"]["files"]] == [[1], [2]]
    store.run("DELETE FROM sqlml.models WHERE version = ?", [1])
    assert [pq.read_table(tmp_path / f)["version"].to_pylist() for f in store.manifest["models"]["files"]] == [[2]]
    assert Store(None, str(tmp_path)).run("SELECT version FROM sqlml.models") == [(2,)]


def test_a_failed_transaction_keeps_nothing(tmp_path):
    store = migrated(tmp_path)
    with pytest.raises(ValueError), store.transaction():
        store.run("INSERT INTO sqlml.serving (model, state, signature) VALUES (?, ?, ?)", ["m", "{}", "s"])
        raise ValueError("the caller fails after its first write")
    assert store.run("SELECT count(*) FROM sqlml.serving") == [(0,)]
    assert Store(None, str(tmp_path)).run("SELECT count(*) FROM sqlml.serving") == [(0,)]


def test_of_two_concurrent_writers_one_wins_and_the_other_is_told(tmp_path):
    migrated(tmp_path)
    late, other = Store(None, str(tmp_path)), Store(None, str(tmp_path))
    with pytest.raises(ConflictError, match="changed by another session at the same moment"), late.transaction():
        late.run("INSERT INTO sqlml.serving (model, state, signature) VALUES (?, ?, ?)", ["late", "{}", "s"])
        other.run("INSERT INTO sqlml.serving (model, state, signature) VALUES (?, ?, ?)", ["other", "{}", "s"])
    assert Store(None, str(tmp_path)).run("SELECT model FROM sqlml.serving") == [("other",)]
    assert late.run("SELECT model FROM sqlml.serving") == [("other",)]  # the loser reads the winner's state
    on_disk = {f"{d}/{f}" for d in os.listdir(tmp_path) if d != "_log" for f in os.listdir(tmp_path / d)}
    assert on_disk == _files_named(tmp_path)  # and left no file of its own behind


def _files_named(path) -> set[str]:
    """Every file some manifest names (older manifests stay readable: their files are kept)."""
    import json
    named = set()
    for manifest in os.listdir(path / "_log"):
        with open(path / "_log" / manifest) as f:
            named |= {name for spec in json.load(f)["tables"].values() for name in spec["files"]}
    return named


def test_a_row_breaking_the_registrys_constraints_is_refused_by_name(tmp_path):
    store = migrated(tmp_path)
    with pytest.raises(SqlmlError, match="NOT NULL constraint failed: deployments.signature"):
        store.run("INSERT INTO sqlml.deployments (model, seq, action) VALUES (?, ?, ?)", ["m", 1, "create"])
    assert Store(None, str(tmp_path)).run("SELECT count(*) FROM sqlml.deployments") == [(0,)]


def test_the_registrys_statements_are_routed_to_the_store_and_users_spark_sql_is_not():
    assert Store.handles(schema.Tables.of(CATALOG).models.join(["SELECT * FROM ", ""]))
    assert Store.handles("UPDATE sqlml.models SET label = 'x'")
    assert Store.handles(f"CREATE SCHEMA IF NOT EXISTS {exp.table_('sqlml', db=CATALOG, quoted=True).sql('duckdb')}")
    assert not Store.handles("SELECT sqlml_score FROM `my table` WHERE x = 'sqlml.models'")
    assert not Store.handles("SELECT * FROM penguins")


def test_the_connection_imports_duckdb_only_on_duckdbs_paths():
    """The Python API is engine-neutral: DuckDB is imported by its engine (sqlml/engines/duckdb/) when used."""
    code = "import sys, sqlml.connection; print(sorted(m for m in sys.modules if m.split('.')[0] == 'duckdb'))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
