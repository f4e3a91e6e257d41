"""ML.* outputs exposed to the one statement that reads them (docs/scale.md): a stream DuckDB pulls
batch by batch as the statement runs, so ``CREATE TABLE … AS SELECT * FROM ML.PREDICT(…)`` holds a few
batches whatever the row count; a table when the statement may read the output more than once."""

from __future__ import annotations

import typing as t

import pyarrow as pa

from .engines.base import Engine

if t.TYPE_CHECKING:  # not imported: importing sqlml.functions loads every handler (and scikit-learn)
    from .functions.base import Stream


def as_table(output: pa.Table | Stream) -> pa.Table:
    return output if isinstance(output, pa.Table) else output.table()


class Exposed:
    """The outputs registered for one statement; leaving the ``with`` block unregisters them and stops
    the streams the statement did not read to the end (a LIMIT)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.names: list[str] = []
        self._open: list[tuple[Stream, t.Iterator[pa.RecordBatch]]] = []
        self._error: Exception | None = None

    def add(self, name: str, output: pa.Table | Stream, read_once: bool) -> None:
        if not isinstance(output, pa.Table) and read_once:  # a Stream
            watched = self._watched(output)
            self.engine.register_stream(name, output.schema, watched)
            self._open.append((output, watched))
        else:
            self.engine.register_table(name, as_table(output))
        self.names.append(name)

    def _watched(self, stream: Stream) -> t.Iterator[pa.RecordBatch]:
        try:
            yield from stream.batches
        except Exception as e:  # the engine reports it only as "reading the stream failed"
            self._error = e
            raise

    def run(self, action: t.Callable[[], t.Any]) -> t.Any:
        """``action``'s value; when it fails because computing a stream failed (bad data in a later
        batch), that error as it was raised, not the engine's report of it."""
        try:
            return action()
        except Exception:
            if self._error is not None:
                raise self._error from None
            raise

    def __enter__(self) -> "Exposed":
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.names:
            self.engine.unregister_table(name)
        for stream, watched in self._open:
            watched.close()
            stream.close()
