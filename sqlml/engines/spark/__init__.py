"""The Spark engine (:mod:`.engine`), the dialect it writes its SQL in (:mod:`.dialect`), the registry's
Parquet store (:mod:`.store`) and what runs on the executors (:mod:`.batches`). Importing this module
imports no pyspark: it loads when a session is used."""

from .engine import SparkEngine
from .session import local_session

__all__ = ["SparkEngine", "local_session"]
