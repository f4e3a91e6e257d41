"""Plain SQL runs as written: the script is split at its semicolons by sqlml's scanner (checked against
DuckDB's own parser), only statements that use sqlml's syntax go through sqlglot, and errors still
carry the line of their statement."""

from __future__ import annotations

import duckdb
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot import exp

import sqlml
from sqlml.cli import main
from sqlml.errors import SqlmlParseError
from sqlml.sql.dialect import CreateModel
from sqlml.sql.parse import split

TRICKY = """-- a comment; with a semicolon
SELECT 'it''s; here' AS "a;""b", E'back\\'slash;' AS e, $$dollar; quoted$$ AS d, $tag$ $$; $tag$ AS t;
/* a block /* nested; */ comment */ SELECT `quoted;name` FROM (SELECT 1 AS "quoted;name");
SELECT 3 -- trailing; comment
;;
   ;  -- nothing here
"""


READER = duckdb.connect()  # only reads statements: one connection serves every check


def duckdb_statements(script: str) -> list[str]:
    return [s.query for s in READER.extract_statements(script)]


def same_statements(script: str) -> None:
    """sqlml's pieces are DuckDB's statements less what surrounds their code: around each piece, the
    rest of DuckDB's text is only comments, whitespace and semicolons (DuckDB finds no statement in it)."""
    pieces, theirs = [p.text for p in split(script)], duckdb_statements(script)
    assert len(pieces) == len(theirs), (pieces, theirs)
    for piece, statement in zip(pieces, theirs):
        start = statement.find(piece)
        assert start >= 0, (piece, statement)
        assert duckdb_statements(statement[:start] + "\n" + statement[start + len(piece):]) == []


def test_semicolons_inside_strings_names_comments_and_dollar_quotes_do_not_split():
    same_statements(TRICKY)
    assert len(list(split(TRICKY))) == 3


def test_statements_run_as_written_give_duckdbs_results(conn):
    expected = duckdb.connect().execute(TRICKY).fetchall()
    assert conn.sql(TRICKY).fetchall() == expected == [(3,)]
    first = TRICKY.split(";\n/*")[0]
    assert conn.sql(first).fetchall() == [("it's; here", "back'slash;", "dollar; quoted", " $$; ")]


def test_only_statements_that_use_sqlmls_syntax_are_parsed():
    statements = sqlml.parse("CREATE TABLE t (model VARCHAR); INSERT INTO t VALUES ('a MODEL; ML.PREDICT(');\n"
                             "SELECT GENERATE_ARRAY(1, 3); CREATE MODEL m OPTIONS (model_type = 'linear_reg') AS "
                             "SELECT 1 AS x; SELECT models FROM t")
    kinds = [type(s) for s in statements]
    # `model` as a column name is sqlml's word too: that statement parses (as before), which is only slower.
    assert kinds == [exp.Create, exp.Command, exp.Select, CreateModel, exp.Command]
    assert statements[1].this == "INSERT INTO t VALUES ('a MODEL; ML.PREDICT(')"
    assert [s.meta["line"] for s in statements] == [1, 1, 2, 2, 2]


def test_a_plain_statement_is_duckdbs_to_read(conn):
    """Kept as the very text written (sqlglot would have spelled ``2 ** 3`` as POWER(2, 3)), run by
    DuckDB, whose errors come back as sqlml errors."""
    query = "SELECT 2 ** 3 AS p, list_reduce([1, 2, 3], lambda x, y: x + y) AS total"
    assert [s.this for s in sqlml.parse(query)] == [query]
    assert conn.sql(query).fetchall() == duckdb.sql(query).fetchall() == [(8.0, 6)]
    with pytest.raises(sqlml.SqlmlError, match="syntax error"):
        conn.sql("SELECT FROM WHERE")


