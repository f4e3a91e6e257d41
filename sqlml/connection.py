"""The Python API's connection: a DuckDB connection that also understands sqlml statements, or another
engine's session (Spark). Only the DuckDB paths import DuckDB (:mod:`sqlml.engines.duckdb`)."""

from __future__ import annotations

import contextlib
import sys
import typing as t

import pyarrow as pa

from . import compiled_views, views
from .engines.base import Engine
from .errors import SqlmlError
from .executor import Executor
from .registry.deployments import Serving
from .model.version import ModelVersion
from .registry.versions import INFO_COLUMNS, LEGACY_NOTE, Registry

if t.TYPE_CHECKING:
    import duckdb

    from .engines.duckdb import Result

#: (module, class) of the objects a statement may name as tables, as DuckDB's replacement scans take them.
DATA_FRAMES = {("pandas", "DataFrame"), ("pyarrow", "Table"), ("pyarrow", "RecordBatch"), ("pyarrow", "RecordBatchReader"),
               ("pyarrow", "Dataset"), ("pyarrow", "FileSystemDataset"), ("polars", "DataFrame"), ("polars", "LazyFrame")}


class Connection:
    """A DuckDB connection that also understands sqlml statements (or, given another ``engine``, that
    engine's session: ``duckdb`` is then None)."""

    def __init__(self, duckdb_connection: duckdb.DuckDBPyConnection | None, progress: t.Callable[[str], None] | None = None,
                 dialect: str = "duckdb", engine: Engine | None = None):
        self.duckdb = duckdb_connection
        if engine is None:
            from .engines.duckdb import DuckDBEngine
            engine = DuckDBEngine(duckdb_connection)
        self.executor = Executor(engine, progress, dialect)

    def sql(self, text: str, params: t.Sequence | t.Mapping | None = None, *,
            namespace: t.Mapping | None = None) -> Result | None:
        """Run one or more statements; return the last result as a DuckDB relation (or None).

        The relation supports ``.df()``, ``.arrow()``, ``.fetchall()``, ``.show()`` and further SQL; errors
        DuckDB raises while running it are sqlml errors. As with ``duckdb.sql``, a table name that is no
        table of the database may name a pandas, pyarrow or polars data frame of the calling code (of
        ``namespace`` when given: a notebook's variables). ``params`` are bound, never pasted into the SQL:
        a dict for ``$name`` parameters, a list for ``?`` ones::

            conn.sql("SELECT * FROM ML.PREDICT(MODEL m, (SELECT * FROM t WHERE month = $month))", {"month": 12})
        """
        frame = sys._getframe(1)
        scopes = (namespace,) if namespace is not None else (frame.f_locals, frame.f_globals)
        del frame
        with self._caller_frames(text, scopes) as named:
            result = self.executor.run(text, params)
            # The frames are unregistered when the statement ends, so a result that reads them is read now.
            return self.executor.engine.result(result.to_arrow_table()) if named and result is not None else result

    execute = sql

    @contextlib.contextmanager
    def _caller_frames(self, text: str, scopes: tuple[t.Mapping, ...]) -> t.Iterator[list[str]]:
        """Register, for one statement, the data frames of ``scopes`` (DuckDB's order: the caller's locals,
        then its module's) that ``text`` names and the database lacks."""
        if self.duckdb is None:  # other engines read only their own tables
            yield []
            return
        from .engines.duckdb import identifiers
        names = identifiers(text)
        found = {name: next(s[name] for s in scopes if name in s) for name in names if any(name in s for s in scopes)}
        found = {name: value for name, value in found.items() if _is_data_frame(value)}
        if found:
            known = {n.lower() for (n,) in self.duckdb.execute(
                "SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views()").fetchall()}
            found = {name: value for name, value in found.items() if name.lower() not in known}
        for name, value in found.items():
            self.duckdb.register(name, value)
        try:
            yield list(found)
        finally:
            for name in found:
                self.duckdb.unregister(name)

    def models(self) -> t.Any:
        """The model registry: one row per stored version, without the model bytes; ``deployed`` (the
        version ``MODEL m`` serves), ``aliases`` naming it, ``disabled`` (the model's kill switch is on),
        and ``status``: 'ok', or why the version is refused (its row was edited outside sqlml). In the
        engine's own form: a DuckDB relation, a Spark DataFrame."""
        registry, engine = self.executor.registry, self.executor.engine
        if not registry.exists():
            return engine.result(pa.table({"name": pa.array([], pa.string()), "version": pa.array([], pa.int32())}))
        found = registry.versions()
        latest = {v.name: v.version for v in found}  # oldest first: the latest wins
        serving = {name: _serving(registry, name, version) for name, version in latest.items()}
        status = pa.table({"name": [v.name for v in found], "version": pa.array([v.version for v in found], pa.int32()),
                           "deployed": [serving[v.name].deployed == v.version for v in found],
                           "aliases": pa.array([sorted(a for a, n in serving[v.name].aliases.items() if n == v.version)
                                                for v in found], pa.list_(pa.string())),
                           "disabled": [serving[v.name].disabled for v in found],
                           "status": [_status(v) for v in found]})
        columns = ", ".join(f"m.{c}" for c in INFO_COLUMNS)
        engine.register_table("__sqlml_status", status)
        try:
            return engine.result(engine.read_arrow(
                f"SELECT {columns}, s.deployed, s.aliases, s.disabled, s.status FROM {registry.tables().models} AS m "
                "JOIN __sqlml_status AS s USING (name, version) ORDER BY m.name, m.version"))
        finally:
            engine.unregister_table("__sqlml_status")

    def copy_model(self, name: str, source: Connection, version: int | str | None = None, origin: str | None = None) -> int:
        """Copy model ``name`` (its deployed version, or ``version``: a number or an alias) from ``source``'s
        registry into this connection's, verified on read and re-signed here with the same key (e.g. a
        model trained on DuckDB, to score on Spark: docs/scale_out.md). Returns its version number here."""
        from .registry.transfer import read_version, store_copy
        origin = origin or f"database '{source.executor.engine.current_database()}'"
        number, _ = store_copy(self.executor.registry, read_version(source.executor.registry, name, version), origin)
        views.refresh(self.executor.registry, name)
        return number

    def cursor(self) -> t.Any:
        """A DB-API (PEP 249) cursor whose ``execute`` runs sqlml statements: for JupySQL's ``%sql`` and
        other tools written against DB-API (docs/notebooks.md)."""
        from .dbapi import Cursor
        return Cursor(self)

    def commit(self) -> None:
        """DB-API's commit: sqlml commits each statement itself (outside an explicit BEGIN), so nothing is left."""

    def model(self, name: str) -> t.Any:
        """``name`` as a :class:`sqlml.objects.Model`: versions, metrics, ``.predict``, ``.card()`` … (each a
        thin wrapper over the SQL), shown as HTML in Jupyter."""
        from .objects import Model
        return Model(self, name)

    def close(self) -> None:
        if self.duckdb is not None:
            self.duckdb.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(path: str = ":memory:", read_only: bool = False, progress: t.Callable[[str], None] | None = None,
            dialect: str = "duckdb", create: bool = True, *, engine: str = "duckdb", spark: t.Any = None,
            registry: str | None = None) -> Connection:
    """Open a DuckDB database with sqlml installed on it; a missing file is created unless ``create=False``
    (then a wrong path is an error instead of a new, empty database). ``dialect='bigquery'`` reads
    statements written for BigQuery (its quoting, SAFE_CAST, UNNEST, date functions) and runs them on DuckDB.

    ``engine='spark'`` runs them on Spark instead (docs/scale_out.md): on the SparkSession ``spark`` (a
    cluster's), or without one on a ``local[*]`` session started here; the model registry lives under the
    folder ``registry`` (default ``./sqlml_registry``). Results are then Spark DataFrames."""
    if engine != "duckdb":
        return _connect(engine, spark, registry, progress, dialect)
    from .engines.duckdb import connect_duckdb
    connection = connect_duckdb(path, read_only=read_only, create=create)
    register(connection)
    return Connection(connection, progress, dialect)


