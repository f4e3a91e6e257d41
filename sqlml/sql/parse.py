"""SQL text → sqlglot statements, one at a time, each knowing the line it starts on.

Used by every front end (the CLI, the Python API, dbt). Plain DuckDB statements sqlglot cannot
parse run as written; only sqlml's own syntax (``MODEL``, ``ML.*``) must parse, and its errors
carry line and column."""

from __future__ import annotations

import contextlib
import logging
import typing as t

import sqlglot
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from ..errors import SqlmlParseError
from .dialect import INPUT_DIALECTS


def parse(text: str, dialect: str = "duckdb") -> list[sqlglot.exp.Expr]:
    """Parse one or more statements written in ``dialect`` ('duckdb' or 'bigquery'); errors carry line
    and column. A plain DuckDB statement that sqlglot cannot parse (``EXPORT DATABASE …``) runs as
    written; sqlml's own statements, and every statement written for BigQuery, must parse."""
    if dialect not in INPUT_DIALECTS:
        raise SqlmlParseError(f"Unknown SQL dialect {dialect!r}; sqlml reads {' and '.join(INPUT_DIALECTS)}.")
    with _quiet_passthrough():
        return _parse(text, INPUT_DIALECTS[dialect], passthrough=dialect == "duckdb")


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


def _parse(text: str, read: str, passthrough: bool) -> list[sqlglot.exp.Expr]:
    try:
        pieces = list(_statements(text, read))
    except TokenError as e:
        near = str(e).removeprefix("Error tokenizing ")
        raise SqlmlParseError(f"Cannot read the SQL: a string, quoted name or comment is not closed, near {near}") from None
    statements = []
    for statement_text, tokens in pieces:
        try:
            parsed = [s for s in sqlglot.parse(statement_text, read=read) if s is not None]
        except ParseError as e:
            if _is_sqlml(tokens) or not passthrough:
                raise _parse_error(e, text, tokens[0].start) from None
            parsed = [sqlglot.exp.Command(this=statement_text)]
        except (RecursionError, *SQLGLOT_CRASHES) as e:  # DuckDB itself may still read the statement
            if _is_sqlml(tokens) or not passthrough:
                raise _unparsable(e, statement_text, tokens[0].line) from None
            parsed = [sqlglot.exp.Command(this=statement_text)]
        for statement in parsed:
            statement.meta["line"] = tokens[0].line  # where it starts in ``text``, for errors found later (CLI)
        statements += parsed
    return statements


#: What sqlglot's parser raises, besides ParseError, on some malformed statements.
SQLGLOT_CRASHES = (AttributeError, IndexError, KeyError, TypeError, ValueError)


def _unparsable(error: Exception, statement: str, line: int) -> SqlmlParseError:
    """sqlglot recurses per nesting level, and fails on some malformed input (``{:}``) with its own bug."""
    if isinstance(error, RecursionError):
        return SqlmlParseError("The statement is nested too deeply to parse.")
    opening = repr(statement[:60] + "…" if len(statement) > 60 else statement)
    return SqlmlParseError(f"Cannot parse the statement on line {line} ({opening}): check its brackets and punctuation.")


def _statements(text: str, read: str) -> t.Iterator[tuple[str, list[Token]]]:
    """Each statement of ``text`` as written, with its tokens (split at semicolons outside strings)."""
    tokens: list[Token] = []
    for token in sqlglot.Dialect.get_or_raise(read).tokenize(text) + [None]:
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
    if not e.errors:  # raised while building a node (a function's arguments): no position known
        return SqlmlParseError(str(e))
    first = e.errors[0]
    line, column = first.get("line"), first.get("col")
    if line:  # the statement's own line 1 starts where the statement does
        column += offset - (text.rfind("\n", 0, offset) + 1) if line == 1 else 0
        line += text.count("\n", 0, offset)
    where = f" (line {line}, column {column})" if line else ""
    return SqlmlParseError(f"{first.get('description', str(e))}{where}: "
                           f"…{first.get('start_context', '')}{first.get('highlight', '')}…")
