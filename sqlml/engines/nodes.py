"""What every engine's sqlglot generator shares: writing sqlml's own expression nodes (sql/nodes.py)."""

from __future__ import annotations

import typing as t

from sqlglot import exp


class WritesSqlmlNodes:
    """A generator mixin: sqlml's nodes, written by the functions in ``SQLML`` (keyed by the node's
    ``key``). sqlglot's dispatch knows only its own classes, so these reach ``function_fallback_sql``."""

    SQLML: t.ClassVar[dict[str, t.Callable[[t.Any, exp.Func], str]]] = {}

    def function_fallback_sql(self, expression: exp.Func) -> str:
        write = self.SQLML.get(expression.key)
        return write(self, expression) if write else super().function_fallback_sql(expression)  # type: ignore[misc]
