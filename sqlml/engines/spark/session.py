"""A SparkSession for sqlml to start when the caller brings none (``sqlml.connect(engine="spark")``)."""

from __future__ import annotations

import os
import sys
import typing as t

#: Rows per record batch handed to row-level work: larger than Spark's default 10,000, since each batch
#: costs a scikit-learn call (DuckDB hands out about 122,880).
BATCH_ROWS = 65_536


def local_session(master: str = "local[*]") -> t.Any:
    """A session on ``master`` (``local[*]``: every core of this machine; or a cluster's URL) whose Python
    workers run this interpreter, so they import the same sqlml and scikit-learn."""
    from pyspark.sql import SparkSession
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # a host name may resolve to nothing reachable
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (SparkSession.builder.master(master).appName("sqlml")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(BATCH_ROWS))
               .getOrCreate())
    session.sparkContext.setLogLevel("FATAL")  # sqlml reports Spark's errors itself, as sqlml errors
    return session
