"""SQL text → sqlglot statements, one at a time, each knowing the line it starts on.

Used by every front end (the CLI, the Python API, dbt). A DuckDB script is split at its semicolons by
a scanner that knows DuckDB's strings, quoted names, comments and dollar quotes. Only a statement that
uses sqlml's syntax (``MODEL``, ``ML.*``) or something sqlml rewrites (``GENERATE_ARRAY``, a
backtick-quoted BigQuery path) goes through sqlglot; sqlml's own statements must parse, and their
errors carry line and column. Every other statement runs as written (an ``exp.Command``) without the
cost of parsing it: an 11 MB INSERT is DuckDB's to read. Statements written for BigQuery always parse
(they are transpiled to DuckDB)."""

from __future__ import annotations

import contextlib
import difflib
import logging
import re
import typing as t
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from ..errors import SqlmlParseError
from .dialect import INPUT_DIALECTS, ML_FUNCTIONS
from .transform_functions import MULTI, SINGLE

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
#: What a DuckDB statement is made of, up to its semicolon. The match stops early at a string, quoted
#: name or comment that is not closed, at a ``$tag$`` dollar quote, and at a block comment holding
#: another one (DuckDB nests them): :func:`_skip_quoted` reads past the last two. (Possessive, and
#: without groups: Python 3.11's ``re`` mishandles groups inside possessive repeats.)
_BODY = re.compile(rf"""(?:
    [^;'"`$/\-]++                                       # words, numbers, operators, whitespace
  | (?<=[eE])(?<![\w$][eE])'(?:[^'\\]++|\\.|'')*+'     # E'…': backslash escapes
  | '[^']*+(?:''[^']*+)*+'                              # '…', '' inside
  | "[^"]*+(?:""[^"]*+)*+"                              # "quoted name"
  | `[^`]*+`                                            # `quoted name`
  | \$\$(?:[^$]++|\$(?!\$))*+\$\$                       # $$…$$
  | --[^\n]*+
  | /\*(?:[^*/]++|\*(?!/)|/(?!\*))*+\*/                 # a block comment holding no other
  | -(?!-) | /(?!\*) | \$(?!(?:{_NAME})?\$)             # a lone -, / or $ (a parameter: $1)
)*+""", re.VERBOSE)
_SPACE = re.compile(r"(?:\s++|--[^\n]*+|/\*(?:[^*/]++|\*(?!/)|/(?!\*))*+\*/)*+")
_COMMENT_MARK = re.compile(r"/\*|\*/")
_DOLLAR_TAG = re.compile(rf"\$(?:{_NAME})?\$")
#: Strings, quoted names (but "ML") and comments, in upper-cased text: blanked out before looking for words.
_NOT_CODE = re.compile(rf"""(?<=E)(?<![\w$]E)'(?:[^'\\]|\\.|'')*'|'[^']*(?:''[^']*)*'|"(?!ML")[^"]*(?:""[^"]*)*"
                          |`[^`]*`|(\$(?:{_NAME.upper()})?\$)(?s:.*?)\1|--[^\n]*|/\*(?s:.*?)\*/""", re.VERBOSE)
#: In upper-cased text: sqlml's own syntax (then the statement must parse) ...
_SQLML = re.compile(r'MODEL|ML\s*\.|"ML"\s*\.')
#: ... and what sqlml rewrites in plain SQL (parsed if sqlglot can, else run as written).
_REWRITTEN = re.compile(r"GENERATE_ARRAY|`[^`]*\.[^`]*`")
_WORD = re.compile(r"[\w$]")
_ML_CALL = re.compile(r"(?<![\w$])ML\s*\.\s*([A-Z_][A-Z0-9_]*)\s*\(")
#: Every ML.<name>( sqlml knows: the table functions and the preprocessing functions.
KNOWN_ML = sorted({*ML_FUNCTIONS, *SINGLE, *MULTI})


