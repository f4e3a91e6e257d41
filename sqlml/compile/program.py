"""A compiled model as steps of named expressions, written as one SELECT in one of three forms.

Each step computes named columns from the input relation's columns and the earlier steps' (the
features, the distinct split conditions of the trees, a network's layers, the scores); the outputs
are ML.PREDICT's prediction columns. How the SELECT carries the input's own columns to the end
depends on what is known about them:

* **explicit** — the input's columns are known (a view, ML.GENERATE_SQL over a TABLE): one nested
  SELECT per step, each listing the columns later steps read; the outer one lists the prediction
  columns, then the input's columns, exactly as ML.PREDICT does.
* **star** — columns unknown, in a dialect with ``SELECT * EXCEPT``: each step adds its columns to
  ``*``; the outer SELECT drops the internal ones again.
* **correlated** — columns unknown, in Postgres and SQLite (no ``* EXCEPT``): each prediction column
  is a scalar subquery whose innermost SELECT reads the outer row's columns, then ``src.*``. The
  model is computed once per prediction column (twice for a classifier: label and probabilities).
"""

from __future__ import annotations

import itertools
import typing as t
from dataclasses import dataclass, field

from sqlglot import exp

from .expressions import FENCED, STAR_EXCEPT, column

PREFIX = "__sqlml_"
SOURCE = f"{PREFIX}in"  # the input relation's alias (the TRANSFORM's too, as sqlml.sql.transform names it)


@dataclass
class Program:
    """Steps of named expressions and the prediction columns computed from them."""

    steps: list[dict[str, exp.Expr]] = field(default_factory=list)
    outputs: list[tuple[str, exp.Expr]] = field(default_factory=list)
    _names: t.Iterator[int] = field(default_factory=itertools.count)

    def step(self, expressions: t.Sequence[exp.Expr], tag: str) -> list[exp.Column]:
        """Add a step computing ``expressions``; references to its columns, in order."""
        names = [f"{PREFIX}{tag}{next(self._names)}" for _ in expressions]
        self.steps.append(dict(zip(names, expressions)))
        return [column(n) for n in names]

    def internal(self) -> list[str]:
        return [name for step in self.steps for name in step]


@dataclass
class Relation:
    """The rows the model reads: the input itself, or the input through the model's TRANSFORM.

    ``items``: the TRANSFORM's columns (name → expression over the input's columns); ``columns``: the
    relation's column names when known (TRANSFORM columns first, as ML.PREDICT shows them);
    ``hidden``: input columns a TRANSFORM column of the same name replaces (dropped after ``*``)."""

    source: exp.Expr  # a table or a parenthesized query
    columns: list[str] | None = None
    items: dict[str, exp.Expr] = field(default_factory=dict)
    hidden: list[str] = field(default_factory=list)


def render(program: Program, relation: Relation, dialect: str) -> exp.Select:
    """The SELECT returning ``program``'s outputs, then the relation's columns."""
    fence = dialect in FENCED
    if relation.columns is not None:
        return _explicit(program, relation, fence)
    if dialect in STAR_EXCEPT:
        return _star(program, relation, fence)
    return _correlated(program, relation, fence)


def _source(relation: Relation) -> exp.Expr:
    source = relation.source.copy()
    if isinstance(source, exp.Subquery):
        return source.as_(SOURCE, quoted=True)
    return exp.alias_(source, SOURCE, table=True, quoted=True)


def _items_select(relation: Relation, rest: list[exp.Expr]) -> exp.Select:
    items = [e.copy().as_(n, quoted=True) for n, e in relation.items.items()]
    return _select(*items, *rest).from_(_source(relation), copy=False)


def _select(*expressions: exp.Expr) -> exp.Select:
    """SELECT of ``expressions`` taken as they are (sqlglot's builders copy every argument: for a model of
    thousands of nodes, layer upon layer, the copies cost seconds)."""
    return exp.Select(expressions=list(expressions))


def _wrap(select: exp.Select, depth: int, fence: bool) -> exp.Expr:
    """``(select) AS __sqlml_s<depth>``, fenced with OFFSET 0 where the planner would dissolve it (:data:`FENCED`)."""
    return (select.offset(0, copy=False) if fence else select).subquery(f"{PREFIX}s{depth}", copy=False)


