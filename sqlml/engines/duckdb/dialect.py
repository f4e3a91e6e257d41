"""The SQL the DuckDB engine runs: DuckDB's sqlglot dialect writing sqlml's own nodes
(:mod:`sqlml.sql.nodes`, found by key) in DuckDB's words. Registered with sqlglot as ``sqlmlduckdb``."""

from __future__ import annotations

from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.generators.duckdb import DuckDBGenerator

from ..nodes import WritesSqlmlNodes


def _generate_array(self: DuckDBGenerator, e: exp.Func) -> str:
    """BigQuery's inclusive GENERATE_ARRAY(start, end, step) for fractional steps too (DuckDB's
    generate_series takes integers only), each element rounded to 12 decimals."""
    start, end = self.sql(e, "this"), self.sql(e, "expression")
    step = self.sql(e, "step") or "1"
    count = f"CAST(floor(({end} - {start}) / {step} + 1e-9) AS BIGINT) + 1"
    return f"list_transform(range(0, greatest({count}, 0)), lambda i: round(CAST({start} AS DOUBLE) + i * {step}, 12))"


def _quantiles(self: DuckDBGenerator, e: exp.Func) -> str:
    return self.func("quantile_cont", e.this, exp.Array(expressions=e.expressions))


def _row_numbers(self: DuckDBGenerator, e: exp.Func) -> str:
    return "(row_number() OVER () - 1)"  # an empty window numbers rows in the order the query produces them


def _other_columns(self: DuckDBGenerator, e: exp.Func) -> str:
    names = self.expressions(sqls=[self.sql(exp.Literal.string(n.name)) for n in e.expressions], flat=True)
    return f"COLUMNS(lambda c: c NOT IN ({names}))"


class SqlmlDuckDBGenerator(WritesSqlmlNodes, DuckDBGenerator):
    SQLML = {
        "generatearray": _generate_array,
        "quantiles": _quantiles,
        "rownumbers": _row_numbers,
        "othercolumns": _other_columns,
    }


class SqlmlDuckDB(DuckDB):
    """DuckDB's dialect, writing sqlml's nodes."""

    Generator = SqlmlDuckDBGenerator


NAME = "sqlmlduckdb"  # sqlglot's name for SqlmlDuckDB (a dialect registers under its lowercased class name)
