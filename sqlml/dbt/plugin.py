"""A dbt-duckdb plugin: sqlml's scoring functions on the connection dbt keeps for the whole run.

A view built by the ``sqlml_view`` materialization calls one scoring function per model version;
DuckDB stores the view as text, so any session reading it needs those functions defined.
dbt-duckdb calls :meth:`Plugin.configure_connection` once on its parent connection, and every dbt
thread's cursor sees the functions defined there. In ``profiles.yml``::

    plugins:
      - module: sqlml.dbt.plugin
        alias: sqlml

When dbt opens the database the plugin also creates the registry table (``sqlml.models``) and the
audit table (:data:`AUDIT_DDL`, ``sqlml.training_runs``) if they do not exist yet — once, before
any dbt thread runs, so parallel models never race to create them — and defines the functions
behind the table-expression macros (:mod:`sqlml.dbt.macro_sql`).

A scoring function a materialization defines on its thread's cursor stays valid after dbt closes
that cursor (:mod:`sqlml.udf` keeps every function alive), and loads its model through this
parent connection.
"""

from __future__ import annotations

import threading

import duckdb
from dbt.adapters.duckdb.plugins import BasePlugin

_lock = threading.Lock()
_connection: duckdb.DuckDBPyConnection | None = None


# One row per training run of a sqlml_model, appended by the materialization, never rewritten.
# Schema version 1; columns are only ever added at the end.
AUDIT_DDL = """CREATE TABLE IF NOT EXISTS {table} (
    run_id VARCHAR NOT NULL,
    model_name VARCHAR NOT NULL,
    model_version INTEGER NOT NULL,
    model_type VARCHAR NOT NULL,
    label VARCHAR,
    options JSON,
    metrics JSON,
    training_rows BIGINT,
    eval_rows BIGINT,
    fingerprint VARCHAR NOT NULL,
    trained_at TIMESTAMP NOT NULL,
    dbt_invocation_id VARCHAR,
    dbt_node VARCHAR,
    schema_version INTEGER NOT NULL
)"""


class Plugin(BasePlugin):
    def configure_connection(self, conn: duckdb.DuckDBPyConnection) -> None:
        import sqlml

        from ..engines.duckdb import DuckDBEngine
        from ..registry.schema import qualified
        from ..registry.versions import Registry
        from . import macro_sql
        global _connection
        with _lock:
            ((read_only,),) = conn.execute("SELECT readonly FROM duckdb_databases() "
                                           "WHERE database_name = current_database()").fetchall()
            if not read_only:  # a read-only target reads the tables of an earlier run, or none
                tables = Registry(DuckDBEngine(conn)).ensure()  # qualified: the file may be sqlml.duckdb
                conn.execute(AUDIT_DDL.format(table=qualified(tables.catalog, "training_runs")))
            sqlml.register(conn)
            macro_sql.define(conn)
            _connection = conn


def configured() -> bool:
    """Whether dbt's profile lists this plugin (for the run going on in this process)."""
    with _lock:
        return _open()


def _open() -> bool:
    """A connection of an earlier dbt invocation in this process is closed by now."""
    if _connection is None:
        return False
    try:
        _connection.execute("SELECT 1").fetchall()
    except duckdb.ConnectionException:
        return False
    return True