def _explicit(program: Program, relation: Relation, fence: bool) -> exp.Select:
    if relation.items:
        rest = [column(c) for c in relation.columns if c not in relation.items]
        base: exp.Expr = _wrap(_items_select(relation, rest), 0, fence)
    else:
        base = _source(relation)
    outputs = [e.as_(n, quoted=True, copy=False) for n, e in program.outputs]
    kept = [column(c) for c in relation.columns if c not in dict(program.outputs)]
    return _select(*outputs, *kept).from_(_layers(program, base, relation.columns, program.outputs, fence))


def _layers(program: Program, base: exp.Expr, carried: list[str], outputs: list[tuple[str, exp.Expr]],
            fence: bool, fresh: bool = False) -> exp.Expr:
    """``base`` with one nested SELECT per step, each listing ``carried`` (base columns kept to the end)
    and the step columns that later steps or ``outputs`` read (``fresh``: copies of the steps' expressions,
    for a program written more than once)."""
    needed, defined, current = _needed_after(program, outputs), set(), base
    for depth, step in enumerate(program.steps, start=1):
        kept = [column(c) for c in carried] + [column(n) for n in needed[depth - 1] if n in defined]
        defined |= set(step)
        computed = [(e.copy() if fresh else e).as_(n, quoted=True, copy=False) for n, e in step.items()]
        current = _wrap(_select(*kept, *computed).from_(current, copy=False), depth, fence)
    return current


def _needed_after(program: Program, outputs: list[tuple[str, exp.Expr]]) -> list[list[str]]:
    """For each step, the internal names that later steps or ``outputs`` read (in definition order)."""
    internal = set(program.internal())
    reads = [_reads(step.values()) & internal for step in program.steps] + [_reads(e for _, e in outputs) & internal]
    order = program.internal()
    needed, later = [], set()
    for i in range(len(program.steps), 0, -1):
        later |= reads[i]
        needed.append([n for n in order if n in later])
    return needed[::-1]


def _reads(expressions: t.Iterable[exp.Expr]) -> set[str]:
    return {c.name for e in expressions for c in e.find_all(exp.Column)}


def _star(program: Program, relation: Relation, fence: bool) -> exp.Select:
    if relation.items:
        rest = exp.Star(**{"except_": [column(c) for c in relation.hidden]} if relation.hidden else {})
        current: exp.Expr = _wrap(_items_select(relation, [rest]), 0, fence)
    else:
        current = _source(relation)
    for depth, step in enumerate(program.steps, start=1):
        computed = [e.as_(n, quoted=True, copy=False) for n, e in step.items()]
        current = _wrap(_select(exp.Star(), *computed).from_(current, copy=False), depth, fence)
    outputs = [e.as_(n, quoted=True, copy=False) for n, e in program.outputs]
    internal = program.internal()
    rest = exp.Star(**{"except_": [column(n) for n in internal]} if internal else {})
    return _select(*outputs, rest).from_(current, copy=False)


def _correlated(program: Program, relation: Relation, fence: bool) -> exp.Select:
    """Each output a scalar subquery over the steps, whose innermost SELECT (no FROM) reads the outer
    row: the TRANSFORM's columns computed from it, and the input columns the steps read."""
    internal = set(program.internal())
    raw = sorted(_reads(e for step in program.steps for e in step.values()) - internal - set(relation.items))
    row = [_outer(e).as_(n, quoted=True) for n, e in relation.items.items()]
    row += [exp.column(c, table=SOURCE, quoted=True).as_(c, quoted=True) for c in raw]
    outputs = []
    for name, expression in program.outputs:
        base = _wrap(_select(*[r.copy() for r in row]), 0, fence)
        layers = _layers(program, base, [*relation.items, *raw], [(name, expression)], fence, fresh=True)
        outputs.append(_select(expression.copy()).from_(layers, copy=False).subquery().as_(name, quoted=True))
    items = [_outer(e).as_(n, quoted=True) for n, e in relation.items.items()]
    return _select(*outputs, *items, exp.Star()).from_(_source(relation), copy=False)


def _outer(node: exp.Expr) -> exp.Expr:
    """``node`` with its column references read from the outer row."""
    def qualify(n: exp.Expr) -> exp.Expr:
        return exp.column(n.name, table=SOURCE, quoted=True) if isinstance(n, exp.Column) and not n.table else n
    return node.copy().transform(qualify)