def register(connection: duckdb.DuckDBPyConnection) -> Connection:
    """Install sqlml on an existing DuckDB connection: the scoring functions of every stored
    model version, so views over ML.PREDICT work. Returns a :class:`Connection` wrapping it.

    DuckDB's replacement scans (an unknown table name read as a Python variable) are turned off on the
    connection, since they would find sqlml's own variables; the Connection's ``sql`` finds the caller's
    data frames by name instead, and ``connection.register(name, frame)`` works as always."""
    from .engines.duckdb import DuckDBEngine
    engine = DuckDBEngine(connection)
    registry = Registry(engine)
    try:  # an older registry is brought up to date before any statement (and outside any transaction)
        if registry.exists():
            registry.ensure()
    except SqlmlError:  # one opened read-only cannot be: the statements that read it say so
        return Connection(connection)
    views.define_for_views(engine, registry)
    compiled_views.attach(engine, registry)
    return Connection(connection)


def _status(info: ModelVersion) -> str:
    """'ok'; or why the version is refused; or, for a row signed by an older sqlml, what its signature leaves out."""
    if info.damage is not None:
        return info.damage
    return f"ok, but {LEGACY_NOTE}" if info.legacy else "ok"


def _connect(engine: str, spark: t.Any, registry: str | None, progress: t.Callable[[str], None] | None,
             dialect: str) -> Connection:
    if engine != "spark":
        raise SqlmlError(f"Unknown engine {engine!r}; sqlml runs on 'duckdb' and 'spark'.")
    from .engines.spark import SparkEngine, local_session
    return Connection(None, progress, dialect, engine=SparkEngine(spark or local_session(), registry))


def _serving(registry: Registry, name: str, latest: int) -> Serving:
    """What ``name`` serves, for the listing; a model trained before deployments were recorded serves
    its latest version. A hand-edited serving state is listed as serving nothing (using it is refused)."""
    try:
        serving = registry.deployments.serving(name) or Serving(name)
    except SqlmlError:  # a state that does not verify (or another key): nothing is served
        return Serving(name)
    serving.deployed = latest if serving.deployed is None else serving.deployed
    return serving


def _is_data_frame(value: t.Any) -> bool:
    kind = type(value)
    return (kind.__module__.split(".")[0], kind.__name__) in DATA_FRAMES
