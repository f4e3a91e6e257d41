"""The SQL pieces a compiled model is made of, as sqlglot expressions that every target dialect writes.

Numbers are written with an exponent (``0.25e0``): DuckDB reads a plain ``0.25`` as a DECIMAL, which
would round a threshold or a weight on the way to DOUBLE; with ``repr`` digits a literal reads back as
the very double the model holds. Sums are balanced trees: a sum of a thousand terms written left to
right nests a thousand deep, past DuckDB's expression depth limit (~1,000) and sqlglot's recursion.
"""

from __future__ import annotations

import math
import typing as t

from sqlglot import exp

from ..errors import SqlmlError
from ..sql.catalog import SQL_DIALECTS as DIALECTS

#: ``exp()`` arguments are kept in [-EXP_LIMIT, EXP_LIMIT]: Postgres raises on an overflowing ``exp``,
#: and e^±700 is still a normal double, so a probability changes by less than 1e-300.
EXP_LIMIT = 700.0
#: Dialects that run ``SELECT * EXCEPT (...)`` (DuckDB and Snowflake spell it EXCLUDE; Spark has it since 4.0).
STAR_EXCEPT = frozenset({"duckdb", "snowflake", "bigquery", "spark"})
#: Dialects whose planners pull a subquery's expressions up into the query around it, so a value read
#: twice would be computed twice (each step of a network or a softmax, exponentially): ``OFFSET 0``
#: keeps each step a subquery of its own there (a DNN of 8 and 4 units: SQLite took 54 s for 344 rows without).
FENCED = frozenset({"postgres", "sqlite"})
#: Dialects without lists of structs: a list column is JSON text there (an array of objects).
JSON_LISTS = frozenset({"postgres", "sqlite"})


class NotCompilableError(SqlmlError):
    """A model (or one of its parts) has no plain-SQL form: the message says why."""


def number(value: float) -> exp.Expr:
    """A DOUBLE literal that reads back as exactly ``value``."""
    value = float(value)
    if not math.isfinite(value):
        raise NotCompilableError(f"The model holds a non-finite number ({value}), which plain SQL cannot write "
                                 "portably.")
    text = repr(abs(value))
    literal = exp.Literal.number(text if "e" in text else text + "e0")
    return exp.Neg(this=literal) if math.copysign(1.0, value) < 0 else literal


def integer(value: int) -> exp.Expr:
    return exp.Literal.number(int(value)) if value >= 0 else exp.Neg(this=exp.Literal.number(-int(value)))


def column(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def double(node: exp.Expr) -> exp.Expr:
    return exp.cast(node, exp.DataType.build("double"))


def balanced_sum(terms: t.Sequence[exp.Expr]) -> exp.Expr:
    """``terms`` added as a balanced tree (depth log2 n), zero when there are none."""
    if not terms:
        return number(0.0)
    if len(terms) == 1:
        return terms[0]
    middle = len(terms) // 2
    return plus(balanced_sum(terms[:middle]), balanced_sum(terms[middle:]))


def _operand(node: exp.Expr) -> exp.Expr:
    """``node`` in parentheses when it is an operation: a tree built by hand has no precedence of its own,
    and ``a + b + c`` would read back as ``(a + b) + c`` (a sum written in order nests as deep as it is long)."""
    operation = isinstance(node, (exp.Binary, exp.Unary)) and not isinstance(node, exp.Paren) \
        and not (isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal))
    return exp.Paren(this=node) if operation else node


def plus(left: exp.Expr, right: exp.Expr) -> exp.Expr:
    return exp.Add(this=_operand(left), expression=_operand(right))


def minus(left: exp.Expr, right: exp.Expr) -> exp.Expr:
    return exp.Sub(this=_operand(left), expression=_operand(right))


def times(left: exp.Expr, right: exp.Expr) -> exp.Expr:
    return exp.Mul(this=_operand(left), expression=_operand(right))


def divide(left: exp.Expr, right: exp.Expr) -> exp.Expr:
    return exp.Div(this=_operand(left), expression=_operand(right))


def greatest(*nodes: exp.Expr) -> exp.Expr:
    """GREATEST of non-NULL values (sqlite writes MAX(a, b, ...))."""
    return nodes[0] if len(nodes) == 1 else exp.Greatest(this=nodes[0], expressions=list(nodes[1:]), ignore_nulls=True)


