"""``ML.*`` calls written for the Python front ends (sqlml.plot, model objects): model and table names
quoted, settings as literals, the user's own SELECT kept as written."""

from __future__ import annotations

import re
import typing as t

from sqlglot import exp

TABLE_NAME = re.compile(r'(?:[A-Za-z_][\w$]*|"(?:[^"]|"")+")(?:\.(?:[A-Za-z_][\w$]*|"(?:[^"]|"")+")){0,2}')


def is_name(data: str) -> bool:
    """A table name (``flights``, ``main.flights``), not a query."""
    return TABLE_NAME.fullmatch(data.strip()) is not None


def select_of(data: str) -> str:
    """The rows of ``data`` as a query."""
    return f"SELECT * FROM {_name(data)}" if is_name(data) else data.strip().rstrip(";")


def _name(name: str) -> str:
    return exp.to_table(name.strip(), dialect="duckdb").sql("duckdb")


def ml_call(function: str, model: str | None, data: str | None, settings: dict, data_b: str | None = None) -> str:
    """``ML.<function>(MODEL model, TABLE t | (query)[, data_b], STRUCT(settings))``: names quoted, settings literals."""
    arguments = [f"MODEL {_name(model)}"] if model else []
    arguments += [f"TABLE {_name(d)}" if is_name(d) else f"({select_of(d)})" for d in (data, data_b) if d is not None]
    if settings:
        fields = ", ".join(f"{_literal(v).sql('duckdb')} AS {exp.to_identifier(k, quoted=True).sql('duckdb')}"
                           for k, v in settings.items())
        arguments.append(f"STRUCT({fields})")
    return f"ML.{function}({', '.join(arguments)})"


def _literal(value: t.Any) -> exp.Expression:
    if isinstance(value, (list, tuple)):
        return exp.Array(expressions=[_literal(v) for v in value])
    return exp.convert(value)
