"""How many times a statement reads each ML.* table: a stream of record batches can be read only once."""

from __future__ import annotations

import typing as t

from sqlglot import exp


def read_more_than_once(statement: exp.Expr, names: t.Iterable[str]) -> set[str]:
    """The ``names`` (tables the planner put in place of ML.* calls) that ``statement`` may read twice or
    more: through a CTE referenced more than once, or a recursive CTE (DuckDB may inline a CTE rather
    than compute it once, so counting references is the safe rule)."""
    return {name for name in names if _reads(statement, name.lower(), frozenset()) > 1}


def _reads(statement: exp.Expr, name: str, through: frozenset[str]) -> int:
    """References to the table ``name``, each one inside a CTE counted once per read of that CTE."""
    total = 0
    for table in statement.find_all(exp.Table):
        if table.name.lower() != name or table.args.get("db"):
            continue
        cte = table.find_ancestor(exp.CTE)
        if cte is None:
            total += 1
            continue
        alias = cte.alias_or_name.lower()
        recursive = bool(cte.parent and cte.parent.args.get("recursive"))
        if recursive or alias in through:  # read again on every iteration
            return 2
        total += _reads(statement, alias, through | {alias})
    return total
