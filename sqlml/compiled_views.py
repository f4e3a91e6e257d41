"""Views over ML.PREDICT that sqlml owns: plain SQL where the served versions compile, rewritten by
every release in its transaction, and recorded signed (docs/compiled_sql.md, "Views").

``CREATE VIEW v AS SELECT … FROM ML.PREDICT(MODEL m, …)`` — persistent, in the current database — is
recorded in ``sqlml.views``: the view's query with each ML.PREDICT as a placeholder, and for each what
it scores (:class:`Scored`). The text the view holds is written from that record and what each model
serves now:

* when every version it serves compiles (:mod:`sqlml.compile`): plain SQL — the deployed version's
  SELECT at its threshold; the baseline's constants while the kill switch is on; under A/B, the rows
  whose split key hashes into the challenger's fraction (:mod:`sqlml.compile.arms`) scored by the
  challenger's SELECT and the others by the deployed one's; a guard failing the query once a served
  version expires. Any DuckDB client reads it, without sqlml;
* otherwise (a model that does not compile, a dropped model, a version taking other columns …): the
  scoring function's call of :mod:`sqlml.views`, which reads the serving state when it runs and
  says what is wrong.

Every transaction that changes what a model serves rewrites the views over it
(:attr:`sqlml.registry.versions.Registry.on_change`), and the record keeps the text as DuckDB stores
it, the deployments log entry each model was at, and an HMAC over all of it. sqlml checks each view
against its record when it attaches to a connection, and again before a statement names a view whose
text changed since, and refuses an edited, forged or stale view naming it.
"""

from __future__ import annotations

import contextlib
import json
import re
import typing as t
from dataclasses import asdict, dataclass

import sqlglot
from sqlglot import exp

from . import views
from .engines.base import Engine
from .errors import DataError, ModelIntegrityError, ModelNotFoundError, SecretKeyError, SqlmlError
from .model import envelope, loaded
from .model.bigquery_options import expiry_message
from .model.version import ModelVersion
from .registry.deployments import Serving
from .registry.versions import Registry

if t.TYPE_CHECKING:
    from .sql.plan import CreatedView

#: The mark of a model whose serving state could not be verified when a view's text was written.
UNVERIFIED = "unverified"


@dataclass
class Scored:
    """One ML.PREDICT inside an owned view: what it scores, and the scoring function's call serving it
    when it cannot be compiled."""

    placeholder: str
    model: str
    version: int | None  # a pinned view's version (MODEL m VERSION n); None: what is deployed
    fingerprint: str | None  # the pinned version's bytes
    input_sql: str  # the input as written: the compiled SELECT applies the model's TRANSFORM itself
    features: list  # the scoring function's feature columns and prediction columns: a version taking or
    shape: dict  # returning others is served by the function, which names the difference
    fraction: float | None  # A/B: challenger_fraction
    key_sql: str | None  # A/B: the split key's canonical text, as SQL over the input (sqlml.model.serve)
    fallback_sql: str  # the scoring function's call (sqlml.views.scoring_sql)


@dataclass
class Record:
    """A row of ``sqlml.views``."""

    schema: str
    name: str
    definition: dict  # {"body": query with placeholders, "columns": [...] | None, "scored": [Scored, ...]}
    sql: str  # the view's text as DuckDB stores it
    reflects: dict  # "heads": model → the signature of its log entry the text was written for (None: dropped);
    # "versions": [model, version, fingerprint] of each version compiled into the text
    signature: str = ""

    def fields(self) -> dict:
        return json.loads(json.dumps({"view": {k: v for k, v in asdict(self).items() if k != "signature"}}))

    def models(self) -> set[str]:
        return {s["model"] for s in self.definition["scored"]}


#: Per database (catalog), the owned views this process knows, by (schema, name): the text it checked or
#: wrote and the log heads that text was written for, or None for a view it refused (checked again when read).
_OWNED: dict[str, dict[tuple[str, str], tuple[str, dict] | None]] = {}


# --- writing -------------------------------------------------------------------------------------------

def create(engine: Engine, registry: Registry, view: "CreatedView", scored: list[Scored]) -> None:
    """CREATE VIEW over ML.PREDICT: the view written from what its models serve now, and recorded."""
    registry.ensure()  # migrated before the transaction: a migration runs in a transaction of its own
    with _transaction(engine):
        schema = view.schema or engine.fetch("SELECT current_schema()")[0][0]
        if view.if_not_exists and _stored_text(engine, schema, view.name) is not None:
            return
        definition = {"body": view.body_sql, "columns": view.columns, "scored": [asdict(s) for s in scored]}
        _write(engine, registry, schema, view.name, definition, view.replace)


