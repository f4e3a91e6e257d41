"""BigQuery's own dialect as an input (``sqlml run --dialect bigquery``), registered with sqlglot as
``sqlmlbigquery``. A module of its own, imported only when a statement is read as BigQuery: sqlglot's
BigQuery dialect loads its type annotator (~0.15 s), which connecting and DuckDB SQL never need."""

from __future__ import annotations

from sqlglot.dialects.bigquery import BigQuery
from sqlglot.parsers.bigquery import BigQueryParser

from .dialect import _sqlml_parsers


class SqlmlBigQueryParser(BigQueryParser):  # BigQuery's parser already splits backtick paths
    FUNCTIONS, FUNCTION_PARSERS, STATEMENT_PARSERS = _sqlml_parsers(BigQueryParser)


class SqlmlBigQuery(BigQuery):
    """BigQuery's dialect with sqlml's statements and ML.* functions parsed exactly as in
    :class:`sqlml.sql.dialect.Sqlml`; statements are written out for the engine in ``Sqlml`` (DuckDB),
    which sqlglot transpiles to (quoting, SAFE_CAST, UNNEST, date functions)."""

    Parser = SqlmlBigQueryParser
