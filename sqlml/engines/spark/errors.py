"""Spark's errors as sqlml errors: the one a batch function raised on an executor, as it was raised; the
others with Spark's own first line, which names the problem (an unknown column, a parse error ...)."""

from __future__ import annotations

import re
import typing as t

from ... import errors
from ...errors import SqlmlError

#: The last ``Name: message`` line of a Python traceback Spark relays from an executor.
RAISED = re.compile(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.*)$", re.MULTILINE)


def guarded(action: t.Callable[[], t.Any]) -> t.Any:
    """``action``'s value, Spark's errors turned into sqlml errors."""
    from pyspark.errors import PySparkException
    try:
        return action()
    except SqlmlError:
        raise
    except PySparkException as e:
        raise translate(e) from None
    except Exception as e:  # py4j's Py4JJavaError, and what a Python worker relays
        if type(e).__module__.startswith(("py4j", "pyspark")):
            raise translate(e) from None
        raise


def translate(e: Exception) -> SqlmlError:
    message = str(e)
    raised = RAISED.findall(message)
    for name, text in reversed(raised):  # the innermost: what the batch function itself raised
        kind = getattr(errors, name, None)
        if isinstance(kind, type) and issubclass(kind, SqlmlError):
            return kind(text)
    if "PythonException" in type(e).__name__ and raised:
        return SqlmlError(f"{raised[-1][0]}: {raised[-1][1]}")
    first = next((line.strip() for line in message.splitlines() if line.strip()), type(e).__name__)
    return SqlmlError(f"Spark: {first}")
