"""ML.* outputs exposed to the one statement that reads them (docs/scale.md). A row-level output is the
engine's (:meth:`~sqlml.engines.base.Engine.apply`): on DuckDB a stream pulled batch by batch as the
statement runs, so ``CREATE TABLE … AS SELECT * FROM ML.PREDICT(…)`` holds a few batches whatever the
row count (a table when the statement may read it more than once); on Spark a DataFrame its executors
compute. Other outputs are small Arrow tables."""

from __future__ import annotations

import typing as t

import pyarrow as pa

from .engines.base import Engine, Output


def as_table(output: pa.Table | Output) -> pa.Table:
    return output if isinstance(output, pa.Table) else output.table()


class Exposed:
    """The outputs registered for one statement; leaving the ``with`` block unregisters them and stops
    the row-level outputs the statement did not read to the end (a LIMIT)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.names: list[str] = []
        self._open: list[Output] = []

    def add(self, name: str, output: pa.Table | Output, read_once: bool) -> None:
        if isinstance(output, pa.Table):
            self.engine.register_table(name, output)
        else:
            self._open.append(output)
            self.engine.expose(name, output, read_once)
        self.names.append(name)

    def run(self, action: t.Callable[[], t.Any]) -> t.Any:
        """``action``'s value; when it fails because computing an output failed (bad data in a later
        batch), that error as it was raised, not the engine's report of it."""
        try:
            return action()
        except Exception:
            error = next((output.error for output in self._open if output.error is not None), None)
            if error is not None:
                raise error from None
            raise

    def __enter__(self) -> "Exposed":
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.names:
            self.engine.unregister_table(name)
        for output in self._open:
            output.close()