def least(*nodes: exp.Expr) -> exp.Expr:
    return nodes[0] if len(nodes) == 1 else exp.Least(this=nodes[0], expressions=list(nodes[1:]), ignore_nulls=True)


def safe_exp(node: exp.Expr) -> exp.Expr:
    """``exp(x)`` with x clamped to ±EXP_LIMIT (see there)."""
    return exp.Exp(this=greatest(least(node, number(EXP_LIMIT)), number(-EXP_LIMIT)))


def logistic(node: exp.Expr) -> exp.Expr:
    """1 / (1 + e^-x): scipy's expit."""
    return divide(number(1.0), plus(number(1.0), safe_exp(exp.Neg(this=_operand(node)))))


def case(branches: t.Sequence[tuple[exp.Expr, exp.Expr]], default: exp.Expr) -> exp.Expr:
    """CASE WHEN condition THEN value ... ELSE default END."""
    if not branches:
        return default
    return exp.Case(ifs=[exp.If(this=c, true=v) for c, v in branches], default=default)


def if_(condition: exp.Expr, then: exp.Expr, otherwise: exp.Expr) -> exp.Expr:
    return case([(condition, then)], otherwise)


def literal(value: t.Any, label_type: str) -> exp.Expr:
    """A class label (or a category) as the SQL literal of its stored type."""
    if label_type == "bool":
        return exp.true() if value else exp.false()
    if label_type == "int":
        return exp.cast(integer(value), exp.DataType.build("bigint"))
    if label_type == "float":
        return number(value)
    return exp.Literal.string(str(value))


def struct_list(rows: t.Sequence[t.Sequence[tuple[str, exp.Expr]]], dialect: str) -> exp.Expr:
    """A list of structs with named fields (``[{'label': ..., 'prob': ...}, ...]``); JSON text (an array
    of objects with the same fields) in the dialects of :data:`JSON_LISTS`."""
    if dialect in JSON_LISTS:
        return exp.JSONArray(expressions=[
            exp.JSONObject(expressions=[exp.JSONKeyValue(this=exp.Literal.string(name), expression=value)
                                        for name, value in row]) for row in rows])
    return exp.Array(expressions=[
        exp.Struct(expressions=[exp.PropertyEQ(this=exp.to_identifier(name), expression=value) for name, value in row])
        for row in rows])


def category_test(node: exp.Expr, values: t.Iterable[t.Any], boolean: bool) -> exp.Expr:
    """Whether ``node`` is one of ``values`` (None: NULL), never NULL itself. Categories of a boolean
    column are 'true' / 'false' (as training encoded them) and are compared as booleans."""
    values = list(values)
    tests: list[exp.Expr] = [exp.Is(this=node.copy(), expression=exp.null())] if None in values else []
    present = [v for v in values if v is not None]
    if boolean:
        tests += [node.copy() if v == "true" else exp.Not(this=node.copy()) for v in present if v in ("true", "false")]
        tests = [exp.Coalesce(this=tst, expressions=[exp.false()]) if not isinstance(tst, exp.Is) else tst
                 for tst in tests]
    elif present:
        tests.append(exp.Coalesce(this=exp.In(this=node.copy(), expressions=[exp.Literal.string(v) for v in present]),
                                  expressions=[exp.false()]))
    if not tests:
        return exp.false()
    return tests[0] if len(tests) == 1 else exp.Paren(this=exp.or_(*tests))


def category_lookup(node: exp.Expr, values: t.Mapping[t.Any, exp.Expr], boolean: bool,
                    default: exp.Expr | None = None) -> exp.Expr:
    """The value of ``node``'s category (a one-hot block times its weights): ``values`` maps each category
    (None: NULL) to an expression; any other category gives ``default`` (zero: an unseen category
    contributes nothing)."""
    default = number(0.0) if default is None else default
    branches = [(category_test(node, [category], boolean), value) for category, value in values.items()
                if category is None or boolean]
    plain = {category: value for category, value in values.items() if category is not None and not boolean}
    rest = exp.Case(this=node.copy(), ifs=[exp.If(this=exp.Literal.string(c), true=v) for c, v in plain.items()],
                    default=default) if plain else default
    return case(branches, rest)
