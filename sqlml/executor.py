"""Runs plans: trains and stores models, computes ML.* tables, then runs the plain SQL.

    SQL text → sqlglot AST (dialect) → plan (planner) → engine (here)
"""

from __future__ import annotations

import contextlib
import logging
import sys
import typing as t

import pyarrow as pa
import sqlglot
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from . import transform, tuning, udf
from .dialect import Sqlml  # noqa: F401  (registers the "sqlml" dialect)
from .engine import DuckDBEngine
from .errors import SqlmlError, SqlmlParseError
from .functions import FUNCTIONS, Call
from .planner import Alter, Drop, Planner, Query, TableFunction, Train
from .registry import Registry
from . import scoring
from .scoring import LoadedModel


def parse(text: str) -> list[sqlglot.exp.Expr]:
    """Parse one or more statements; errors carry line and column. A plain DuckDB statement that
    sqlglot cannot parse (``EXPORT DATABASE …``) runs as written; sqlml's own statements must parse."""
    with _quiet_passthrough():
        return _parse(text)


@contextlib.contextmanager
def _quiet_passthrough() -> t.Iterator[None]:
    """Silence sqlglot's warning that it keeps a statement as text (``CREATE TYPE``, ``LOAD``): sqlml
    runs such statements as written, so the warning tells its users nothing."""
    def keep(record: logging.LogRecord) -> bool:
        return "Falling back to parsing as a 'Command'" not in record.getMessage()
    logger = logging.getLogger("sqlglot")
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _parse(text: str) -> list[sqlglot.exp.Expr]:
    try:
        pieces = list(_statements(text))
    except TokenError as e:
        near = str(e).removeprefix("Error tokenizing ")
        raise SqlmlParseError(f"Cannot read the SQL: a string, quoted name or comment is not closed, near {near}") from None
    statements = []
    for statement_text, tokens in pieces:
        try:
            parsed = [s for s in sqlglot.parse(statement_text, read="sqlml") if s is not None]
        except ParseError as e:
            if _is_sqlml(tokens):
                raise _parse_error(e, text, tokens[0].start) from None
            parsed = [sqlglot.exp.Command(this=statement_text)]
        except RecursionError:
            raise SqlmlParseError("The statement is nested too deeply to parse.") from None
        for statement in parsed:
            statement.meta["line"] = tokens[0].line  # where it starts in ``text``, for errors found later (CLI)
        statements += parsed
    return statements


def _statements(text: str) -> t.Iterator[tuple[str, list[Token]]]:
    """Each statement of ``text`` as written, with its tokens (split at semicolons outside strings)."""
    tokens: list[Token] = []
    for token in sqlglot.Dialect.get_or_raise("sqlml").tokenize(text) + [None]:
        if token is None or token.token_type == TokenType.SEMICOLON:
            if tokens:
                yield text[tokens[0].start:tokens[-1].end + 1], tokens
            tokens = []
        else:
            tokens.append(token)


def _is_sqlml(tokens: list[Token]) -> bool:
    """Whether a statement uses sqlml's syntax (a MODEL or an ML.* function)."""
    words = [token.text.upper() for token in tokens]
    return "MODEL" in words or any(word == "ML" and following.token_type == TokenType.DOT
                                   for word, following in zip(words, tokens[1:]))


def _parse_error(e: ParseError, text: str, offset: int) -> SqlmlParseError:
    """sqlglot's first error in a statement that starts at ``offset`` of ``text``, located in ``text``."""
    first = e.errors[0] if e.errors else {}
    line, column = first.get("line"), first.get("col")
    if line:  # the statement's own line 1 starts where the statement does
        column += offset - (text.rfind("\n", 0, offset) + 1) if line == 1 else 0
        line += text.count("\n", 0, offset)
    where = f" (line {line}, column {column})" if line else ""
    return SqlmlParseError(f"{first.get('description', str(e))}{where}: "
                           f"…{first.get('start_context', '')}{first.get('highlight', '')}…")


