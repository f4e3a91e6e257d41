"""Values bound to a statement's parameters (``$name`` or ``?``), never written into its SQL text.

DuckDB binds ``$name`` values in each query it runs. sqlml derives several queries from one statement
(an ML.* function reads its input query on its own), so positional ``?`` placeholders are renamed
``$sqlml_1``, ``$sqlml_2`` … in the syntax tree, and every derived query is given the values it names
(:meth:`sqlml.engines.duckdb.DuckDBEngine.bound`).
"""

from __future__ import annotations

import typing as t

from sqlglot import exp

from ..errors import ParameterError

POSITIONAL = "sqlml_{}"


def named(statements: list[exp.Expr], params: t.Sequence | t.Mapping | None) -> dict:
    """``params`` by name, the positional ones' placeholders renamed in ``statements`` (in place);
    a parameter without a value, or a value no parameter takes, is refused."""
    if params is None:  # the SQL goes to DuckDB as before (which names a parameter left without a value)
        return {}
    placeholders = [p for s in statements for p in s.find_all(exp.Placeholder, exp.Parameter)]
    if not isinstance(params, t.Mapping):
        params = _positional(placeholders, list(params))
    used = {_name(p) for p in placeholders}
    missing, unused = sorted(used - set(params)), sorted(set(params) - used)
    if missing:
        raise ParameterError(f"No value given for parameter(s) {', '.join('$' + m for m in missing)}.")
    if unused:
        raise ParameterError(f"Value(s) given for {', '.join('$' + u for u in unused)}, which the SQL does not use.")
    return dict(params)


def _positional(placeholders: list[exp.Expression], values: list) -> dict:
    anonymous = [p for p in placeholders if isinstance(p, exp.Placeholder) and not p.this]
    if len(anonymous) != len(values):
        raise ParameterError(f"The SQL has {len(anonymous)} '?' parameter(s) but {len(values)} value(s) were given.")
    names = {}
    for number, (placeholder, value) in enumerate(zip(anonymous, values), 1):
        placeholder.set("this", POSITIONAL.format(number))
        names[POSITIONAL.format(number)] = value
    return names


def _name(placeholder: exp.Expression) -> str:
    this = placeholder.this
    return this.name if isinstance(this, exp.Expression) else str(this or "?")
