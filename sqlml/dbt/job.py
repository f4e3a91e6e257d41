"""Runs sqlml statements for dbt's sqlml materializations, in the dbt process.

dbt-duckdb runs a Python model in-process, on the dbt thread's own cursor. The materializations
use that door: they hand dbt-duckdb a generated module (macro ``sqlml.python_job``) whose
``model`` function calls :func:`run` with the statements to execute. A user error cannot travel
back as an exception without dbt-duckdb printing a Python traceback around it, so :func:`run`
leaves the message in the session variable :data:`ERROR_VARIABLE` and the materialization raises it.

The statements arrive JSON-encoded: dbt's ``tojson`` writes non-ASCII characters as ``\\u``
escapes, surrogate pairs included, which only a JSON decoder joins back into one character.
"""

from __future__ import annotations

import json

import duckdb
from dbt.adapters.events.logging import AdapterLogger

from ..errors import SqlmlError
from . import plugin

ERROR_VARIABLE = "sqlml_dbt_error"

logger = AdapterLogger("sqlml")  # progress messages go to dbt's log file (logs/dbt.log)


def run(session, statements_json: str, needs_plugin: bool = False, dialect: str = "duckdb") -> None:
    """Run the JSON-encoded sqlml statements on ``session`` (dbt-duckdb's wrapped cursor), read in
    ``dialect`` (the model's ``config(dialect='bigquery')`` reads a model written for BigQuery ML; the
    statements the materializations wrap around it read the same in both).

    On a user error the statement's effects are whatever sqlml guarantees (a model version is
    stored whole or not at all) and the message is left in ``getvariable('sqlml_dbt_error')``.
    """
    from ..connection import Connection

    cursor = _duckdb_cursor(session)
    cursor.execute(f"SET VARIABLE {ERROR_VARIABLE} = NULL")
    try:
        if needs_plugin and not plugin.configured():
            raise SqlmlError("A sqlml_view calls sqlml's scoring functions whenever it is read; add the plugin "
                             "to the profile in profiles.yml:  plugins: [{module: sqlml.dbt.plugin, alias: sqlml}]")
        Connection(cursor, progress=logger.debug, dialect=dialect).sql(json.loads(statements_json))
    except SqlmlError as e:
        cursor.execute(f"SET VARIABLE {ERROR_VARIABLE} = ?", [str(e)])


def _duckdb_cursor(session) -> duckdb.DuckDBPyConnection:
    """dbt-duckdb hands Python models its cursor wrapper (maybe inside a retrying wrapper);
    sqlml needs the DuckDB cursor underneath."""
    while not isinstance(session, duckdb.DuckDBPyConnection) and hasattr(session, "_cursor"):
        session = session._cursor
    return session