class Executor:
    """Executes sqlml statements on one engine, with progress messages sent to ``progress``."""

    def __init__(self, engine: DuckDBEngine, progress: t.Callable[[str], None] | None = None):
        self.engine = engine
        self.registry = Registry(engine)
        self.planner = Planner(self.registry, engine.dialect)
        self.progress = progress or (lambda message: print(message, file=sys.stderr))

    def run(self, text: str) -> t.Any:
        """Run every statement in ``text``; return the last one's result (a relation, or None)."""
        result = None
        for statement in parse(text):
            result = self.run_step(self.planner.plan(statement))
        return result

    def run_step(self, step) -> t.Any:
        if isinstance(step, Train):
            return self.train(step)
        if isinstance(step, Drop):
            return self.drop(step)
        if isinstance(step, Alter):
            return self.alter(step)
        return self.query(step)

    def load(self, name: str, version: int | None = None, trial_id: int | None = None) -> LoadedModel:
        """A stored version, or one tuning trial of it (``STRUCT(3 AS trial_id)``)."""
        info = self.registry.resolve(name, version)
        if trial_id is None:
            return scoring.CACHE.get(info, self.registry.blob)
        trial = tuning.trial_version(info, self.registry.trials(info.name, info.version), trial_id)
        return scoring.CACHE.get(trial, self.registry.trial_blob)

    def train(self, step: Train) -> None:
        exists = bool(self.registry.versions(step.name))
        if exists and step.if_not_exists:
            return None
        if exists and not step.replace:
            raise SqlmlError(f"Model '{step.name}' already exists. Use CREATE OR REPLACE MODEL to train a new "
                             "version, or CREATE MODEL IF NOT EXISTS to keep it.")
        kind, checked = tuning.resolve_options(step.options)  # fail on bad options before reading any data
        fitted, query_sql = None, step.query_sql
        if step.transform:  # statistics come from the training query's rows, as BigQuery's OVER () does
            fitted = transform.fit(self.engine, step.transform, step.query_sql,
                                   checked.get("input_label_cols", ["label"])[0] if kind.supervised else None,
                                   keep=[checked.get("data_split_col"), checked.get("instance_weight_col")],
                                   dialect=self.engine.dialect)
            query_sql = transform.training_sql(fitted, step.query_sql)
        table = self.engine.read_arrow(query_sql)
        row = tuning.train(table, step.options, step.name, step.query_sql, self.progress, transform=fitted)
        version = self.registry.add(row)
        udf.register(self.engine.connection, self.registry.resolve(step.name, version))
        self.progress(f"Model '{step.name}' version {version} stored.")
        return None

    def drop(self, step: Drop) -> None:
        if not self.registry.drop(step.name) and not step.if_exists:
            raise SqlmlError(f"Model '{step.name}' does not exist (use DROP MODEL IF EXISTS to ignore that).")

    def alter(self, step: Alter) -> None:
        if not self.registry.versions(step.name):
            if step.if_exists:
                return None
            self.registry.resolve(step.name)  # raises the not-found error with the known models
        self.registry.update_options(step.name, step.options)  # views read the threshold from the registry

    def query(self, step: Query) -> t.Any:
        for info in step.models:
            udf.register(self.engine.connection, info)
        if step.passthrough:  # nothing for the engine to do: hand the computed table back as it is
            return self.engine.connection.from_arrow(self.compute(step.tables[0]))
        registered = []
        try:
            for table_function in step.tables:
                self.engine.register_table(table_function.name, self.compute(table_function))
                registered.append(table_function.name)
            result = self.engine.execute(step.sql)
            if not step.returns_rows:
                return None
            if not registered:
                return result
            # Registered tables are dropped below, so a result that reads them is materialized now.
            return self.engine.connection.from_arrow(result.to_arrow_table())
        finally:
            for name in registered:
                self.engine.unregister_table(name)

    def compute(self, tf: TableFunction) -> pa.Table:
        params = self._value(tf.params_sql) or {}
        model = self.load(*tf.model, trial_id=params.pop("trial_id", None)) if tf.model else None
        input_sql = tf.input_sql
        if model is not None and model.transform and input_sql is not None:
            # Every function reads the data as the model saw it in training: through its TRANSFORM.
            input_sql = transform.wrap_sql(model.transform, input_sql, self.engine.schema(input_sql).names)
        call = Call(
            function=tf.function,
            engine=self.engine,
            model=model,
            input_sql=input_sql,
            params=params,
            argument=self._value(tf.argument_sql),
        )
        return FUNCTIONS[tf.function](call)

    def _value(self, sql: str | None) -> t.Any:
        """Evaluate a constant SQL expression (STRUCT(...), GENERATE_ARRAY(...)) with the engine."""
        if sql is None:
            return None
        value = self.engine.fetch(f"SELECT {sql}")[0][0]
        return {k.lower(): v for k, v in value.items()} if isinstance(value, dict) else value
