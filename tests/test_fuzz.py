"""Fuzzing: mutated statements fail only with sqlml errors, never with a Python traceback.

Valid statements (CREATE/ALTER/DROP MODEL, ML.* calls with STRUCT and GENERATE_ARRAY, plain DuckDB SQL)
are mutated by token deletions, duplications, swaps, punctuation insertions, substitutions (hostile
literals, keywords, names) and truncation, then parsed, planned and run on a small in-memory database
with tiny trained models. Whatever the outcome, only an ``sqlml.SqlmlError`` may escape.

The budget is bounded and derandomized so CI is fast and reproducible; run longer with e.g.
``SQLML_FUZZ_EXAMPLES=5000 python -m pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sqlml
from sqlml.errors import OptionError, ParameterError, SqlmlError, SqlmlParseError
from sqlml.sql.plan import Planner

#: ~1,000 examples run in about 10 s; the CI budget is 60 s.
EXAMPLES = int(os.environ.get("SQLML_FUZZ_EXAMPLES", "1000"))

#: Statements that run as written. The ones that create, alter or drop models name only scratch models,
#: so no mutation can remove the models ``m`` and ``r`` the others read.
SEEDS = [
    ("CREATE OR REPLACE MODEL scratch TRANSFORM (x * 2 AS x2, c, y) OPTIONS (model_type = 'logistic_reg', "
     "input_label_cols = ['y'], max_iterations = 5, description = 'fuzz') AS SELECT x, c, y FROM t"),
    ("CREATE MODEL IF NOT EXISTS scratch_reg OPTIONS (model_type = 'linear_reg', input_label_cols = ['x'], "
     "data_split_method = 'NO_SPLIT', l2_reg = 0.5) AS SELECT x, c FROM t WHERE x < 30"),
    "ALTER MODEL scratch SET OPTIONS (description = 'changed', threshold = 0.4)",
    "DROP MODEL IF EXISTS scratch_reg",
    "SELECT * FROM ML.PREDICT(MODEL m, (SELECT x, c FROM t LIMIT 5), STRUCT(0.3 AS threshold))",
    "SELECT * FROM ML.EVALUATE(MODEL m, TABLE t, STRUCT(['c'] AS slice_by, 5 AS min_slice_size))",
    "SELECT threshold, recall FROM ML.ROC_CURVE(MODEL m, TABLE t, GENERATE_ARRAY(0.1, 0.9, 0.2))",
    "SELECT * FROM ML.THRESHOLD_METRICS(MODEL m, TABLE t, STRUCT([0.25, 0.5] AS thresholds))",
    "SELECT * FROM ML.CONFUSION_MATRIX(MODEL m VERSION 1, TABLE t)",
    "SELECT * FROM ML.EXPLAIN_PREDICT(MODEL r, (SELECT * FROM t LIMIT 3), STRUCT(2 AS top_k_features))",
    "SELECT * FROM ML.WEIGHTS(MODEL m, STRUCT(TRUE AS standardize)); SELECT * FROM ML.FEATURE_INFO(MODEL r)",
    "CREATE OR REPLACE VIEW scored AS SELECT * FROM ML.PREDICT(MODEL m, TABLE t)",
    "SELECT c, count(*) AS n, avg(x) FROM t WHERE x BETWEEN 1 AND 30 GROUP BY c ORDER BY n DESC",
    "WITH a AS (SELECT x, [x, x + 1] AS l, {'k': c} AS s FROM t) SELECT l[1], s.k, 'it''s' FROM a",
    "CREATE OR REPLACE TEMP TABLE scratch_t AS SELECT x::INTEGER AS i, c FROM t; SELECT * FROM scratch_t",
]
PUNCTUATION = list("(),;.[]{}'\"=*+-:<>")
#: Tokens a mutation may put in place of another: hostile literals, keywords, names and fragments.
SUBSTITUTES = ["NULL", "'abc'", "-1", "7", "0", "-0.5", "1e308", "99999999999999999999999", "TRUE", "[]", "[1, 'a']",
               "STRUCT()", "STRUCT(1 AS a)", "MODEL", "TABLE", "SELECT", "VERSION", "ORDER", "(SELECT 1)", "*", "x", "c",
               "y", "t", "'x'", "['x', 'c']", "GENERATE_ARRAY(", "ML.PREDICT(MODEL m, TABLE t)", "'nan'::DOUBLE"]
TOKEN = re.compile(r"\s*(?:'(?:[^']|'')*'|\d+(?:\.\d+)?|\w+|\S)")


@pytest.fixture(scope="module")
def db():
    """A small table ``t`` with a classifier ``m`` (with TRANSFORM) and a regressor ``r`` on it."""
    conn = sqlml.connect(progress=lambda message: None)
    conn.sql("CREATE TABLE t AS SELECT range::DOUBLE AS x, ['a', 'b', 'c'][range % 3 + 1] AS c, "
             "(range * 7) % 10 < 4 AS y FROM range(40)")
    conn.sql("CREATE MODEL m TRANSFORM (x, c, y) OPTIONS (model_type = 'logistic_reg', input_label_cols = ['y']) "
             "AS SELECT * FROM t")
    conn.sql("CREATE MODEL r OPTIONS (model_type = 'linear_reg', input_label_cols = ['x']) AS SELECT * FROM t")
    for seed in SEEDS:  # the seeds are valid: a failure below is the mutation's
        conn.sql(seed)
    yield conn
    conn.close()


def tokens(text: str) -> list[str]:
    """``text`` cut into tokens, each with the whitespace before it, so ``"".join`` gives it back."""
    found = TOKEN.findall(text)
    assert "".join(found) == text
    return found


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A seed statement with one to four token-level mutations."""
    parts = tokens(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        if not parts:
            break
        i = draw(st.integers(0, len(parts) - 1))
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "punctuate", "substitute", "truncate"]))
        if kind == "delete":
            del parts[i]
        elif kind == "duplicate":
            parts.insert(i, parts[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(parts) - 1))
            parts[i], parts[j] = parts[j], parts[i]
        elif kind == "punctuate":
            parts.insert(i, " " * draw(st.integers(0, 1)) + draw(st.sampled_from(PUNCTUATION)))
        elif kind == "substitute":
            parts[i] = " " + draw(st.sampled_from(SUBSTITUTES))
        else:
            parts = parts[:i]
    return "".join(parts)