def follow(engine: Engine, registry: Registry, model: str) -> None:
    """Rewrite the owned views over ``model`` for what it serves now (inside the transaction that changed
    it). A view dropped since loses its record; an edited one is left as it is, and stays refused."""
    if not engine.scoring_views or not registry.exists("views"):  # Spark's views are the session's (scale_out.md)
        return
    present = _present(engine)
    for record in _records(engine, registry):
        if model not in record.models():
            continue
        key = (record.schema, record.name)
        if key not in present:
            engine.fetch(f"DELETE FROM {registry.tables().views} WHERE schema_name = ? AND view_name = ?", list(key))
        elif present[key] == record.sql and envelope.signed(record.fields(), record.signature):
            _write(engine, registry, record.schema, record.name, record.definition)


def _write(engine: Engine, registry: Registry, schema: str, name: str, definition: dict, replace: bool = True) -> None:
    body, reflects = definition["body"], {"heads": {}, "versions": []}
    for item in definition["scored"]:
        scored, served = Scored(**item), []
        sql, reflects["heads"][scored.model] = _scoring_sql(engine, registry, scored, name, served)
        reflects["versions"] += [[v.name, v.version, v.fingerprint] for v in served
                                 if [v.name, v.version, v.fingerprint] not in reflects["versions"]]
        body = re.sub(rf"\b{re.escape(scored.placeholder)}\b", lambda _: f"({sql})", body)
    target: exp.Expr = exp.table_(name, db=schema, quoted=True)
    if definition["columns"]:
        target = exp.Schema(this=target, expressions=[exp.to_identifier(c, quoted=True) for c in definition["columns"]])
    engine.fetch(f"CREATE {'OR REPLACE ' if replace else ''}VIEW {target.sql('duckdb')} AS {body}")
    record = Record(schema, name, definition, _stored_text(engine, schema, name), reflects)
    record.signature = envelope.sign(record.fields())
    engine.fetch(f"INSERT OR REPLACE INTO {registry.tables().views} (schema_name, view_name, definition, sql, reflects, "
                 "signature) VALUES (?, ?, ?, ?, ?, ?)", [schema, name, json.dumps(definition), record.sql,
                                                          json.dumps(reflects), record.signature])
    _OWNED.setdefault(engine.current_database(), {})[(schema, name)] = (record.sql, reflects)


def _scoring_sql(engine: Engine, registry: Registry, scored: Scored, view: str,
                 served: list[ModelVersion]) -> tuple[str, str | None]:
    """The SQL in place of one ML.PREDICT, and the log entry of its model it was written for: compiled
    when every version served compiles (those versions added to ``served``), else the scoring
    function's call (which says what is wrong)."""
    try:
        head = _head(registry, scored.model)
    except SqlmlError:
        head = UNVERIFIED
    else:
        try:
            return _compiled(engine, registry, scored, view, served).sql("duckdb"), head
        except SqlmlError:  # does not compile, or cannot be served now: the function serves or refuses it
            served.clear()
    views.define_called(engine, registry, {name: [view] for name in views.CALLED.findall(scored.fallback_sql)})
    return scored.fallback_sql, head


def _compiled(engine: Engine, registry: Registry, scored: Scored, view: str,
              served: list[ModelVersion]) -> exp.Select:
    from . import compile as compiled

    def model(info: ModelVersion) -> loaded.LoadedModel:
        served.append(info)
        return loaded.CACHE.get(info, lambda fingerprint: registry.blob(info))
    columns = engine.schema(scored.input_sql).names
    source = compiled.source_of(scored.input_sql)
    if scored.version is not None:  # pinned: that version, whatever is deployed
        info = _checked(registry.resolve(scored.model, scored.version), scored)
        if info.fingerprint != scored.fingerprint or scored.fraction is not None:
            raise SqlmlError(f"View '{view}' serves version {scored.version} only as its scoring function does.")
        return _until_expiry(compiled.compile_predict(model(info), source, "duckdb", columns), [info])
    state = registry.deployments.serving(scored.model)
    if state is None:
        raise ModelNotFoundError(f"Model '{scored.model}' has no serving state.")
    deployed = _served(registry, scored, state, state.deployed)
    if state.disabled:
        select = compiled.compile_baseline(model(deployed), source, "duckdb", columns)
        return _with_version(select, deployed.version) if scored.fraction is not None else select
    if scored.fraction is None:
        return _until_expiry(compiled.compile_predict(model(deployed), source, "duckdb", columns), [deployed])
    if "challenger" not in state.aliases:
        raise SqlmlError(f"Model '{scored.model}' has no 'challenger' alias.")
    challenger = _served(registry, scored, state, state.aliases["challenger"])
    arm = compiled.challenger_arm(sqlglot.parse_one(scored.key_sql, read="duckdb"), scored.fraction)
    arms = [(deployed, exp.not_(arm.copy())), (challenger, arm)]
    parts = [_with_version(compiled.compile_predict(model(info), _rows(source, test), "duckdb", columns), info.version)
             for info, test in arms]
    return _until_expiry(exp.select("*").from_(exp.union(*parts, distinct=False).subquery("__sqlml_ab")),
                         [deployed, challenger])


