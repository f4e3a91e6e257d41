"""The registry's tables on Spark (first pass): Parquet files under one folder, behind the SQL the
registry writes today (DuckDB's: ``CREATE TABLE``, ``INSERT [OR REPLACE | OR IGNORE]``, ``UPDATE``,
``DELETE``, ``SELECT`` with ``?`` parameters).

Spark's default (Parquet) tables refuse UPDATE, DELETE and MERGE, and need neither Hive nor Delta
here: each registry table is a list of immutable Parquet files, and the registry's state is the
newest of numbered manifests (``_log/00000042.json``) naming every table's files. The registry's
tables are small (a row per version, deployment and trial), so the store reads them into this process
and answers the registry's own statements here, with sqlglot's SQL executor (milliseconds, where a
Spark job takes a second); a query a user writes over them runs on Spark. A write changes the tables
here and commits them as one new manifest (appended rows in a new file; an UPDATE or DELETE rewrites
its table into one file).

Concurrency rule: one writer wins. A commit creates the next manifest number exclusively; when
another session took it first, the commit fails with a conflict (nothing of it is kept, and the
caller is told to run the statement again): a write is never lost silently. This needs a file
system with an atomic exclusive create (a local disk, or a POSIX shared one such as NFS).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
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
REGISTRY_TABLE = re.compile(rf"\b{SCHEMA}\s*\.\s*\"?(\w+)|\bSCHEMA\s+(IF\s+NOT\s+EXISTS\s+)?{SCHEMA}\b", re.IGNORECASE)
CATALOG = ("information_schema.tables", "duckdb_databases()")
POSITION = "__sqlml_position"

TYPES = {exp.DataType.Type.TEXT: pa.string(), exp.DataType.Type.VARCHAR: pa.string(),
         exp.DataType.Type.JSON: pa.string(), exp.DataType.Type.INT: pa.int32(), exp.DataType.Type.BIGINT: pa.int64(),
         exp.DataType.Type.DOUBLE: pa.float64(), exp.DataType.Type.BOOLEAN: pa.bool_(),
         exp.DataType.Type.VARBINARY: pa.binary(), exp.DataType.Type.BLOB: pa.binary(),
         exp.DataType.Type.TIMESTAMP: pa.timestamp("us"), exp.DataType.Type.TIMESTAMPNTZ: pa.timestamp("us")}


class ConflictError(SqlmlError):
    """Another session committed to the registry between this session's read and its write."""


@dataclass
class Table:
    """One registry table: its columns (name, Arrow type name, NOT NULL, DEFAULT now), primary key,
    the files holding it, and its rows as read (``rows``; ``appended`` not yet committed)."""

    columns: list[tuple[str, str, bool, bool]]
    key: list[str]
    files: list[str] = field(default_factory=list)
    rows: pa.Table | None = None
    appended: list[pa.Table] = field(default_factory=list)
    rewritten: bool = False

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([(name, _arrow_type(kind)) for name, kind, _, _ in self.columns])

    def copy(self) -> "Table":
        return dataclasses.replace(self, columns=list(self.columns), key=list(self.key), files=list(self.files),
                                   appended=list(self.appended))


def _arrow_type(name: str) -> pa.DataType:
    return {"string": pa.string(), "int32": pa.int32(), "int64": pa.int64(), "double": pa.float64(),
            "bool": pa.bool_(), "binary": pa.binary(), "timestamp[us]": pa.timestamp("us")}[name]


