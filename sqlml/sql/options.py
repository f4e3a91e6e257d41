"""OPTIONS (...) and STRUCT(...) literals as Python values, read from the AST (no engine round trip)."""

from __future__ import annotations

import typing as t
from decimal import Decimal

from sqlglot import exp

from ..errors import OptionError

#: Options ALTER MODEL may change after training; everything else needs a retrain.
ALTERABLE = ("threshold", "description", "intended_use", "limitations")


def to_python(value: exp.Expr) -> t.Any:
    """The Python value of an OPTIONS literal: numbers, strings, booleans, NULL, arrays, structs."""
    if isinstance(value, exp.Literal):
        py = value.to_py()
        return float(py) if isinstance(py, Decimal) else py
    if isinstance(value, exp.Neg):
        return -to_python(value.this)
    if isinstance(value, exp.Boolean):
        return value.this
    if isinstance(value, exp.Null):
        return None
    if isinstance(value, (exp.Array, exp.Tuple, exp.Struct)):
        return [to_python(v) for v in value.expressions]
    if isinstance(value, (exp.PropertyEQ, exp.Alias)):
        return to_python(value.this if isinstance(value, exp.Alias) else value.expression)
    if isinstance(value, (exp.Column, exp.Identifier, exp.Var)):
        return value.name
    if isinstance(value, exp.Anonymous):  # HPARAM_RANGE(a, b), HPARAM_CANDIDATES([...])
        return {"function": value.name.upper(), "args": [to_python(a) for a in value.expressions]}
    if isinstance(value, exp.Func):
        return {"function": value.sql_name().upper(), "args": [to_python(a) for a in value.iter_expressions()]}
    raise OptionError(f"Cannot use {value.sql()} as an option value: expected a literal, array or STRUCT.")


def options_to_dict(properties: list[exp.Expr] | None) -> dict[str, t.Any]:
    """OPTIONS (name = value, ...) as a dict with lower-case names; repeated names are an error."""
    result: dict[str, t.Any] = {}
    for prop in properties or []:
        name = prop.name.lower()
        if name in result:
            raise OptionError(f"Option '{name}' is given twice.")
        result[name] = to_python(prop.args["value"])
    return result
