"""dbt-spark (``method: session``) running sqlml's statements on the SparkSession dbt uses.

On DuckDB the materializations reach sqlml through dbt-duckdb's Python models, run in the dbt
process (:mod:`sqlml.dbt.job`). dbt-spark has no such door: it runs Python models only as Databricks
jobs, and its session method hands every statement to ``SparkSession.sql``, whose Python functions run
in Spark's workers, never in the dbt process. So a dbt run that uses sqlml on Spark is started from
Python, inside :func:`attached`: while it lasts, a statement dbt-spark's session cursor runs that uses
sqlml's syntax (``CREATE MODEL``, ``ML.*``) or reads the registry goes through sqlml's Spark engine on
the same session (the registry under ``registry``); every other statement reaches Spark as dbt-spark
sends it::

    with sqlml.dbt.spark.attached(spark, registry="/shared/sqlml_registry"):
        dbtRunner().invoke(["build"])
"""

from __future__ import annotations

import contextlib
import typing as t

from ..errors import SqlmlError
from ..sql.parse import _needs_parsing


@contextlib.contextmanager
def attached(spark: t.Any, registry: str | None = None) -> t.Iterator[t.Any]:
    """Route dbt-spark's sqlml statements to a sqlml connection on ``spark`` (yielded) until the block ends."""
    from dbt.adapters.events.logging import AdapterLogger
    from dbt.adapters.spark import session
    from dbt_common.exceptions import DbtRuntimeError

    from ..connection import connect
    connection = connect(engine="spark", spark=spark, registry=registry, progress=AdapterLogger("sqlml").debug)
    store = connection.executor.engine.store
    plain = session.Cursor.execute

    def execute(cursor: t.Any, sql: str, *parameters: t.Any) -> None:
        if parameters or not (_needs_parsing(sql) or store.handles(sql)):
            return plain(cursor, sql, *parameters)
        try:
            cursor._df, cursor._rows = connection.sql(sql), None
        except SqlmlError as e:  # dbt prints a runtime error's message without a Python traceback
            raise DbtRuntimeError(f"sqlml: {e}") from None

    session.Cursor.execute = execute
    try:
        yield connection
    finally:
        session.Cursor.execute = plain