def parse(text: str, dialect: str = "duckdb", engine: str = "sqlml", as_written: bool = True) -> list[exp.Expr]:
    """Parse one or more statements written in ``dialect`` ('duckdb' or 'bigquery') for an engine whose
    sqlglot dialect is ``engine`` (DuckDB's: 'sqlml'); errors carry line and column. A plain DuckDB
    statement for DuckDB is kept as written (an ``exp.Command``, run as it is); for another engine it
    is parsed so that it can be written in the engine's dialect (as written only if sqlglot cannot read
    it). sqlml's own statements, and every statement written for BigQuery, must parse. ``as_written=False``
    parses plain statements too (bound parameters are found, and renamed, in the syntax tree)."""
    if dialect not in INPUT_DIALECTS:
        raise SqlmlParseError(f"Unknown SQL dialect {dialect!r}; sqlml reads {' and '.join(INPUT_DIALECTS)}.")
    read = INPUT_DIALECTS[dialect]
    with _quiet_passthrough():
        if dialect != "duckdb":
            from . import dialect_bigquery  # noqa: F401  registers sqlglot's 'sqlmlbigquery'
            return [s for piece in _tokenized_pieces(text, read) for s in _parsed(piece, text, read, must=True)]
        statements = []
        for piece in split(text):
            need = _needs_parsing(piece.text)
            statements += ([_as_written(piece)] if need is None and read == engine and as_written
                           else _parsed(piece, text, read, must=bool(need)))
        return statements


def _needs_parsing(statement: str) -> bool | None:
    """True: the statement uses sqlml's syntax and must parse; False: it holds something sqlml rewrites
    (parse it if sqlglot can); None: plain DuckDB, run as written. Literal searches of the upper-cased
    text come first; strings and comments are blanked out only when they find something."""
    upper = statement.upper()
    if not (_SQLML.search(upper) or _REWRITTEN.search(upper)):
        return None
    if any(_whole_word(found) for found in _SQLML.finditer(_NOT_CODE.sub(" ", upper))):
        return True
    return False if any(_whole_word(found) for found in _REWRITTEN.finditer(upper)) else None


def _whole_word(found: re.Match) -> bool:
    """Whether a match is not part of a longer name (``MODELS``, ``HTML.``)."""
    text, start, end = found.string, found.start(), found.end()
    before = start > 0 and _WORD.match(text, start - 1) is not None
    after = found.group()[-1].isalnum() and end < len(text) and _WORD.match(text, end) is not None
    return not before and not after


@dataclass(frozen=True)
class Piece:
    """One statement's text as written (no leading whitespace and comments), and where it starts."""

    text: str
    start: int  # offset in the whole text
    line: int  # line of ``start``, from 1


def split(text: str) -> t.Iterator[Piece]:
    """The statements of a DuckDB script, split at the semicolons outside strings, quoted names, comments
    and dollar quotes; a statement of only whitespace and comments is none."""
    position, line, counted = 0, 1, 0
    while True:
        end = _BODY.match(text, position).end()
        while end < len(text) and text[end] != ";":
            end = _BODY.match(text, _skip_quoted(text, end)).end()
        first = _code_start(text, position)
        if first < end:
            line += text.count("\n", counted, first)
            counted = first
            yield Piece(text[first:end].rstrip(), first, line)
        if end >= len(text):
            return
        position = end + 1


def _code_start(text: str, position: int) -> int:
    """Where the first code after ``position`` starts (past whitespace and comments)."""
    while True:
        position = _SPACE.match(text, position).end()
        if not text.startswith("/*", position):
            return position
        position = _skip_quoted(text, position)


def _skip_quoted(text: str, start: int) -> int:
    """The end of the nested block comment or ``$tag$`` dollar quote opening at ``start``; anything else
    that stops :data:`_BODY` is a string, quoted name or comment that is not closed."""
    if text.startswith("/*", start):
        depth = 0
        for mark in _COMMENT_MARK.finditer(text, start):
            depth += 1 if mark.group() == "/*" else -1
            if depth == 0:
                return mark.end()
    tag = _DOLLAR_TAG.match(text, start)
    if tag and (close := text.find(tag.group(), tag.end())) >= 0:
        return close + len(tag.group())
    line_start = text.rfind("\n", 0, start) + 1
    near = text[max(line_start, start - 20):start + 20].split("\n")[0]
    raise SqlmlParseError("Cannot read the SQL: a string, quoted name or comment is not closed, near "
                          f"'{near}' (line {text.count(chr(10), 0, start) + 1}, column {start - line_start + 1}).")


