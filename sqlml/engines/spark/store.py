"""The registry's tables on Spark: Parquet files under one folder, each table a list of immutable files,
and the registry's state the newest of numbered manifests (``_log/00000042.json``) naming every table's
definition and files. It needs neither Hive nor Delta.

Spark's default (Parquet) tables refuse UPDATE, DELETE and MERGE and have no transactions; the
registry needs all three, and its constraints (a version number taken twice is a conflict). Its tables
are small (a row per version, deployment and trial), so the store holds them in this (the driver's)
process, in an in-memory DuckDB database whose catalog is :data:`CATALOG`, and runs the registry's own
statements there as the DuckDB engine runs them — the same SQL, constraints, upserts and transactions,
in milliseconds where a Spark job takes a second. A query a user writes over the registry's tables
runs on Spark, over the same rows. A transaction's writes are committed as one new manifest: the rows
an INSERT added in a new file, a table otherwise changed rewritten into one file.

Concurrency rule: one writer wins. A commit publishes the next manifest number with an atomic
exclusive create; when another session took it first, the commit fails with a conflict (nothing of it
is kept, and the caller is told to run the statement again): a write is never lost silently. This needs
a file system with an atomic exclusive create (a local disk, or a POSIX shared one such as NFS).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import typing as t
import uuid
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from ...errors import SqlmlError

SCHEMA = "sqlml"
#: The catalog the registry's tables are named in on Spark (``"sqlml_registry".sqlml.models``); users
#: may name them ``sqlml.models``.
CATALOG = "sqlml_registry"
#: Text that may name the registry (parsed to be sure): the word sqlml (not sqlml_x), or the catalog.
NAMED = re.compile(rf"\b{SCHEMA}\b|{CATALOG}", re.IGNORECASE)
#: Statements that only read.
READING = (exp.Query, exp.Describe, exp.Show)


class ConflictError(SqlmlError):
    """Another session committed to the registry between this session's read and its write."""


@dataclass
class Changes:
    """What an open transaction changed: rows appended to a table, tables otherwise changed."""

    appended: dict[str, list[pa.Table]] = field(default_factory=dict)
    rewritten: set[str] = field(default_factory=set)
    written: list[str] = field(default_factory=list)  # files this commit wrote (removed if it fails)


