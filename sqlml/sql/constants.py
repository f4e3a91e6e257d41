"""The constant arguments of ML.* calls — ``STRUCT(0.3 AS threshold)``, ``GENERATE_ARRAY(0, 1, 0.05)`` —
read from the AST, so planning needs no engine."""

from __future__ import annotations

import typing as t

import numpy as np
from sqlglot import exp

from ..errors import ParameterError, SqlmlError
from .dialect import GenerateArray
from .options import to_python

#: The most elements GENERATE_ARRAY may give (thresholds of a ROC curve need a few hundred at most).
MAX_ELEMENTS = 100_000


def struct_fields(struct: exp.Struct, function: str) -> dict[str, t.Any]:
    """``STRUCT(value AS name, ...)`` as {lower-case name: Python value}."""
    fields: dict[str, t.Any] = {}
    for item in struct.expressions:
        if isinstance(item, exp.Alias):
            name, value = item.alias, item.this
        elif isinstance(item, exp.PropertyEQ):
            name, value = item.this.name, item.expression
        else:
            raise SqlmlError(f"ML.{function}: every STRUCT field needs a name, as in STRUCT(0.5 AS threshold); "
                             f"got {item.sql()}.")
        fields[name.lower()] = constant(value, function, f"the '{name}' parameter")
    return fields


def constant(value: exp.Expr, function: str, role: str) -> t.Any:
    """A literal, array, nested STRUCT or GENERATE_ARRAY as its Python value; anything else (a column,
    an expression) is refused, since it has no value before the query runs."""
    if isinstance(value, GenerateArray):
        return generate_array(value, function)
    if isinstance(value, exp.Struct) and value.expressions and not any(
            isinstance(v, (exp.Alias, exp.PropertyEQ)) for v in value.expressions):
        return [constant(v, function, role) for v in value.expressions]  # STRUCT('col', 0.1): a pair, as ('col', 0.1)
    if isinstance(value, exp.Struct):
        return struct_fields(value, function)
    if isinstance(value, (exp.Array, exp.Tuple)):
        return [constant(v, function, role) for v in value.expressions]
    if isinstance(value, (exp.Literal, exp.Boolean, exp.Null)) or (
            isinstance(value, exp.Neg) and isinstance(value.this, exp.Literal) and not value.this.is_string):
        return to_python(value)
    raise ParameterError(f"ML.{function}: {role} must be a constant (a number, string, boolean or array); "
                     f"got {value.sql()}.")


def generate_array(call: GenerateArray, function: str) -> list[float]:
    """BigQuery's inclusive ``GENERATE_ARRAY(start, end[, step])``, fractions allowed."""
    start, end = (constant(call.args[k], function, "GENERATE_ARRAY's bounds") for k in ("this", "expression"))
    step = constant(call.args["step"], function, "GENERATE_ARRAY's step") if call.args.get("step") else 1
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (start, end, step)) or step == 0:
        raise SqlmlError(f"ML.{function}: GENERATE_ARRAY takes numbers and a nonzero step; got {call.sql()}.")
    start, end, step = float(start), float(end), float(step)
    count = (end - start) / step + 1e-9
    if not np.isfinite(count) or count >= MAX_ELEMENTS:
        raise ParameterError(f"ML.{function}: {call.sql()} has more than {MAX_ELEMENTS:,} elements; "
                             "use a larger step.")
    return np.round(start + np.arange(max(int(np.floor(count)) + 1, 0)) * step, 12).tolist()
