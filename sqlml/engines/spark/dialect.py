"""The SQL the Spark engine runs: Spark's sqlglot dialect writing sqlml's own nodes (:mod:`sqlml.sql.nodes`,
found by key) in Spark's words. Registered with sqlglot as ``sqlmlspark``."""

from __future__ import annotations

from sqlglot import exp
from sqlglot.dialects.spark import Spark
from sqlglot.generators.spark import SparkGenerator

from ...errors import UnsupportedError
from ..nodes import WritesSqlmlNodes


def _generate_array(self: SparkGenerator, e: exp.Func) -> str:
    """BigQuery's inclusive GENERATE_ARRAY(start, end, step), each element rounded to 12 decimals as on
    DuckDB: ``sequence`` counts from 0 to n inclusive, so the slice keeps n elements (none for n = 0)."""
    start, end = self.sql(e, "this"), self.sql(e, "expression")
    step = self.sql(e, "step") or "1"
    count = f"greatest(CAST(floor(({end} - {start}) / {step} + 1e-9) AS BIGINT) + 1, 0)"
    return f"slice(transform(sequence(0, {count}), i -> round(CAST({start} AS DOUBLE) + i * {step}, 12)), 1, {count})"


def _quantiles(self: SparkGenerator, e: exp.Func) -> str:
    # percentile is exact and interpolates linearly, as DuckDB's quantile_cont (percentile_approx is not exact)
    return self.func("percentile", e.this, exp.Array(expressions=e.expressions))


def _row_numbers(self: SparkGenerator, e: exp.Func) -> str:
    # Spark numbers rows only over an ordered window: the ids it gives rows as it reads them keep that order.
    return "(row_number() OVER (ORDER BY monotonically_increasing_id()) - 1)"


def _other_columns(self: SparkGenerator, e: exp.Func) -> str:
    raise UnsupportedError(
        "Spark cannot select 'every column but these' without knowing the columns (DuckDB's COLUMNS): only a "
        "DuckDB view over ML.PREDICT of a model with TRANSFORM, stored as text, needs that (a view on Spark is a "
        "temporary view, whose columns are known: docs/scale_out.md#views).")


class SqlmlSparkGenerator(WritesSqlmlNodes, SparkGenerator):
    SQLML = {
        "generatearray": _generate_array,
        "quantiles": _quantiles,
        "rownumbers": _row_numbers,
        "othercolumns": _other_columns,
    }


class SqlmlSpark(Spark):
    """Spark's dialect, writing sqlml's nodes."""

    Generator = SqlmlSparkGenerator


NAME = "sqlmlspark"  # sqlglot's name for SqlmlSpark (a dialect registers under its lowercased class name)
