"""The sqlml dialect: statements round-trip through sqlglot, plain DuckDB SQL passes untouched."""

import pytest
import sqlglot

import sqlml
from sqlml.sql.dialect import AlterModel, CreateModel, DropModel, MLCall, ModelRef


def validate_identity(sql: str, expected: str | None = None) -> sqlglot.exp.Expr:
    """Parse with the sqlml dialect and generate it back (sqlglot's test idiom)."""
    tree = sqlglot.parse_one(sql, read="sqlml")
    assert tree.sql("sqlml") == (expected or sql)
    return tree


class TestStatements:
    def test_create_model(self):
        tree = validate_identity(
            "CREATE OR REPLACE MODEL IF NOT EXISTS s.m OPTIONS (model_type = 'linear_reg', "
            "input_label_cols = ['y'], l2_reg = 0.1) AS SELECT * FROM t"
        )
        assert isinstance(tree, CreateModel)
        assert tree.args["replace"] and tree.args["exists"]
        assert [o.name for o in tree.args["options"]] == ["model_type", "input_label_cols", "l2_reg"]

    def test_create_model_with_transform(self):
        tree = validate_identity("CREATE MODEL m TRANSFORM (a * 2 AS a2, b) OPTIONS (model_type = 'linear_reg') AS SELECT 1")
        assert len(tree.args["transform"]) == 2

    def test_drop_and_alter(self):
        assert isinstance(validate_identity("DROP MODEL IF EXISTS m"), DropModel)
        assert isinstance(validate_identity("ALTER MODEL m SET OPTIONS (threshold = 0.3)"), AlterModel)

    def test_plain_duckdb_untouched(self):
        for sql in ["DROP TABLE t", "CREATE TABLE t AS SELECT 1", "SELECT predict(1, 2)", "ALTER TABLE t ADD COLUMN c INT"]:
            tree = sqlglot.parse_one(sql, read="sqlml")
            assert not isinstance(tree, (CreateModel, DropModel, AlterModel))
            assert tree.sql("sqlml").upper() == sql.upper()


class TestMLFunctions:
    @pytest.mark.parametrize("sql", [
        "SELECT * FROM ML.PREDICT(MODEL m, TABLE t)",
        "SELECT * FROM ML.EVALUATE(MODEL m)",
        "SELECT * FROM ML.TRAINING_INFO(MODEL m)",
        "WITH x AS (SELECT * FROM ML.EVALUATE(MODEL m)) SELECT * FROM x",
        "SELECT * FROM (SELECT * FROM ML.PREDICT(MODEL m, (SELECT 1 AS a)))",
        "CREATE TABLE s AS SELECT * FROM ML.PREDICT(MODEL m, TABLE t)",
        'SELECT * FROM ML.PREDICT(MODEL "my model" VERSION 2, (SELECT a FROM t)) AS p JOIN x ON p.a = x.a',
    ])
    def test_round_trip(self, sql):
        tree = validate_identity(sql)
        assert tree.find(MLCall) is not None

    def test_struct_params_become_duckdb_structs(self):
        tree = validate_identity("SELECT * FROM ML.PREDICT(MODEL m, TABLE t, STRUCT(0.5 AS threshold))",
                                 "SELECT * FROM ML.PREDICT(MODEL m, TABLE t, {'threshold': 0.5})")
        call = tree.find(MLCall)
        assert call.function == "PREDICT"
        assert isinstance(call.args["model"], ModelRef)
        assert call.args["input"].name == "t"

    def test_generate_array_works_on_duckdb_with_fractions(self, conn):
        assert conn.sql("SELECT GENERATE_ARRAY(0.1, 0.9, 0.2)").fetchall()[0][0] == [0.1, 0.3, 0.5, 0.7, 0.9]
        assert conn.sql("SELECT GENERATE_ARRAY(1, 5)").fetchall()[0][0] == [1, 2, 3, 4, 5]

    def test_version(self):
        call = sqlglot.parse_one("SELECT * FROM ML.EVALUATE(MODEL m VERSION 3)", read="sqlml").find(MLCall)
        assert call.args["model"].args["version"].this == "3"


class TestParseErrors:
    @pytest.mark.parametrize("sql, message, line, col", [
        ("SELECT * FROM ML.PREDICT(MODEL m, TABLE t", "Expecting )", 1, 41),
        ("CREATE MODEL m OPTIONS (a=1) AS", "Expecting a query after AS", 1, 31),
        ("ALTER MODEL m SET", "Expecting OPTIONS", 1, 17),
        ("CREATE MODEL m OPTIONS (a 1)", "Expecting name = value in OPTIONS", 1, 27),
        ("SELECT 1;\nSELECT * FROM ML.PREDICT(MODEL m VERSION)", "Expecting a version number", 2, 41),
        ("EXPORT DATABASE 'd';\n  SELECT * FROM ML.EVALUATE(MODEL x", "Expecting )", 2, 35),  # after a passthrough
    ])
    def test_errors_carry_position(self, sql, message, line, col):
        with pytest.raises(sqlml.SqlmlParseError) as error:
            sqlml.parse(sql)
        assert message in str(error.value)
        assert f"line {line}, column {col}" in str(error.value)

    def test_deep_nesting_is_a_parse_error_only_in_sqlml_syntax(self, conn):
        with pytest.raises(sqlml.SqlmlParseError, match="nested too deeply"):
            sqlml.parse("SELECT * FROM ML.PREDICT(MODEL m, (SELECT " + "(" * 5000 + "1" + ")" * 5000 + " AS x))")
        # Plain SQL sqlglot cannot nest that deep is DuckDB's to read (it runs 50 levels; refuses 5,000 itself).
        assert conn.sql("SELECT " + "(" * 50 + "1" + ")" * 50).fetchall() == [(1,)]
        with pytest.raises(sqlml.SqlmlError):
            conn.sql("SELECT " + "(" * 5000 + "1" + ")" * 5000).fetchall()

    def test_unclosed_string_is_a_parse_error(self):
        with pytest.raises(sqlml.SqlmlParseError, match="a string, quoted name or comment is not closed, near 'SELECT 'ab"):
            sqlml.parse("SELECT 'abc")

    def test_duckdb_statements_sqlglot_cannot_parse_run_as_written(self, conn, tmp_path):
        export = f"EXPORT DATABASE '{tmp_path / 'out'}' (FORMAT parquet)"
        statements = sqlml.parse(f"SELECT 1; {export};\nSELECT 2")
        assert [s.sql("sqlml") for s in statements] == ["SELECT 1", export, "SELECT 2"]
        conn.sql("CREATE TABLE kept AS SELECT 1 AS a")
        assert conn.sql(f"{export}; SELECT 42").fetchall() == [(42,)]
        assert (tmp_path / "out" / "kept.parquet").exists()

    def test_several_statements(self):
        assert len(sqlml.parse("SELECT 1; DROP TABLE x")) == 2
