"""The DuckDB engine: SQL, Arrow streams and view scoring functions on one DuckDB connection."""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import os
import re
import threading
import typing as t

import duckdb
import pyarrow as pa
from sqlglot import Dialect, exp
from sqlglot.tokens import TokenType

from ... import errors
from ...errors import DatabaseBusyError, DataError, SqlmlError, StorageError
from ..base import BatchFunction, ScoringFunction, Stream
from .dialect import NAME as DIALECT

BATCH_ROWS = 122_880  # DuckDB's natural record-batch size: 60 vectors of 2,048 rows
OUTPUT = "__sqlml_out"
HTML_ROWS = 50  # rows of a result Jupyter shows
NAME = re.compile(r'"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_]*)')
#: This connection's own objects, which another connection (a cursor) does not see.
TEMPORARY = ("SELECT table_name FROM duckdb_tables() WHERE temporary UNION ALL SELECT view_name FROM duckdb_views() "
             "WHERE temporary UNION ALL SELECT function_name FROM duckdb_functions() WHERE database_name = 'temp'")

#: Every scoring function defined in this process. DuckDB keeps only a borrowed reference to a Python
#: UDF, owned by the connection that defined it: once that connection closes (a cursor), the database
#: still calls the function, and calling a freed one crashes the process.
_DEFINED: list[t.Callable] = []
_DEFINING = threading.Lock()  # dbt threads' cursors share one catalog: check and create as one step