def _served(registry: Registry, scored: Scored, state: Serving, version: int | None) -> ModelVersion:
    """The version ``state`` serves as ``version``, if it has the bytes the state names and the view's columns."""
    info = registry.resolve(scored.model, version)
    if (state.versions.get(str(version)) or {}).get("fingerprint") != info.fingerprint:
        raise ModelIntegrityError(f"Model '{scored.model}' version {version} is not the one its serving state names.")
    return _checked(info, scored)


def _checked(info: ModelVersion, scored: Scored) -> ModelVersion:
    taken = [list(c) for c in views.features(info)]
    if taken != [list(c) for c in scored.features] or views.shape(info) != scored.shape:
        raise DataError(f"Model '{info.name}' version {info.version} takes other columns or predicts otherwise.")
    return info


def _rows(source: exp.Expr, test: exp.Expr) -> exp.Expr:
    """The rows of ``source`` that pass ``test`` (one arm of A/B serving)."""
    return exp.select("*").from_(source.copy()).where(test, copy=False).subquery("__sqlml_arm", copy=False)


def _with_version(select: exp.Select, version: int) -> exp.Select:
    """``select`` with ML.PREDICT's A/B column ``model_version`` after the prediction columns."""
    names = select.named_selects
    predictions = sum(isinstance(e, exp.Alias) for e in select.expressions)  # the input's columns are bare
    marked = exp.cast(exp.Literal.number(version), exp.DataType.build("bigint")).as_("model_version", quoted=True)
    columns = [exp.column(n, quoted=True) for n in names]
    return exp.select(*columns[:predictions], marked, *columns[predictions:]).from_(select.subquery("__sqlml_p"))


def _until_expiry(select: exp.Select, served: list[ModelVersion]) -> exp.Select:
    """``select``, failing (DuckDB's ``error``) once the time passes a served version's expiration_timestamp
    (the error's class is named first: sqlml raises it as that class)."""
    guards = [(v, v.options.get("expiration_timestamp")) for v in served if v.options.get("expiration_timestamp")]
    if not guards:
        return select
    tests = [exp.If(this=exp.GTE(this=exp.CurrentTimestamp(),
                                 expression=exp.cast(exp.Literal.string(str(when)), exp.DataType.build("timestamptz"))),
                    true=exp.func("error", exp.Literal.string(
                        f"ModelExpiredError: {expiry_message(v.name, v.version, when)}")))
             for v, when in guards]
    return exp.select("*").from_(select.subquery("__sqlml_expiring")).where(exp.Case(ifs=tests, default=exp.true()))


def _head(registry: Registry, model: str) -> str | None:
    """The signature of the log entry the model's serving state reflects (verified); None once dropped."""
    try:
        state = registry.deployments.serving(model)
    except ModelNotFoundError:
        return None
    return state.head if state is not None else None


# --- checking ------------------------------------------------------------------------------------------

def attach(engine: Engine, registry: Registry) -> None:
    """Check every owned view of the database against its record (sqlml attaching to a connection).
    Nothing raises here: a view that does not match is refused, naming it, when a statement reads it."""
    catalog = engine.current_database()
    _OWNED.pop(catalog, None)
    if not engine.scoring_views or not registry.exists("views"):
        return
    present, heads, owned = _present(engine), {}, {}
    for record in _records(engine, registry):
        key = (record.schema, record.name)
        if key in present:
            try:
                _check(record, present[key], registry, heads)
                owned[key] = (record.sql, record.reflects)
            except SqlmlError:
                owned[key] = None  # refused when read (checked again then: the problem may be undone)
    _OWNED[catalog] = owned