def _as_written(piece: Piece) -> exp.Command:
    statement = exp.Command(this=piece.text)
    statement.meta["line"] = piece.line
    return statement


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


def _parsed(piece: Piece, text: str, read: str, must: bool) -> list[exp.Expr]:
    """``piece`` parsed by sqlglot in ``read``; if it cannot be and need not be (``must``), as written."""
    try:
        parsed = [s for s in sqlglot.parse(piece.text, read=read) if s is not None]
    except TokenError as e:
        raise _not_closed(e) from None
    except ParseError as e:
        if must:
            raise _unknown_function(piece, text) or _parse_error(e, text, piece.start) from None
        return [_as_written(piece)]
    except (RecursionError, *SQLGLOT_CRASHES) as e:  # DuckDB itself may still read the statement
        if must:
            raise _unparsable(e, piece.text, piece.line) from None
        return [_as_written(piece)]
    for statement in parsed:
        statement.meta["line"] = piece.line  # where it starts in ``text``, for errors found later (CLI)
    return parsed


#: What sqlglot's parser raises, besides ParseError, on some malformed statements.
SQLGLOT_CRASHES = (AttributeError, IndexError, KeyError, TypeError, ValueError)


def _not_closed(error: TokenError) -> SqlmlParseError:
    near = str(error).removeprefix("Error tokenizing ")
    return SqlmlParseError(f"Cannot read the SQL: a string, quoted name or comment is not closed, near {near}")


def _unparsable(error: Exception, statement: str, line: int) -> SqlmlParseError:
    """sqlglot recurses per nesting level, and fails on some malformed input (``{:}``) with its own bug."""
    if isinstance(error, RecursionError):
        return SqlmlParseError("The statement is nested too deeply to parse.")
    opening = repr(statement[:60] + "…" if len(statement) > 60 else statement)
    return SqlmlParseError(f"Cannot parse the statement on line {line} ({opening}): check its brackets and punctuation.")


def _tokenized_pieces(text: str, read: str) -> t.Iterator[Piece]:
    """The statements of a script in ``read`` (BigQuery's strings and comments), split by sqlglot's tokenizer."""
    try:
        tokens = sqlglot.Dialect.get_or_raise(read).tokenize(text)
    except TokenError as e:
        raise _not_closed(e) from None
    statement: list[Token] = []
    for token in [*tokens, None]:
        if token is None or token.token_type == TokenType.SEMICOLON:
            if statement:
                yield Piece(text[statement[0].start:statement[-1].end + 1], statement[0].start, statement[0].line)
            statement = []
        else:
            statement.append(token)


def _unknown_function(piece: Piece, text: str) -> SqlmlParseError | None:
    """In a statement that does not parse, an ``ML.<name>(`` sqlml does not know (``ML.PREDICTT(MODEL m,
    …``), named with the closest it knows: the parser itself would only say what it expected next
    ("Expecting )"). An unknown name in a statement that parses is named by the planner, which knows
    whether a table function or a preprocessing function belongs there."""
    code = _NOT_CODE.sub(lambda found: " " * len(found.group()), piece.text.upper())
    for found in _ML_CALL.finditer(code):
        name = found.group(1)
        if name not in KNOWN_ML:
            close = difflib.get_close_matches(name, KNOWN_ML, n=1)
            offset = piece.start + found.start()
            line_start = text.rfind("\n", 0, offset) + 1
            hint = f" Did you mean ML.{close[0]}?" if close else ""
            return SqlmlParseError(f"ML.{name} is not a function sqlml knows (line {text.count(chr(10), 0, offset) + 1}, "
                                   f"column {offset - line_start + 1}).{hint} sqlml's ML.* functions: "
                                   f"{', '.join('ML.' + f for f in KNOWN_ML)}.")
    return None


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
