"""A PEP 249 cursor over :meth:`sqlml.Connection.sql`, so tools that take a DB-API connection (JupySQL's
``%sql``, BI connectors written against DB-API) run sqlml statements: ``conn.cursor().execute(
"SELECT * FROM ML.PREDICT(MODEL m, TABLE t)")``. Each ``execute`` is one call of ``Connection.sql``
(parameters bound, never pasted); the result is read into memory, as DB-API cursors' fetches expect."""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from .connection import Connection


class Cursor:
    """The cursor of :meth:`sqlml.Connection.cursor`."""

    arraysize = 1

    def __init__(self, connection: "Connection"):
        self.connection = connection
        self.description: list[tuple] | None = None
        self.rowcount = -1
        self._rows: list[tuple] = []

    def execute(self, operation: str, parameters: t.Sequence | t.Mapping | None = None) -> "Cursor":
        result = self.connection.sql(operation, parameters or None, namespace={})
        if result is None:
            self.description, self._rows, self.rowcount = None, [], -1
            return self
        table = result.to_arrow_table()
        self.description = [(f.name, str(f.type), None, None, None, None, None) for f in table.schema]
        self._rows = [tuple(row.values()) for row in table.to_pylist()]
        self.rowcount = len(self._rows)
        return self

    def fetchone(self) -> tuple | None:
        return self._rows.pop(0) if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[tuple]:
        size = self.arraysize if size is None else size
        taken, self._rows = self._rows[:size], self._rows[size:]
        return taken

    def fetchall(self) -> list[tuple]:
        taken, self._rows = self._rows, []
        return taken

    def close(self) -> None:
        self._rows = []

    def __iter__(self) -> t.Iterator[tuple]:
        while (row := self.fetchone()) is not None:
            yield row