def only_sqlml_errors(action, text: str) -> None:
    try:
        action()
    except sqlml.SqlmlError:
        pass
    except Exception as e:  # the escape is the finding: show the statement that caused it
        raise AssertionError(f"{type(e).__name__} escaped for {text!r}: {e}") from e


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=mutated())
def test_mutated_statements_raise_only_sqlml_errors(db, text):
    def parse_and_plan():
        planner = Planner()
        for dialect in ("duckdb", "bigquery"):
            for statement in sqlml.parse(text, dialect):
                planner.plan(statement)

    only_sqlml_errors(parse_and_plan, text)
    only_sqlml_errors(lambda: db.sql(text), text)


def test_the_models_survive_the_fuzzing(db):
    """The scratch-only seeds kept ``m`` and ``r``: the fuzzing above ran against trained models."""
    assert db.sql("SELECT count(*) FROM ML.PREDICT(MODEL m, TABLE t)").fetchall() == [(40,)]
    assert db.sql("SELECT count(*) FROM ML.PREDICT(MODEL r, TABLE t)").fetchall() == [(40,)]


# ---- what the fuzzer found, each at its root ----

def test_parse_works_on_a_fresh_import():
    """``sqlml.parse`` registers the sqlml dialect itself (it failed with sqlglot's 'Unknown dialect')."""
    code = "import sqlml; print(type(sqlml.parse('SELECT * FROM ML.PREDICT(MODEL m, TABLE t)')[0]).__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "Select"


def test_sqlglot_crashes_are_parse_errors_and_plain_sql_passes_through(db):
    with pytest.raises(SqlmlParseError, match=r"Cannot parse the statement on line 1 \('SELECT \* FROM "
                                              r"ML.PREDICT\(MODEL m, \(SELECT \{:\}\)\)'\): check its brackets"):
        sqlml.parse("SELECT * FROM ML.PREDICT(MODEL m, (SELECT {:}))")
    with pytest.raises(SqlmlError, match="Parser Error"):  # DuckDB's own error, not sqlglot's AttributeError
        db.sql("WITH a AS (SELECT x, {:}")


@pytest.mark.parametrize(("statement", "error", "message"), [
    ("ALTER MODEL scratch SET OPTIONS (description = - 'changed')", OptionError,
     r"Cannot use -'changed' as an option value"),
    ("ALTER MODEL scratch SET OPTIONS (threshold = . 0.4)", OptionError, r"Cannot read 0\.0\.4 as a number"),
    ("SELECT * FROM ML.EVALUATE(MODEL m, TABLE t, STRUCT([-'c'] AS slice_by))", ParameterError,
     r"the 'slice_by' parameter must be a constant .*got -'c'"),
    ("SELECT * FROM ML.ROC_CURVE(MODEL m, TABLE t, GENERATE_ARRAY(0.1, 1e308, 1e-300))", ParameterError,
     r"GENERATE_ARRAY\(0\.1, 1e308, 1e-300\) has more than 100,000 elements; use a larger step"),
    ("SELECT * FROM ML.ROC_CURVE(MODEL m, TABLE t, GENERATE_ARRAY(0, 2, 0.5))", ParameterError,
     (r"The 'thresholds' parameter of ML.ROC_CURVE must be an array of numbers in the range \[0, 1\]. "
      r"Got \[0.0, 0.5, 1.0, 1.5, 2.0\]")),
    ("SELECT * FROM ML.ROC_CURVE(MODEL m, TABLE t, (0.5, STRUCT()))", ParameterError,
     r"'thresholds' parameter of ML.ROC_CURVE must be an array of numbers .* Got \[0.5, \{\}\]"),
    ("SELECT * FROM ML.PREDICT(MODEL m, TABLE t, 0.5)", ParameterError,
     r"ML.PREDICT's last argument must be STRUCT\(value AS name, ...\); got 0.5"),
    ("SELECT [1, 'a'] FROM ML.PREDICT(MODEL m, TABLE t)", SqlmlError, r"Could not convert string 'a' to INT32"),
])
def test_found_escapes_are_sqlml_errors(db, statement, error, message):
    with pytest.raises(error, match=message):
        db.sql(statement)


def test_generate_array_still_counts_like_bigquery(db):
    rows = db.sql("SELECT threshold FROM ML.ROC_CURVE(MODEL m, TABLE t, GENERATE_ARRAY(0.2, 0.8, 0.3))").fetchall()
    assert sorted(r[0] for r in rows) == pytest.approx([0.2, 0.5, 0.8])
    big = db.sql("SELECT count(*) FROM ML.ROC_CURVE(MODEL m, TABLE t, GENERATE_ARRAY(0, 1, 0.0001))").fetchall()
    assert big == [(10_001,)]