def test_errors_name_the_line_their_statement_starts_on(tmp_path):
    script = tmp_path / "script.sql"
    script.write_text("SELECT 'one;\ntwo' AS a;\n/* x;\n y; */\nSELECT * FROM missing_table;\n")
    result = CliRunner().invoke(main, ["run", str(script)])
    assert result.exit_code == 1
    assert "Error: Statement at line 5: Catalog Error: Table with name missing_table does not exist" in result.stderr


@pytest.mark.parametrize("script, where", [
    ("SELECT 1;\nSELECT 'abc", "near 'SELECT 'abc' (line 2, column 8)"),
    ("SELECT 1 /* open /* nested */", "near 'SELECT 1 /* open /* nested */' (line 1, column 10)"),
    ("SELECT $tag$ no end", "near 'SELECT $tag$ no end' (line 1, column 8)"),
    ('SELECT "name', "near 'SELECT \"name' (line 1, column 8)"),
])
def test_an_unclosed_string_or_comment_is_a_parse_error_with_its_place(script, where):
    with pytest.raises(SqlmlParseError) as error:
        sqlml.parse(script)
    assert str(error.value) == f"Cannot read the SQL: a string, quoted name or comment is not closed, {where}."


@pytest.mark.parametrize("sql, name, line, column, close", [
    ("SELECT * FROM ML.PREDICTT(MODEL m, TABLE t)", "PREDICTT", 1, 15, "PREDICT"),
    ("SELECT 1;\n  SELECT * FROM ml.evaluat(MODEL m)", "EVALUAT", 2, 17, "EVALUATE"),
])
def test_an_unknown_ml_function_is_named_with_the_closest(sql, name, line, column, close):
    """Where the parser would only say "Expecting )"; a call that parses is named by the planner, which
    knows whether a preprocessing function belongs there (tests/test_transform.py)."""
    with pytest.raises(SqlmlParseError) as error:
        sqlml.parse(sql)
    message = str(error.value)
    assert message.startswith(f"ML.{name} is not a function sqlml knows (line {line}, column {column}). Did "
                              f"you mean ML.{close}? sqlml's ML.* functions: ML.ARIMA_COEFFICIENTS, ")
    assert all(f" ML.{known}," in message for known in ("BASELINE", "FORECAST", "PREDICT", "RECOMMEND"))


def test_plain_statements_for_another_engine_are_parsed_to_be_written_in_its_dialect():
    """Kept as written only for DuckDB; for another engine (Spark) sqlglot must read them to transpile."""
    assert [type(s) for s in sqlml.parse("SELECT 2 ** 3; EXPORT DATABASE 'd'", engine="spark")] == \
        [exp.Select, exp.Command]
    assert [type(s) for s in sqlml.parse("SELECT 2 ** 3")] == [exp.Command]


# --- the split against DuckDB's parser on generated scripts ----------------------------------------------

TEXT = st.text(alphabet=";'\"$`/*-\\ \nab", max_size=12)


def _string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _escaped(text: str) -> str:
    return "E'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _dollar(text: str) -> str:
    return f"$q${text}$q$" if "$q" not in text else _string(text)


def _name(text: str) -> str:
    return '"' + (text or "n").replace('"', '""') + '"'


def _comment(text: str) -> str:
    return "/* " + text.replace("*/", "* /").replace("/*", "/ *") + " */"


VALUES = st.one_of(TEXT.map(_string), TEXT.map(_escaped), TEXT.map(_dollar), st.integers(0, 99).map(str))
STATEMENTS = st.builds(lambda value, name, note: f"SELECT {value} AS {name} {note}", VALUES, TEXT.map(_name),
                       st.one_of(st.just(""), TEXT.map(_comment), TEXT.map(lambda t: "-- " + t.replace("\n", " ") + "\n")))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(STATEMENTS, min_size=1, max_size=5), st.sampled_from([";", ";\n", " ; -- end;\n", ";;"]))
def test_the_split_equals_duckdbs_on_generated_scripts(statements, separator):
    same_statements(separator.join(statements))