class Store:
    """The registry under ``path``; its tables read by users' queries with ``spark``."""

    def __init__(self, spark: t.Any, path: str):
        from ..duckdb import DuckDBEngine, connect_duckdb
        self.spark, self.path = spark, os.path.abspath(path)
        self.db = DuckDBEngine(connect_duckdb())
        catalog = exp.to_identifier(CATALOG, quoted=True).sql("duckdb")
        for statement in (f"ATTACH ':memory:' AS {catalog}", f"USE {catalog}", f"CREATE SCHEMA {SCHEMA}"):
            self.db.fetch(statement)
        self.manifest: dict[str, dict] = {}  # table → {"sql": its definition, "files": [...]}, as of manifest `number`
        self.number = 0
        self.generation = 0  # counts changes of the rows held (the Spark views over them are made again)
        self._lock = threading.RLock()
        self._changes: Changes | None = None  # the open transaction's
        self._views: dict[str, tuple[int, str]] = {}  # table → (generation, the temporary Spark view over its rows)
        with contextlib.suppress(OSError):  # a folder that cannot be made is read-only (read_only)
            os.makedirs(os.path.join(self.path, "_log"), exist_ok=True)

    @staticmethod
    def handles(sql: str) -> bool:
        """Whether ``sql`` is the registry's: it names a table of schema ``sqlml``, or the registry's catalog."""
        if not NAMED.search(sql):
            return False
        parsed = _parsed(sql)
        return parsed is not None and any(_in_registry(table) for table in parsed[0].find_all(exp.Table))

    # --- what the engine asks ----------------------------------------------------------------------

    def has_table(self, name: str) -> bool:
        with self._lock:
            self._refresh()
            return self.db.has_table(SCHEMA, name)

    def read_only(self) -> bool:
        """Whether this process cannot write the folder (then the registry is read as it is)."""
        return not os.access(os.path.join(self.path, "_log"), os.W_OK)

    # --- statements ---------------------------------------------------------------------------------

    def execute(self, sql: str, params: list | None = None) -> t.Any:
        """A statement sent to the engine: a query as a Spark DataFrame, any other run here (None)."""
        parsed = _parsed(sql)
        if parsed is not None and isinstance(parsed[0], exp.Query):
            return self.frame(sql, params)
        self.run(sql, params)
        return None

    def run(self, sql: str, params: list | None = None) -> list[tuple]:
        """Run one registry statement here: a query's rows; a write inside a transaction (the caller's, or
        one of its own committed when it ends)."""
        parsed = _parsed(sql)
        if parsed is None:
            raise SqlmlError(f"The registry cannot read this statement: {sql[:200]}")
        statement, text = parsed
        with self._lock:
            if isinstance(statement, READING):
                self._refresh()
                return self.db.fetch(text, params)
            with self.transaction():
                return self._write(statement, text, params)

    def _write(self, statement: exp.Expr, text: str, params: list | None) -> list[tuple]:
        """Run a write, noting what it changes: the rows a plain INSERT (or INSERT OR IGNORE) adds are
        appended at commit; a table changed otherwise is rewritten."""
        target = statement.this.this if isinstance(statement.this, exp.Schema) else statement.this
        appends = isinstance(statement, exp.Insert) and not statement.args.get("conflict") \
            and (statement.args.get("alternative") or "IGNORE").upper() == "IGNORE"
        if appends and isinstance(target, exp.Table) and _in_registry(target):
            returning = statement.copy()
            returning.set("returning", exp.Returning(expressions=[exp.Star()]))
            rows = self.db.guarded(lambda: self.db.connection.sql(returning.sql("duckdb"), params=params).to_arrow_table())
            self._changes.appended.setdefault(target.name.lower(), []).append(rows)
            return []
        tables = [target] if isinstance(target, exp.Table) else list(statement.find_all(exp.Table))
        named = {table.name.lower() for table in tables if _in_registry(table)}
        self._changes.rewritten.update(named or self._definitions())  # naming none: any may change
        return self.db.fetch(text, params)

    # --- Spark's view of the rows --------------------------------------------------------------------

    def frame(self, sql: str, params: list | None = None) -> t.Any:
        """A query over the registry's tables as a Spark DataFrame over their current rows."""
        parsed = _parsed(sql)
        if parsed is None:
            raise SqlmlError(f"The registry cannot read this statement: {sql[:200]}")
        values = iter(params or [])
        statement = parsed[0].transform(lambda node: exp.convert(next(values)) if isinstance(node, exp.Placeholder)
                                        else node)
        with self._lock:
            self._refresh()
            for table in list(statement.find_all(exp.Table)):
                if _in_registry(table):
                    alias = exp.TableAlias(this=exp.to_identifier(table.alias_or_name))
                    table.replace(exp.Table(this=exp.to_identifier(self._view(table.name.lower())), alias=alias))
            return self.spark.sql(statement.sql("spark"))

    def _view(self, name: str) -> str:
        """A temporary Spark view over the current rows of registry table ``name`` (made again when they change)."""
        if not self.db.has_table(SCHEMA, name):
            raise SqlmlError(f"The registry has no table '{SCHEMA}.{name}' yet.")
        known = self._views.get(name)
        if known is None or known[0] != self.generation:
            from .batches import spark_schema
            rows = self.db.read_arrow(f"SELECT * FROM {_table(name)}")
            view = f"__sqlml_registry_{name}_{uuid.uuid4().hex[:8]}"
            # Spark's types given, not inferred: a TIMESTAMP stays one without a time zone, as stored and signed.
            frame = self.spark.createDataFrame(rows if rows.num_rows else [], spark_schema(rows.schema))
            frame.createOrReplaceTempView(view)
            if known is not None:
                self.spark.catalog.dropTempView(known[1])
            self._views[name] = known = (self.generation, view)
        return known[1]

    # --- transactions and files ----------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> t.Iterator[None]:
        """Writes inside commit together as one manifest, or not at all."""
        with self._lock:
            if self._changes is not None:  # a statement inside the caller's transaction
                yield
                return
            self._refresh()
            self._changes = changes = Changes()
            self.db.fetch("BEGIN TRANSACTION")
            try:
                yield
                self._commit(changes)
            except BaseException:
                self.db.fetch("ROLLBACK")
                for relative in changes.written:
                    with contextlib.suppress(OSError):
                        os.remove(os.path.join(self.path, relative))
                raise
            finally:
                self._changes = None
            self.db.fetch("COMMIT")

    def _commit(self, changes: Changes) -> None:
        """Write the changed tables' new files and the next manifest naming them; a manifest another session
        wrote first is a conflict."""
        manifest = {}
        for name, definition in self._definitions().items():
            before = self.manifest.get(name)
            if before is not None and before["sql"] == definition and name not in changes.rewritten:
                files = before["files"] + [self._file(name, rows, changes) for rows in changes.appended.get(name, [])
                                           if rows.num_rows]
            else:
                rows = self.db.read_arrow(f"SELECT * FROM {_table(name)}")
                files = [self._file(name, rows, changes)] if rows.num_rows else []
            manifest[name] = {"sql": definition, "files": files}
        if manifest == self.manifest:
            return
        self._publish(self.number + 1, manifest)
        self.manifest, self.number = manifest, self.number + 1
        self.generation += 1

    def _definitions(self) -> dict[str, str]:
        """Each registry table's CREATE statement, as DuckDB states it (constraints and defaults included)."""
        return dict(self.db.fetch("SELECT table_name, sql FROM duckdb_tables() WHERE database_name = ? AND "
                                  "schema_name = ?", [CATALOG, SCHEMA]))

    def _file(self, name: str, rows: pa.Table, changes: Changes) -> str:
        relative = os.path.join(name, f"{uuid.uuid4().hex}.parquet")
        os.makedirs(os.path.join(self.path, name), exist_ok=True)
        changes.written.append(relative)
        pq.write_table(rows, os.path.join(self.path, relative))
        return relative

    def _publish(self, number: int, manifest: dict) -> None:
        """Write the manifest whole, then link it to its number: another session never reads half of one,
        and of two sessions taking the same number, the second fails."""
        staged = os.path.join(self.path, "_log", f".{uuid.uuid4().hex}.tmp")
        with open(staged, "w") as f:
            json.dump({"tables": manifest}, f)
        try:
            os.link(staged, self._manifest(number))
        except FileExistsError:
            raise ConflictError("The registry was changed by another session at the same moment (a write-write "
                                "conflict); nothing of this statement was stored. Run it again.") from None
        finally:
            os.remove(staged)

    def _refresh(self) -> None:
        """Read the newest manifest when another session committed one (not inside a transaction, which
        works on what it read and is checked at commit): a table whose files only grew gains the new
        files' rows; any other is read again."""
        if self._changes is not None:
            return
        newest = self._newest()
        if newest == self.number:
            return
        with open(self._manifest(newest)) as f:
            manifest = json.load(f)["tables"]
        self.db.fetch("BEGIN TRANSACTION")
        try:
            for name in set(self.manifest) - set(manifest):
                self.db.fetch(f"DROP TABLE IF EXISTS {_table(name)}")
            for name, spec in manifest.items():
                self._load(name, spec, self.manifest.get(name))
        except BaseException:
            self.db.fetch("ROLLBACK")
            raise
        self.db.fetch("COMMIT")
        self.manifest, self.number = manifest, newest
        self.generation += 1

    def _load(self, name: str, spec: dict, before: dict | None) -> None:
        known = before is not None and before["sql"] == spec["sql"] and spec["files"][:len(before["files"])] == before["files"]
        if not known:
            self.db.fetch(f"DROP TABLE IF EXISTS {_table(name)}")
            self.db.fetch(spec["sql"])
        new = spec["files"][len(before["files"]):] if known else spec["files"]
        if new:
            files = exp.Array(expressions=[exp.Literal.string(os.path.join(self.path, f)) for f in new])
            rows = exp.select("*").from_(exp.Table(this=exp.func("read_parquet", files)))
            self.db.fetch(exp.Insert(this=exp.table_(name, db=SCHEMA, quoted=True), expression=rows, by_name=True).sql("duckdb"))

    def _newest(self) -> int:
        names = os.listdir(os.path.join(self.path, "_log")) if os.path.isdir(os.path.join(self.path, "_log")) else []
        return max((int(n.split(".")[0]) for n in names if n.endswith(".json")), default=0)

    def _manifest(self, number: int) -> str:
        return os.path.join(self.path, "_log", f"{number:08d}.json")


def _table(name: str) -> str:
    """Registry table ``name`` in the store's DuckDB SQL."""
    return exp.table_(name, db=SCHEMA, quoted=True).sql("duckdb")


def _in_registry(table: exp.Table) -> bool:
    """A table of schema ``sqlml`` (any catalog), or the registry's catalog's ``sqlml`` schema itself."""
    return table.text("db").lower() == SCHEMA or table.text("catalog") == CATALOG or table.text("db") == CATALOG


def _parsed(sql: str) -> tuple[exp.Expr, str] | None:
    """A statement and its text in DuckDB's dialect: the registry's own (DuckDB's), or one a user wrote
    for Spark; None when neither dialect reads it."""
    try:
        return sqlglot.parse_one(sql, read="duckdb"), sql
    except sqlglot.errors.SqlglotError:
        pass
    try:
        statement = sqlglot.parse_one(sql, read="spark")
    except sqlglot.errors.SqlglotError:
        return None
    return statement, statement.sql("duckdb")
