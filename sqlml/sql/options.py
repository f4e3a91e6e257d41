"""OPTIONS (...) and STRUCT(...) literals as Python values, read from the AST (no engine round trip)."""

from __future__ import annotations

import typing as t
from decimal import Decimal

from sqlglot import exp

from ..errors import OptionError

#: Options ALTER MODEL may change after training; everything else needs a retrain.
ALTERABLE = ("threshold", "description", "intended_use", "limitations", "labels", "expiration_timestamp")


def to_python(value: exp.Expr) -> t.Any:
    """The Python value of an OPTIONS literal: numbers, strings, booleans, NULL, arrays, structs."""
    if isinstance(value, exp.Literal):
        return _literal(value)
    if isinstance(value, exp.Neg) and isinstance(value.this, exp.Literal) and not value.this.is_string:
        return -_literal(value.this)
    if isinstance(value, exp.Cast) and isinstance(value.this, exp.Literal) and value.to.is_type(*exp.DataType.TEMPORAL_TYPES):
        return value.this.name  # TIMESTAMP '2027-01-01 00:00:00 UTC': its text, read by the option that takes it
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


def _literal(value: exp.Literal) -> t.Any:
    try:
        py = value.to_py()
    except ValueError:  # sqlglot reads ``. 0.4`` as the number 0.0.4
        raise OptionError(f"Cannot read {value.sql()} as a number.") from None
    return float(py) if isinstance(py, Decimal) else py


def options_to_dict(properties: list[exp.Expr] | None) -> dict[str, t.Any]:
    """OPTIONS (name = value, ...) as a dict with lower-case names; repeated names are an error."""
    result: dict[str, t.Any] = {}
    for prop in properties or []:
        name = prop.name.lower()
        if name in result:
            raise OptionError(f"Option '{name}' is given twice.")
        result[name] = to_python(prop.args["value"])
    return result