def refusal(engine: Engine, registry: Registry, sql: str, creating: "CreatedView | None" = None) -> None:
    """Before a statement that names an owned view runs: refuse it unless the view's text is the one
    sqlml wrote for what its models serve now (a text changed since this process checked it — another
    process's release, or an edit — is checked against its record again)."""
    named = {name for owned in _OWNED.values() for _, name in owned
             if re.search(rf"(?i)(?<![\w$]){re.escape(name)}(?![\w$])", sql)}
    if not named:
        return
    owned = _OWNED.get(engine.current_database(), {})
    for key in [k for k in owned if k[1] in named and not (creating is not None and k[1] == creating.name)]:
        text = _stored_text(engine, *key)
        if text is None:
            continue
        if owned[key] is not None and owned[key][0] == text:
            _check_heads(key[1], owned[key][1], registry, {})
            _check_versions(key[1], owned[key][1], registry)
            continue
        owned[key] = None
        rows = engine.fetch(f"SELECT * FROM {registry.tables().views} WHERE schema_name = ? AND view_name = ?",
                            list(key))
        if not rows:
            raise _edited(key[1], "its record in sqlml.views is missing")
        record = _record(rows[0])
        _check(record, text, registry, {})
        _check_versions(key[1], record.reflects, registry)
        owned[key] = (text, record.reflects)
        if views.CALLED.search(text):  # rewritten by another process into a scoring function's call
            views.define_for_views(engine, registry)


def _check(record: Record, text: str, registry: Registry, heads: dict) -> None:
    """Raise unless ``text`` is what sqlml wrote for the view, for what its models serve now."""
    name = record.name
    try:
        signed = envelope.signed(record.fields(), record.signature)
    except SecretKeyError as e:
        raise SecretKeyError(f"View '{name}' cannot be checked: {e}") from None
    if not signed:
        problem = registry.key_problem()
        if problem:
            raise SecretKeyError(f"View '{name}' cannot be checked: {problem}")
        raise _edited(name, "its record in sqlml.views does not match its signature")
    if text != record.sql:
        raise _edited(name, "its text is not the one sqlml wrote (recorded, signed, in sqlml.views)")
    _check_heads(name, record.reflects, registry, heads)


def _check_versions(name: str, reflects: dict, registry: Registry) -> None:
    """Raise unless every version compiled into the view is still stored as sqlml signed it, bytes included:
    the view serves only what ML.PREDICT would (read before each statement: a model damaged since is refused)."""
    for model, version, fingerprint in reflects["versions"]:
        try:
            info = registry.resolve(model, version)
            if info.fingerprint != fingerprint:
                raise ModelIntegrityError(f"Model '{model}' version {version} is not the one the view was written for.")
            try:
                envelope.verified(registry.blob(info))
            except ModelIntegrityError as e:
                raise ModelIntegrityError(f"Model '{model}' version {version} cannot be loaded: {e}") from None
        except SqlmlError as e:
            raise type(e)(f"View '{name}' is refused: {e}") from None


def _check_heads(name: str, reflects: dict, registry: Registry, heads: dict) -> None:
    """Raise unless each model the view reads still serves the state its text was written for (``heads``:
    the models' current heads, filled as they are read)."""
    for model, head in reflects["heads"].items():
        if model not in heads:
            try:
                heads[model] = _head(registry, model)
            except SqlmlError as e:
                heads[model] = e
        now = heads[model]
        if isinstance(now, SqlmlError):
            if head != UNVERIFIED:  # else the view calls the scoring function, which says what is wrong
                raise type(now)(f"View '{name}' is refused: {now}")
        elif now != head:
            raise ModelIntegrityError(
                f"View '{name}' was written for another serving state of model '{model}' than the one it serves now: "
                "the view and its record were copied back, or the model released, outside sqlml. Recreate the view "
                f"(CREATE OR REPLACE VIEW {name} AS ... ML.PREDICT(...)).")


def _edited(name: str, what: str) -> ModelIntegrityError:
    return ModelIntegrityError(
        f"View '{name}' was modified outside sqlml: {what}, so sqlml does not serve through it. Recreate it with "
        f"CREATE OR REPLACE VIEW {name} AS ... ML.PREDICT(...), or drop it (DROP VIEW {name}).")


# --- reading -------------------------------------------------------------------------------------------

def _records(engine: Engine, registry: Registry) -> list[Record]:
    return [_record(row) for row in engine.fetch(f"SELECT * FROM {registry.tables().views} ORDER BY ALL")]


def _record(row: tuple) -> Record:
    schema, name, definition, sql, reflects, signature = row
    return Record(schema, name, json.loads(definition), sql, json.loads(reflects), signature)


def _present(engine: Engine) -> dict[tuple[str, str], str]:
    """The persistent views of the current database and their text, as the engine stores it."""
    return engine.stored_views()


def _stored_text(engine: Engine, schema: str, name: str) -> str | None:
    return engine.stored_views().get((schema, name))


@contextlib.contextmanager
def _transaction(engine: Engine) -> t.Iterator[None]:
    """The engine's transaction, or the caller's when one is open."""
    if engine.in_transaction():
        yield
        return
    with engine.transaction():
        yield