def connect_duckdb(path: str = ":memory:", read_only: bool = False, create: bool = True) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB database; with ``create=False`` a missing file is an error, not a new empty database."""
    if not create and path != ":memory:" and not os.path.exists(path):
        raise SqlmlError(f"No database file at '{path}' (working directory {os.getcwd()}). Check the path; "
                         "pass create=True to start a new database there.")
    return wrap_errors(lambda: duckdb.connect(path, read_only=read_only))


class DuckDBEngine:
    """Runs SQL on one DuckDB connection (a dbt thread's cursor, a notebook's connection...)."""

    dialect = DIALECT  # DuckDB SQL, with sqlml's own nodes (GENERATE_ARRAY, quantiles ...) in DuckDB's words
    scoring_views = True  # a view calls the model's scoring function (sqlml.views)
    rows_in_process = True
    _names = itertools.count(1)

    def __init__(self, connection: duckdb.DuckDBPyConnection):
        self.connection = connection
        self._lock = threading.RLock()
        self._parameters: dict = {}  # values bound to the statement being run (see bound)
        # DuckDB's replacement scans would resolve an unknown table name to a variable of the Python
        # frame calling DuckDB: sqlml's own (`t` is the typing module). Connection.sql registers the
        # caller's data frames by name instead.
        connection.execute("SET python_enable_replacements = false")

    @contextlib.contextmanager
    def bound(self, parameters: dict) -> t.Iterator[None]:
        """Bind ``$name`` parameters to every query run until the block ends: the user's statement and
        the queries sqlml derives from it (an ML.* function's input), each given the values it names."""
        self._parameters = dict(parameters)
        try:
            yield
        finally:
            self._parameters = {}

    def _bind(self, sql: str, params: list | dict | None = None) -> list | dict | None:
        """The values ``sql`` names, when none were given explicitly (DuckDB refuses unused ones)."""
        if params or not self._parameters:
            return params
        return {name: self._parameters[name] for name in parameter_names(sql) if name in self._parameters} or None

    def guarded(self, action: t.Callable[[], t.Any]) -> t.Any:
        """``action``'s value, DuckDB's errors turned into sqlml errors (with this database's views in view)."""
        return wrap_errors(action, self.connection)

    def execute(self, sql: str, params: list | None = None) -> Result | None:
        params = self._bind(sql, params)
        relation = self.guarded(lambda: self.connection.sql(sql, params=params) if params else self.connection.sql(sql))
        return None if relation is None else Result(relation, self)

    def fetch(self, sql: str, params: list | None = None) -> list[tuple]:
        params = self._bind(sql, params)
        return self.guarded(lambda: self.connection.execute(sql, params or []).fetchall())

    def read_arrow(self, sql: str) -> pa.Table:
        return self.guarded(lambda: self.connection.sql(sql, params=self._bind(sql)).to_arrow_table())

    def read_batches(self, sql: str, batch_rows: int = BATCH_ROWS) -> t.Iterator[pa.RecordBatch]:
        reader = self.guarded(lambda: self.connection.sql(sql, params=self._bind(sql)).to_arrow_reader(batch_rows))
        while (batch := self.guarded(lambda: next(reader, None))) is not None:  # DuckDB runs the query as it is read
            yield batch

    def input_batches(self, sql: str) -> t.Iterator[pa.RecordBatch]:
        return self._stream_batches(sql)

    def apply(self, input_sql: str, function: BatchFunction, empty: t.Callable[[], pa.Table]) -> Stream:
        """``function`` over the batches of ``input_sql`` in this process, each computed when the statement
        reading the output pulls it (:meth:`expose`)."""
        tables = (pa.Table.from_batches([batch]) for batch in self._stream_batches(input_sql))
        return Stream((function(rows) for rows in tables), empty)

    def counted(self, input_sql: str, function: BatchFunction, empty: t.Callable[[], pa.Table]) -> None:
        """None: the caller reads the rows batch by batch in this process, where DuckDB runs Python."""
        return None

    def column_aggregates(self, input_sql: str) -> None:
        """None: the caller reads the rows batch by batch in this process."""
        return None

    def expose(self, name: str, output: Stream, read_once: bool) -> None:
        """A stream the statement pulls as it runs (``read_once``), else its rows registered as a table."""
        if read_once:
            self._register_stream(name, output.schema, output.batches)
        else:
            self.register_table(name, output.table())

    def detached(self, sql: str) -> Result:
        """Read into memory now: the relation would read the registered names when consumed."""
        return self.result(self.read_arrow(sql))

    def _stream_batches(self, sql: str, batch_rows: int = BATCH_ROWS) -> t.Iterator[pa.RecordBatch]:
        """The rows of ``sql`` as record batches that may still be read while a later statement runs on
        this connection (one that reads a stream registered with :meth:`_register_stream`). Read on a
        cursor of its own: while a statement reads a registered stream, DuckDB refuses any
        other query on this connection. A cursor sees only committed data and none of this connection's
        temporary objects, so a query that may see either (in an open transaction, or naming a temporary
        table, view or macro, or a registered data frame) is read whole now instead."""
        cursor = self._cursor_for(sql)
        if cursor is not None:
            try:
                return _read(cursor.sql(sql, params=self._bind(sql)).to_arrow_reader(batch_rows), cursor)
            except duckdb.Error:  # what only this connection sees, or the query's own error: raised below
                cursor.close()
        return iter(self.read_arrow(sql).to_batches(batch_rows))

    def _cursor_for(self, sql: str) -> duckdb.DuckDBPyConnection | None:
        """A cursor that reads ``sql`` as this connection would, or None when it cannot."""
        names = {name.lower() for (name,) in self.fetch(TEMPORARY)}
        if any(name.lower() in names for name in identifiers(sql)) or self._in_transaction():
            return None
        ((database, schema, path),) = self.fetch("SELECT current_database(), current_schema(), "
                                                 "current_setting('search_path')")
        cursor = self.connection.cursor()
        cursor.execute("SET python_enable_replacements = false")  # as on this connection (see __init__)
        cursor.execute(f"USE {_quote(database)}.{_quote(schema)}")
        if path:
            cursor.execute(f"SET search_path = {exp.Literal.string(path).sql('duckdb')}")
        return cursor

    def _in_transaction(self) -> bool:
        """Whether an explicit transaction is open: out of one, every statement gets a new transaction id."""
        return self.fetch("SELECT txid_current()") == self.fetch("SELECT txid_current()")

    in_transaction = _in_transaction

    def schema(self, sql: str) -> pa.Schema:
        query = f"SELECT * FROM ({sql}) LIMIT 0"
        return self.guarded(lambda: self.connection.sql(query, params=self._bind(query)).to_arrow_table().schema)

    def temp_name(self, prefix: str = "sqlml") -> str:
        return f"__{prefix}_{next(self._names)}"

    def register_table(self, name: str, table: pa.Table) -> None:
        self.connection.register(name, table)

    def _register_stream(self, name: str, schema: pa.Schema, batches: t.Iterator[pa.RecordBatch]) -> None:
        """``batches`` readable under ``name`` by one statement that reads them once, pulling batches as it
        runs (so they are never all in memory)."""
        self.connection.register(name, pa.RecordBatchReader.from_batches(schema, batches))  # DuckDB pulls lazily

    def unregister_table(self, name: str) -> None:
        self.connection.unregister(name)

    def training_sample(self, sql: str, size: int | None, seed: int, stratify: str | None) -> None:
        """None: CREATE MODEL reads the rows in this process, and samples them there (sqlml.train.sample)."""
        return None

    def create_table(self, name: str, table: pa.Table) -> None:
        rows = self.temp_name("sqlml_rows")
        self.register_table(rows, table)
        try:
            self.fetch(exp.Create(this=exp.to_table(exp.to_identifier(name, quoted=True)), kind="TABLE", replace=True,
                                  expression=exp.select("*").from_(rows)).sql(self.dialect))
        finally:
            self.unregister_table(rows)

    def result(self, rows: pa.Table | Stream) -> Result:
        return Result(self.connection.from_arrow(rows.table() if isinstance(rows, Stream) else rows), self)

    @contextlib.contextmanager
    def transaction(self) -> t.Iterator[None]:
        """One short write transaction. On any failure it is rolled back, never committed:
        DuckDB turns a COMMIT after a failed statement into a silent rollback."""
        with self._lock:
            self.connection.execute("BEGIN TRANSACTION")
            try:
                yield
            except BaseException:
                self.connection.execute("ROLLBACK")
                raise
            self.guarded(lambda: self.connection.execute("COMMIT"))  # a conflict, a full disk... fail here

    def current_database(self) -> str:
        return self.fetch("SELECT current_database()")[0][0]

    def has_table(self, schema: str, table: str) -> bool:
        return bool(self.fetch("SELECT 1 FROM information_schema.tables WHERE table_catalog = current_database() "
                               "AND table_schema = ? AND table_name = ?", [schema, table]))

    def read_only(self) -> bool:
        return self.fetch("SELECT readonly FROM duckdb_databases() WHERE database_name = current_database()")[0][0]

    def view_definitions(self) -> list[tuple[str, str, str]]:
        return self.fetch("SELECT database_name, view_name, sql FROM duckdb_views() WHERE NOT internal")

    def stored_views(self) -> dict[tuple[str, str], str]:
        return {(schema, name): sql for schema, name, sql in self.fetch(
            "SELECT schema_name, view_name, sql FROM duckdb_views() WHERE database_name = current_database() "
            "AND NOT internal AND NOT temporary")}

    def define_scoring_function(self, name: str, function: ScoringFunction, features: list[tuple[str, str]],
                                extra: list[str], output: pa.Schema) -> None:
        """An Arrow UDF (2,048 rows a call) taking a STRUCT of the features and ``extra`` scalar arguments
        (their SQL types), each handed to ``function`` as one Arrow array."""
        with _DEFINING:
            if not self._has_function(name):
                self._create_scoring_function(name, function, features, extra, output)

    def _create_scoring_function(self, name: str, function: ScoringFunction, features: list[tuple[str, str]],
                                 extra: list[str], output: pa.Schema) -> None:
        def score(*arguments: pa.ChunkedArray | pa.Array) -> pa.StructArray:
            return function(*(a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arguments))

        # DuckDB checks a UDF's arity against its parameter types and refuses *args: give it the signature.
        score.__signature__ = inspect.Signature([inspect.Parameter(f"a{i}", inspect.Parameter.POSITIONAL_ONLY)
                                                 for i in range(1 + len(extra))])

        parameter = duckdb.struct_type({column: duckdb.sqltype(kind) for column, kind in features})
        self.connection.create_function(name, score, [parameter, *map(duckdb.sqltype, extra)],
                                        _duck_type(pa.struct(list(output))), type="arrow", side_effects=False,
                                        null_handling="special")  # NULL arguments mean "not set"
        _DEFINED.append(score)

    def drop_scoring_function(self, name: str) -> None:
        if self._has_function(name):
            self.connection.remove_function(name)

    def _has_function(self, name: str) -> bool:
        return bool(self.fetch("SELECT 1 FROM duckdb_functions() WHERE function_name = ?", [name]))

    def scoring_sql(self, name: str, features: list[tuple[str, str]], extra_sql: list[str], input_sql: str) -> str:
        packed = ", ".join(f"{_quote(column)} := CAST({_quote(column)} AS {kind})" for column, kind in features)
        arguments = "".join(f", {sql}" for sql in extra_sql)
        scored = f"SELECT *, {name}(struct_pack({packed}){arguments}) AS {OUTPUT} FROM ({input_sql}) AS __sqlml_in"
        return f"SELECT unnest({OUTPUT}), * EXCLUDE ({OUTPUT}) FROM ({scored}) AS __sqlml_scored"


def _read(reader: pa.RecordBatchReader, cursor: duckdb.DuckDBPyConnection) -> t.Iterator[pa.RecordBatch]:
    try:
        while (batch := wrap_errors(lambda: next(reader, None), cursor)) is not None:
            yield batch
    finally:
        reader.close()
        cursor.close()


def identifiers(text: str) -> set[str]:
    """Every name ``text`` may use (quoted or not): a superset of the tables and functions it reads."""
    return {quoted.replace('""', '"') if quoted else plain for quoted, plain in NAME.findall(text)}


def parameter_names(sql: str) -> list[str]:
    """The ``$name`` parameters ``sql`` uses (read by sqlglot's tokenizer: never inside a string)."""
    tokens = Dialect.get_or_raise("duckdb").tokenize(sql)
    return [b.text for a, b in zip(tokens, tokens[1:]) if a.token_type == TokenType.PARAMETER]


def _quote(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql("duckdb")



def _duck_type(dtype: pa.DataType) -> duckdb.DuckDBPyType:
    """The DuckDB type of an Arrow type (built through the API: names are never spliced into SQL)."""
    if pa.types.is_struct(dtype):
        return duckdb.struct_type({f.name: _duck_type(f.type) for f in dtype})
    if pa.types.is_list(dtype):
        return duckdb.list_type(_duck_type(dtype.value_type))
    return duckdb.sqltype({pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.string(): "VARCHAR", pa.bool_(): "BOOLEAN"}[dtype])


class Result:
    """A DuckDB relation (``.df()``, ``.arrow()``, ``.fetchall()``, ``.show()``, further SQL) whose errors
    are sqlml errors. DuckDB runs a relation when it is consumed, so a failure there (a view's scoring
    function, a table changed since) would otherwise reach the user as DuckDB's exception."""

    __slots__ = ("_engine", "_relation")

    def __init__(self, relation: duckdb.DuckDBPyRelation, engine: DuckDBEngine):
        self._relation, self._engine = relation, engine

    def __getattr__(self, name: str) -> t.Any:
        if name in Result.__slots__:  # not set yet (copy, pickle): never look it up on itself
            raise AttributeError(name)
        attribute = self._engine.guarded(lambda: getattr(self._relation, name))
        if not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def call(*args: t.Any, **kwargs: t.Any) -> t.Any:
            args, kwargs = [_unwrap(a) for a in args], {k: _unwrap(v) for k, v in kwargs.items()}
            return self._wrap(self._engine.guarded(lambda: attribute(*args, **kwargs)))
        return call

    def _wrap(self, value: t.Any) -> t.Any:
        return Result(value, self._engine) if isinstance(value, duckdb.DuckDBPyRelation) else value

    def __str__(self) -> str:
        return self._engine.guarded(lambda: str(self._relation))

    __repr__ = __str__

    def _repr_html_(self) -> str:
        """Jupyter shows the first rows as a table (read once; the relation is not run whole)."""
        shown = self._engine.guarded(lambda: self._relation.limit(HTML_ROWS + 1).df())
        more = f"<p>first {HTML_ROWS} rows</p>" if len(shown) > HTML_ROWS else ""
        return shown.head(HTML_ROWS).to_html(index=False) + more

    def __len__(self) -> int:
        return self._engine.guarded(lambda: len(self._relation))

    def __getitem__(self, key: t.Any) -> t.Any:
        return self._wrap(self._engine.guarded(lambda: self._relation[key]))

    def __contains__(self, name: str) -> bool:
        return name in self._relation.columns

    def __dir__(self) -> list[str]:
        return dir(self._relation)


def _unwrap(value: t.Any) -> t.Any:
    """DuckDB's own methods (``join``, ``union``...) take the relation underneath a Result."""
    return value._relation if isinstance(value, Result) else value


def wrap_errors(action: t.Callable[[], t.Any], connection: duckdb.DuckDBPyConnection | None = None) -> t.Any:
    """Run ``action``, turning DuckDB's errors into sqlml errors with messages that say what to do."""
    try:
        return action()
    except duckdb.Error as e:
        raise translate(e, connection) from None


BUSY = ("Database busy: another process has '{path}' open for writing. While it does, DuckDB lets no other "
        "process open the file, not even read-only (several processes may read it only when none writes). "
        "Close the other program (a notebook, a dbt run, another sqlml run) or wait until it ends, then retry.")
UDF_ERROR = re.compile(r"Python exception occurred while executing the UDF: (?:(\w+): )?(.*)", re.DOTALL)
RAISED_IN_SQL = re.compile(r"^Invalid Input Error: (\w+Error): (.*)", re.DOTALL)  # error('ModelNotFoundError: …')
MISSING_COLUMN = re.compile(r'Referenced column "([^"]+)" not found')
UNDEFINED = re.compile(r"Scalar Function with name (sqlml_serve_[0-9a-f]{16}) does not exist")


def translate(e: duckdb.Error, connection: duckdb.DuckDBPyConnection | None = None) -> SqlmlError:
    """The sqlml error for one of DuckDB's: the error raised inside a scoring function when there was one,
    storage faults explained, a scoring view's vanished input column named as such."""
    message = str(e)
    if "No space left on device" in message:
        return StorageError(f"The disk is full ({message}). Nothing of the failed statement was kept; what was "
                            "stored before is intact. Free some space, or use a database on another disk, and retry.")
    if "Permission denied" in message or "Read-only file system" in message:
        return StorageError(f"No permission ({message}). A database is written with a '.wal' file beside it: "
                            "make both and their folder writable, or open the database read-only "
                            "(sqlml.connect(path, read_only=True)) to read its models and tables.")
    if isinstance(e, duckdb.IOException) and "lock" in message.lower():
        path = re.search(r'file "([^"]+)"', message)
        return DatabaseBusyError(BUSY.format(path=path.group(1) if path else "the database"))
    udf = UDF_ERROR.search(message) or RAISED_IN_SQL.search(message)
    if udf:
        kind = getattr(errors, udf.group(1) or "", None)
        if isinstance(kind, type) and issubclass(kind, SqlmlError):
            return kind(udf.group(2))  # the sqlml error the scoring function raised, as it was raised
        return SqlmlError(message[udf.start(1) if udf.group(1) else udf.start(2):])
    undefined = UNDEFINED.search(message)
    if undefined:
        return SqlmlError(f"A view calls sqlml's scoring function {undefined.group(1)}, which this connection has not "
                          "defined: open the database with sqlml.connect, or call sqlml.register on the connection. If "
                          "it was, the function's record in sqlml.scoring_functions is missing or was modified outside "
                          "sqlml: recreate the view.")
    missing = MISSING_COLUMN.search(message)
    views = _scoring_views(connection, missing.group(1)) if missing and connection is not None else []
    if views:
        return DataError(f"The input is missing feature column(s) the model was trained on: {missing.group(1)} "
                         f"(read by {'view' if len(views) == 1 else 'views'} {', '.join(repr(v) for v in views)} "
                         "through ML.PREDICT; the table under it changed after the view was created). "
                         "Restore the column, or recreate the view over data that has it.")
    return SqlmlError(message)


def _scoring_views(connection: duckdb.DuckDBPyConnection, column: str) -> list[str]:
    """The views whose ML.PREDICT packs ``column`` into a scoring function's features (see scoring_sql;
    DuckDB stores a view's SQL re-written, quoting names only where needed), or reads it in SQL compiled
    from the model."""
    name = f"(?:{re.escape(column)}|{re.escape(_quote(column))})"
    packed = re.compile(rf"{name} := CAST\({name} AS ")
    try:
        views = connection.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal").fetchall()
    except duckdb.Error:
        return []
    compiled = re.compile(rf"(?<![\w\"]){name}(?![\w\"])")  # SQL compiled from the model reads it by name
    return sorted(view for view, sql in views if ("sqlml_serve_" in sql and packed.search(sql))
                  or ("__sqlml_in" in sql and compiled.search(sql)))