class Store:
    """The registry under ``path``, queried with ``spark``."""

    def __init__(self, spark: t.Any, path: str):
        self.spark, self.path = spark, os.path.abspath(path)
        self.tables: dict[str, Table] = {}
        self.number = 0  # the manifest read
        self._lock = threading.RLock()
        self._transaction: dict[str, Table] | None = None  # the tables as they were when it began
        self._views: dict[str, tuple[pa.Table, str]] = {}  # table → (its rows, the temporary view over them)
        os.makedirs(os.path.join(self.path, "_log"), exist_ok=True)

    @staticmethod
    def handles(sql: str) -> bool:
        """Whether ``sql`` is the registry's (it names a ``sqlml.`` table, or asks DuckDB's catalog about it)."""
        return bool(REGISTRY_TABLE.search(sql)) or any(name in sql.lower() for name in CATALOG)

    # --- reading ---------------------------------------------------------------------------------

    def execute(self, sql: str, params: list | None = None) -> t.Any:
        """A statement sent to the engine: a query as a Spark DataFrame, a write run here (None)."""
        if isinstance(_parsed(sql), exp.Query):
            return self.frame(sql, params)
        self.run(sql, params)
        return None

    def frame(self, sql: str, params: list | None = None) -> t.Any:
        """A registry query as a Spark DataFrame over the current rows."""
        with self._lock:
            self._refresh()
            statement = _literals(_bound(_parsed(sql), params))
            for table in list(statement.find_all(exp.Table)):
                if table.text("db").lower() == SCHEMA:
                    alias = exp.TableAlias(this=exp.to_identifier(table.alias_or_name))
                    table.replace(exp.Table(this=exp.to_identifier(self._view(table.name.lower())), alias=alias))
            return self.spark.sql(statement.sql("spark"))

    def run(self, sql: str, params: list | None = None) -> list[tuple] | None:
        """Run one registry statement: a query's rows, None for a write."""
        with self._lock:
            lowered = sql.lower()
            if "information_schema.tables" in lowered:  # does the registry have table params[1]?
                self._refresh()
                return [(1,)] if params and params[-1] in self.tables else []
            if "duckdb_databases()" in lowered:  # read-only? (never: the folder is written as needed)
                return [(False,)]
            statement = _parsed(sql)
            if isinstance(statement, exp.Create) and statement.kind.upper() == "SCHEMA":
                return None  # the folder is the schema
            if isinstance(statement, exp.Query):
                self._refresh()
                return self._select(_literals(_bound(statement, params)))
            with self.transaction():
                self._write(_bound(statement, params))
            return None

    def _select(self, query: exp.Query, extra: dict[str, pa.Table] | None = None) -> list[tuple]:
        """A query's rows, computed here over the columns of the registry tables (and ``extra``) it reads."""
        from sqlglot.executor import execute
        names = {t.name.lower() for t in query.find_all(exp.Table) if t.text("db").lower() == SCHEMA}
        read = None if query.find(exp.Star) else {c.name for c in query.find_all(exp.Column)}
        tables = {name: self._rows(name) for name in names if name in self.tables}
        unknown = names - set(tables)
        if unknown:
            raise SqlmlError(f"The registry has no table '{SCHEMA}.{sorted(unknown)[0]}' yet.")
        if extra:  # one level of names, as sqlglot's executor wants every table named alike
            query = query.transform(lambda n: exp.to_table(n.name) if isinstance(n, exp.Table) and n.text("db") else n)
            tables = {**tables, **extra}
        read_tables = {name: rows.select([c for c in rows.column_names if read is None or c in read])
                       for name, rows in tables.items()}
        types = {name: {f.name: _sql_type(f.type) for f in rows.schema} for name, rows in read_tables.items()}
        values = {name: rows.to_pylist() for name, rows in read_tables.items()}
        if not extra:
            types, values = {SCHEMA: types}, {SCHEMA: values}
        return [tuple(row) for row in execute(query, schema=types, dialect="duckdb", tables=values).rows]

    def _refresh(self) -> None:
        """Read the newest manifest when another session committed one (not inside a transaction, which
        works on what it read and is checked at commit)."""
        if self._transaction is not None:
            return
        newest = self._newest()
        if newest != self.number:
            with open(self._manifest(newest)) as f:
                manifest = json.load(f)
            self.tables = {name: Table([tuple(c) for c in spec["columns"]], spec["key"], spec["files"])
                           for name, spec in manifest["tables"].items()}
            self.number = newest

    def _newest(self) -> int:
        numbers = [int(n.split(".")[0]) for n in os.listdir(os.path.join(self.path, "_log")) if n.endswith(".json")]
        return max(numbers, default=0)

    def _manifest(self, number: int) -> str:
        return os.path.join(self.path, "_log", f"{number:08d}.json")

    def _rows(self, name: str) -> pa.Table:
        table = self.tables[name]
        if table.rows is None:
            parts = [pq.read_table(os.path.join(self.path, f)).cast(table.schema) for f in table.files]
            table.rows = pa.concat_tables(parts) if parts else table.schema.empty_table()
        return table.rows

    def _view(self, name: str) -> str:
        """A temporary view over the current rows of registry table ``name`` (made again when they change)."""
        if name not in self.tables:
            raise SqlmlError(f"The registry has no table '{SCHEMA}.{name}' yet.")
        rows = self._rows(name)
        known = self._views.get(name)
        if known is None or known[0] is not rows:
            view = f"__sqlml_registry_{name}_{uuid.uuid4().hex[:8]}"
            frame = self.spark.createDataFrame(rows) if rows.num_rows else \
                self.spark.createDataFrame([], _spark_schema(rows.schema))
            frame.createOrReplaceTempView(view)
            if known is not None:
                self.spark.catalog.dropTempView(known[1])
            self._views[name] = known = (rows, view)
        return known[1]

    # --- writing ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> t.Iterator[None]:
        """Writes inside commit together as one manifest, or not at all."""
        with self._lock:
            if self._transaction is not None:  # a statement inside the caller's transaction
                yield
                return
            self._refresh()
            self._transaction = {name: table.copy() for name, table in self.tables.items()}
            try:
                yield
                self._commit()
            except BaseException:
                self.tables = self._transaction
                raise
            finally:
                self._transaction = None

    def _write(self, statement: exp.Expr) -> None:
        if isinstance(statement, exp.Create):
            if statement.kind.upper() == "TABLE":
                self._create(statement)
        elif isinstance(statement, exp.Alter):
            self._add_columns(statement)
        elif isinstance(statement, exp.Insert):
            self._insert(statement)
        elif isinstance(statement, exp.Delete):
            self._keep(statement.this.name.lower(), lambda hit: ~hit, statement.args.get("where"))
        elif isinstance(statement, exp.Update):
            self._update(statement)
        else:
            raise SqlmlError(f"The Spark registry store does not run {statement.key.upper()} statements yet.")

    def _create(self, statement: exp.Create) -> None:
        name = statement.this.this.name.lower()
        if name in self.tables:
            return
        columns, key = [], []
        for item in statement.this.expressions:
            if isinstance(item, exp.PrimaryKey):
                key = [c.name for c in item.expressions]
                continue
            kinds = [c.args["kind"] for c in item.args.get("constraints") or []]
            if any(isinstance(k, exp.PrimaryKeyColumnConstraint) for k in kinds):
                key = [item.name]
            columns.append(_column(item, kinds))
        self.tables[name] = Table(columns, key, rows=None, rewritten=True)
        self.tables[name].rows = self.tables[name].schema.empty_table()

    def _add_columns(self, statement: exp.Alter) -> None:
        table = self._changed(statement.this.name.lower())
        rows = self._rows(statement.this.name.lower())
        for definition in statement.args.get("actions") or []:
            if isinstance(definition, exp.ColumnDef) and definition.name not in rows.column_names:
                kinds = [c.args["kind"] for c in definition.args.get("constraints") or []]
                table.columns.append(_column(definition, kinds))
                rows = rows.append_column(pa.field(definition.name, _arrow_type(table.columns[-1][1])),
                                          pa.nulls(rows.num_rows, _arrow_type(table.columns[-1][1])))
        table.rows, table.rewritten = rows, True

    def _insert(self, statement: exp.Insert) -> None:
        target = statement.this
        name = (target.this if isinstance(target, exp.Schema) else target).name.lower()
        table = self.tables[name]
        names = [c.name for c in target.expressions] if isinstance(target, exp.Schema) else [c[0] for c in table.columns]
        now = datetime.datetime.now()
        new = []
        for values in statement.expression.expressions:
            given = dict(zip(names, (_value(v) for v in values.expressions)))
            new.append({c: given.get(c, now if default else None) for c, _, _, default in table.columns})
        for row in new:
            missing = [c for c, _, not_null, _ in table.columns if not_null and row[c] is None]
            if missing:
                raise SqlmlError(f"NOT NULL constraint failed: {SCHEMA}.{name}.{missing[0]}")
        alternative = (statement.args.get("alternative") or "").upper()
        if table.key:
            new = self._unique(name, new, alternative)
        if not new:
            return
        self._changed(name)
        rows = pa.Table.from_pylist(new, schema=table.schema)
        table.rows = pa.concat_tables([self._rows(name), rows])
        if not table.rewritten:
            table.appended.append(rows)

    def _unique(self, name: str, new: list[dict], alternative: str) -> list[dict]:
        """``new`` checked against the primary key: a duplicate is an error, or replaces (OR REPLACE) or
        is skipped (OR IGNORE)."""
        table = self.tables[name]
        stored = self._rows(name).select(table.key).to_pylist()
        existing = {tuple(r[k] for k in table.key) for r in stored}
        kept = []
        for row in new:
            key = tuple(row[k] for k in table.key)
            if key in existing and alternative == "IGNORE":
                continue
            if key in existing and alternative != "REPLACE":
                raise ConflictError(f"Duplicate key {dict(zip(table.key, key))} in {SCHEMA}.{name}: "
                                    "a conflict with a row already stored.")
            if key in existing:
                condition = exp.and_(*(exp.column(k).eq(_literal(v)) for k, v in zip(table.key, key)))
                self._keep(name, lambda hit: ~hit, exp.Where(this=condition))
            existing.add(key)
            kept.append(row)
        return kept

    def _update(self, statement: exp.Update) -> None:
        name = statement.this.name.lower()
        hits = self._hits(name, statement.args.get("where"))
        if not hits.any():
            return
        table = self._changed(name)
        rows = self._rows(name)
        for assignment in statement.expressions:
            column = assignment.this.name
            value = _value(assignment.expression)
            values = rows[column].to_pylist()
            for i in hits.nonzero()[0]:
                values[i] = value
            rows = rows.set_column(rows.column_names.index(column), column, pa.array(values, rows.schema.field(column).type))
        table.rows, table.rewritten, table.appended = rows, True, []

    def _keep(self, name: str, keep: t.Callable[[t.Any], t.Any], where: exp.Where | None) -> None:
        """Keep the rows of table ``name`` for which ``keep(hit)`` holds, ``hit`` marking those ``where`` selects."""
        hits = self._hits(name, where)
        kept = keep(hits)
        if kept.all():
            return
        table = self._changed(name)
        table.rows, table.rewritten, table.appended = self._rows(name).filter(pa.array(kept)), True, []

    def _hits(self, name: str, where: exp.Where | None) -> t.Any:
        """Which rows of table ``name`` satisfy ``where`` (all, without one)."""
        import numpy as np
        rows = self._rows(name)
        if where is None:
            return np.ones(rows.num_rows, dtype=bool)
        hits = np.zeros(rows.num_rows, dtype=bool)
        if rows.num_rows:
            condition = _literals(where.this.copy())
            read = {c.name for c in condition.find_all(exp.Column)}
            numbered = rows.select([c for c in rows.column_names if c in read])
            numbered = numbered.append_column(POSITION, pa.array(range(rows.num_rows), pa.int64()))
            query = exp.select(POSITION).from_("__sqlml_rows").where(condition)
            hits[[row[0] for row in self._select(query, {"__sqlml_rows": numbered})]] = True
        return hits

    def _changed(self, name: str) -> Table:
        if self._transaction is None:
            raise RuntimeError("registry writes happen inside a transaction")  # run() opens one
        return self.tables[name]

    def _commit(self) -> None:
        """Write the changed tables' new files and the next manifest naming them; a manifest some other
        session wrote first is a conflict, and nothing of this commit is kept."""
        changed = {name for name, table in self.tables.items()
                   if table.rewritten or table.appended or name not in self._transaction}
        if not changed:
            return
        written: list[str] = []
        try:
            for name in changed:
                table = self.tables[name]
                parts = table.appended if not table.rewritten else [table.rows]
                files = [] if table.rewritten else list(table.files)
                for part in parts:
                    relative = os.path.join(name, f"{uuid.uuid4().hex}.parquet")
                    os.makedirs(os.path.join(self.path, name), exist_ok=True)
                    pq.write_table(part, os.path.join(self.path, relative))
                    written.append(relative)
                    files.append(relative)
                table.files = files
            manifest = {"tables": {name: {"columns": table.columns, "key": table.key, "files": table.files}
                                   for name, table in self.tables.items()}}
            self._publish(self.number + 1, manifest)
        except BaseException:
            for relative in written:
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(self.path, relative))
            raise
        self.number += 1
        for name in changed:
            self.tables[name].appended, self.tables[name].rewritten = [], False

    def _publish(self, number: int, manifest: dict) -> None:
        try:
            descriptor = os.open(self._manifest(number), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            raise ConflictError("The registry was changed by another session at the same moment (a write-write "
                                "conflict); nothing of this statement was stored. Run it again.") from None
        with os.fdopen(descriptor, "w") as f:
            json.dump(manifest, f)


def _sql_type(kind: pa.DataType) -> str:
    names = {pa.string(): "VARCHAR", pa.int32(): "INT", pa.int64(): "BIGINT", pa.float64(): "DOUBLE",
             pa.bool_(): "BOOLEAN", pa.binary(): "VARBINARY", pa.timestamp("us"): "TIMESTAMP"}
    return names[kind]


def _column(definition: exp.ColumnDef, kinds: list[exp.Expr]) -> tuple[str, str, bool, bool]:
    kind = TYPES[definition.args["kind"].this]
    not_null = any(isinstance(k, (exp.NotNullColumnConstraint, exp.PrimaryKeyColumnConstraint)) for k in kinds)
    default = any(isinstance(k, exp.DefaultColumnConstraint) for k in kinds)
    return definition.name, str(kind), not_null, default


def _parsed(sql: str) -> exp.Expr:
    """A statement of the registry (DuckDB's dialect), or one a user wrote that the planner wrote for Spark."""
    try:
        return sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError:
        return sqlglot.parse_one(sql, read="spark")


class Held(exp.Expression):
    """A parameter's Python value, held as it is (model bytes are never turned into SQL text)."""

    arg_types = {"this": True}


def _bound(statement: exp.Expr, params: list | None) -> exp.Expr:
    """``statement`` with its ``?`` placeholders replaced by the values of ``params``, in order."""
    values = iter(params or [])
    return statement.transform(lambda node: Held(this=next(values)) if isinstance(node, exp.Placeholder) else node)


def _literals(statement: exp.Expr) -> exp.Expr:
    """``statement`` with its held values as SQL literals, for Spark to run."""
    return statement.transform(lambda node: _literal(node.this) if isinstance(node, Held) else node)


def _literal(value: t.Any) -> exp.Expr:
    if isinstance(value, list):
        return exp.Array(expressions=[_literal(v) for v in value])
    return exp.convert(value)


def _value(node: exp.Expr) -> t.Any:
    """A value of an INSERT or UPDATE as Python's."""
    if isinstance(node, Held):
        return node.this
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Boolean):
        return node.this
    if isinstance(node, exp.Neg):
        return -_value(node.this)
    if isinstance(node, exp.Literal):
        return node.this if node.is_string else (float(node.this) if re.search(r"[.eE]", node.this) else int(node.this))
    return node.to_py()


def _spark_schema(schema: pa.Schema) -> t.Any:
    from pyspark.sql.pandas.types import from_arrow_schema
    return from_arrow_schema(schema)
