"""Scoring functions behind views: SQL that must stay SQL.

``CREATE VIEW v AS SELECT * FROM ML.PREDICT(MODEL m, TABLE t)`` is stored by the engine as text and
read again in later sessions, so the ML.PREDICT becomes a call of a scoring function,
``sqlml_serve_<key>(features, serving state, view[, split key, fraction])``. The serving state is the
model's signed row of ``sqlml.serving`` with the head of its deployments log
(:data:`sqlml.registry.deployments.STATE_SQL`), read by the view's SQL each time the view runs, so a
view follows DEPLOY, ROLLBACK, the kill switch, aliases, thresholds and expiry as ML.PREDICT does;
the function serves only a state this process verified (at connect, or when it wrote it). The view's
rows pass a guard on the same state, so even a query that reads none of the predictions (``count(*)``)
fails on a dropped model.

Each function holds the signed bytes of every stored version of its model that takes the view's
feature columns and predicts the view's label type, read when the function is defined (at CREATE
VIEW, and for every view found when sqlml attaches to a connection) and whenever this process trains
a version; scoring never reads the database from inside a query. A function is defined from its
record in ``sqlml.scoring_functions`` alone, so a damaged model, or another key, never stops a
connection: its views fail naming the problem, and the other views work.
"""

from __future__ import annotations

import hashlib
import json
import re
import types
import typing as t
from dataclasses import dataclass, field

import pyarrow as pa
from sqlglot import exp

from .engines.base import Engine
from .errors import DataError, ModelIntegrityError, ModelNotFoundError, SecretKeyError, SqlmlError
from .model import loaded, serve
from .model.bigquery_options import refuse_expired
from .model.kinds import MODEL_KINDS, REDUCTION
from .model.loaded import output_schema
from .model.preprocess import column_kind
from .model.version import ModelVersion
from .registry import deployments
from .registry.deployments import Serving, verified_serving
from .registry.schema import SCHEMA, qualified
from .registry.versions import Registry

PREFIX = "sqlml_serve_"
CALLED = re.compile(rf"\b{PREFIX}[0-9a-f]{{16}}\b")
MODEL_VERSION = pa.field("model_version", pa.int64())  # A/B output: which version scored the row
#: What a version's prediction columns depend on: its type and label, and for PCA and autoencoders the
#: options that say how many reduced columns it has.
SHAPE = ("model_type", "label", "label_type", "options")
SHAPING_OPTIONS = ("num_principal_components", "hidden_units")


@dataclass
class Function:
    """One scoring function defined in this process, and the versions it can serve."""

    name: str
    model: str
    features: list[tuple[str, str]]
    ab: bool
    shape: dict  # model_type, label, label_type of the versions it serves (its output columns)
    servable: dict[str, tuple[ModelVersion, bytes]] = field(default_factory=dict)  # fingerprint → (version, bytes)
    others: dict[str, ModelVersion] = field(default_factory=dict)  # versions that take other columns or predict otherwise
    refused: dict[int, SqlmlError] = field(default_factory=dict)  # stored versions that cannot be served, and why
    problem: SqlmlError | None = None  # why the model's state could not be verified when the function was defined

    def output(self) -> pa.Schema:
        return output_schema(types.SimpleNamespace(**{"options": {}, **self.shape}))


#: The scoring functions defined in this process, by name.
_FUNCTIONS: dict[str, Function] = {}
#: Per database (by catalog): why the views calling a function cannot be read — another key than this
#: process holds ("*"), or a function whose record is missing or was edited (by name). A statement
#: reading such a view is refused before the engine runs it (see :func:`refusal`).
_REFUSED: dict[str, dict[str, SqlmlError]] = {}


def features(info: ModelVersion) -> list[tuple[str, str]]:
    """A version's scoring parameters: every input column as DOUBLE (numbers) or VARCHAR (categories)."""
    return [(c["name"], "DOUBLE" if column_kind(c["name"], _arrow_type(c["type"])) == "numeric" else "VARCHAR")
            for c in info.input_schema]


def shape(info: ModelVersion) -> dict:
    reduces = MODEL_KINDS[info.model_type].task == REDUCTION
    return {"model_type": info.model_type, "label": info.label, "label_type": info.label_type,
            "options": {k: info.options[k] for k in SHAPING_OPTIONS if reduces and k in (info.options or {})}}


def _arrow_type(text: str) -> pa.DataType:
    """The Arrow type of an input column as recorded in the registry (only its family matters)."""
    if text.startswith(("int", "uint", "double", "float", "decimal", "halffloat")):
        return pa.float64()
    return pa.bool_() if text == "bool" else pa.string()


def function_name(model: str, columns: list[tuple[str, str]], ab: bool, shaped: dict | None = None) -> str:
    """The function's name: a hash of everything its definition depends on, so that a recorded
    definition is recomputed, not trusted (``shaped`` None: a function recorded before 0.4)."""
    key = [model, [list(c) for c in columns], ab] + ([[shaped.get(k) for k in SHAPE]] if shaped is not None else [])
    return f"{PREFIX}{hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]}"


def define(engine: Engine, registry: Registry, info: ModelVersion, ab: bool = False) -> Function:
    """Define (once) the scoring function for views over ``info``'s model with ``info``'s features and
    prediction columns, and note it in the registry, so later sessions define it for the views that call it."""
    columns, shaped = features(info), shape(info)
    name = function_name(info.name, columns, ab, shaped)
    function = _defined(engine, Function(name, info.name, columns, ab, shaped))
    refresh(registry, info.name)
    try:
        engine.fetch(f"INSERT OR IGNORE INTO {registry.tables().scoring_functions} (name, model, features, ab, output) "
                     "VALUES (?, ?, ?, ?, ?)", [name, info.name, json.dumps(columns), ab, json.dumps(shaped)])
    except SqlmlError as e:  # two sessions (dbt threads) noting the same function at once: one note is enough
        if not any(race in str(e).lower() for race in ("conflict", "duplicate key")):
            raise
    return function


def _defined(engine: Engine, function: Function) -> Function:
    function = _FUNCTIONS.setdefault(function.name, function)
    output = function.output()
    engine.define_scoring_function(function.name, _scorer(function), function.features,
                                   ["VARCHAR", "VARCHAR"] + (["VARCHAR", "DOUBLE"] if function.ab else []),
                                   pa.schema([*output, MODEL_VERSION]) if function.ab else output)
    return function


def refresh(registry: Registry, model: str) -> None:
    """Give this process's scoring functions over ``model`` the bytes of its stored versions they lack,
    and note why any stored version cannot be served."""
    live = [f for f in _FUNCTIONS.values() if f.model == model]
    if not live:
        return
    good, refused = registry.servable(model)
    for function in live:
        for info, blob in good:
            if features(info) == function.features and shape(info) == function.shape:
                function.servable.setdefault(info.fingerprint, (info, blob))
            else:
                function.others[info.fingerprint] = info
            function.refused.pop(info.version, None)
        function.refused.update(refused)


def define_for_views(engine: Engine, registry: Registry) -> None:
    """Define the scoring function of every view this database holds (sqlml attaching to a connection).
    Nothing here raises for a model's sake: a model that cannot be served (damaged, or signed with
    another key) makes its views fail naming why when they are read; every other view works."""
    catalog = engine.current_database()
    _REFUSED.pop(catalog, None)
    called: dict[str, list[str]] = {}
    for _, view, sql in engine.view_definitions():
        for name in CALLED.findall(sql):
            called.setdefault(name, []).append(view)
    if called:
        define_called(engine, registry, called)


def define_called(engine: Engine, registry: Registry, called: dict[str, list[str]]) -> None:
    """Define the scoring functions ``called`` names (each with the views calling it) from their records in
    ``sqlml.scoring_functions``; a function whose record is missing or edited makes its views refused."""
    catalog = engine.current_database()
    rows, columns = [], []
    if registry.exists("scoring_functions"):
        tables = registry.ensure()
        rows = engine.fetch(f"SELECT * FROM {tables.scoring_functions} WHERE list_contains(?, name)", [sorted(called)])
        columns = [c for (c,) in engine.fetch(f"SELECT column_name FROM (DESCRIBE {tables.scoring_functions})")]
    problem = _key_problem(registry)
    refused: dict[str, SqlmlError] = {"*": SecretKeyError(problem)} if problem else {}
    models: dict[str, list[Function]] = {}
    for row in rows:
        function = _recorded(registry, dict(zip(columns, row)))
        if function is not None:
            models.setdefault(function.model, []).append(_defined(engine, function))
    defined = {f.name for functions in models.values() for f in functions}
    for name in set(called) - defined:
        refused[name] = ModelIntegrityError(
            f"View{'s' if len(called[name]) > 1 else ''} {', '.join(repr(v) for v in sorted(called[name]))} call"
            f"{'' if len(called[name]) > 1 else 's'} the scoring function {name}, whose record in sqlml.scoring_functions "
            "is missing or was modified outside sqlml, so it cannot be defined. Recreate the view (CREATE OR REPLACE "
            "VIEW ... ML.PREDICT(...)).")
    if refused:
        _REFUSED.setdefault(catalog, {}).update(refused)
    for model, functions in models.items():
        try:
            refresh(registry, model)
            registry.deployments.serving(model)  # verifies the chain once; views then read a known state
            issue = None
        except SqlmlError as e:
            issue = e
        for function in functions:
            function.problem = SecretKeyError(problem) if problem else issue


def _key_problem(registry: Registry) -> str | None:
    try:
        return registry.key_problem()
    except SqlmlError as e:  # no key at all: that is the problem
        return str(e)


def _recorded(registry: Registry, row: dict) -> Function | None:
    """The function a ``sqlml.scoring_functions`` row records, if its name is the one its definition
    gives (a row edited outside sqlml defines nothing). A row written before 0.4 records no output
    columns: they come from the model's versions, or the notes of its dropped ones."""
    try:
        model, columns, ab = row["model"], [tuple(c) for c in json.loads(row["features"])], row["ab"]
        shaped = json.loads(row["output"]) if row.get("output") is not None else None
        if function_name(model, columns, ab, shaped) != row["name"]:
            return None
    except (TypeError, ValueError, KeyError):
        return None
    if shaped is not None:
        return Function(row["name"], model, columns, ab, shaped)
    try:
        known = [v for v in registry.versions(model) if v.damage is None] or registry.dropped_versions(model)
    except SqlmlError:
        known = registry.dropped_versions(model)
    info = next((v for v in reversed(known) if features(v) == columns), None)
    return None if info is None else Function(row["name"], model, columns, ab, shape(info))


def retire(engine: Engine, versions: list[ModelVersion]) -> None:
    """After DROP MODEL: the dropped versions can no longer be served (views over them say so)."""
    gone = {v.fingerprint for v in versions}
    for function in _FUNCTIONS.values():
        for fingerprint in gone & set(function.servable):
            del function.servable[fingerprint]


def refusal(engine: Engine, sql: str) -> None:
    """Refuse, before the engine runs it, a statement reading a view that cannot be read (another key, a
    scoring function that could not be defined): the engine would abort the caller's open transaction
    on the error; refused here, the transaction stays usable."""
    refused = _REFUSED.get(engine.current_database()) if _REFUSED else None
    if not refused:
        return
    for _, view, text in engine.view_definitions():
        if re.search(rf"(?i)\b{re.escape(view)}\b", sql):
            for name in CALLED.findall(text):
                error = refused.get("*") or refused.get(name)
                if error is not None:
                    raise error


# --- the SQL a view holds ------------------------------------------------------------------------------

def _registry_table(table: str, catalog: str) -> exp.Expression:
    """A registry table as a view names it: ``sqlml.<table>``, which DuckDB binds in the view's own
    catalog (an attached database, a renamed file). In a database called sqlml that name is ambiguous
    to DuckDB, so there the view names the table by text, with its catalog (``query_table``)."""
    if catalog.lower() != SCHEMA:
        return exp.table_(table, db=SCHEMA)
    return exp.Table(this=exp.Anonymous(this="query_table", expressions=[exp.Literal.string(qualified(catalog, table))]))


def live_state_sql(model: str, view: str, catalog: str, dialect: str) -> str:
    """The model's serving state and log head as the view reads them when it runs; a dropped model
    fails here, in SQL, naming the model and the view."""
    text = deployments.state_query(model, _registry_table("serving", catalog), _registry_table("deployments", catalog))
    message = (f"ModelNotFoundError: Model '{model}' was dropped: view '{view}' over it cannot score. Recreate the "
               "view over a stored model.")
    state = exp.column("t")
    dropped = exp.and_(exp.func("prefix", state, exp.Literal.string("\n\n")),
                       exp.func("suffix", state, exp.Literal.string(" drop")))
    checked = exp.select(exp.Case().when(dropped, exp.func("error", exp.Literal.string(message))).else_(state))
    return checked.from_(exp.alias_(text.subquery(), "s", table=["t"])).subquery().sql(dialect)


def scoring_sql(engine: Engine, function: Function, input_sql: str, view: str, split_key: str | None = None,
                key_type: pa.DataType | None = None, fraction: float | None = None,
                pinned: tuple[str, str] | None = None) -> str:
    """The SQL view ``view`` holds in place of ``ML.PREDICT(MODEL m, input[, A/B parameters])``: it reads
    the model's serving state when it runs, or holds ``pinned`` (a signed state naming one version)."""
    def literal(text: str) -> str:
        return exp.Literal.string(text).sql(engine.dialect)

    live = live_state_sql(function.model, view, engine.current_database(), engine.dialect)
    extra = [literal("\n".join(pinned)) if pinned else live, literal(view)]
    if function.ab:
        extra += [serve.split_key_sql(split_key, key_type, engine.dialect), repr(float(fraction))]
    guarded = f"SELECT * FROM ({input_sql}) AS __sqlml_rows WHERE {live} IS NOT NULL"
    return engine.scoring_sql(function.name, function.features, extra, guarded)


# --- scoring, inside the engine's query ----------------------------------------------------------------

_PINNED: dict[str, Serving] = {}  # pinned states already verified, by their text


def _scorer(function: Function) -> t.Callable[..., pa.StructArray]:
    def score(packed: pa.StructArray, states: pa.Array, views: pa.Array, *ab: pa.Array) -> pa.StructArray:
        rows = pa.Table.from_arrays(packed.flatten(), names=[f.name for f in packed.type])
        view = views[0].as_py() if len(views) else ""
        out = _serve(function, _state(function, states[0].as_py() if len(states) else None, view), view, rows, *ab)
        return pa.StructArray.from_arrays([c.combine_chunks() for c in out.columns], names=out.column_names)
    return score


def _state(function: Function, text: str | None, view: str) -> Serving:
    """The state ``text`` holds, verified: a pinned one by its signature, a live one as this process
    verified it (see :func:`sqlml.registry.deployments.checked`)."""
    if text is not None and text.count("\n") == 1:  # pinned: a signed state naming one version
        if text not in _PINNED:
            _PINNED[text] = verified_serving(function.model, *text.split("\n"))
        return _PINNED[text]
    try:
        serving = deployments.checked(function.model, text or "\n\n0 0 - -", None)
    except ModelNotFoundError:
        raise ModelNotFoundError(f"Model '{function.model}' was dropped: view '{view}' over it cannot score. "
                                 "Recreate the view over a stored model.") from None
    except ModelIntegrityError:
        if function.problem is not None:
            raise function.problem from None
        raise
    if serving is None:
        raise ModelIntegrityError(f"Model '{function.model}' has neither a serving state nor a deployments log "
                                  f"(deleted outside sqlml): view '{view}' cannot score.")
    return serving


def _serve(function: Function, state: Serving, view: str, rows: pa.Table, *ab: pa.Array) -> pa.Table:
    deployed = _model(function, state, state.deployed, view)
    if state.disabled:
        out = serve.baseline_output(deployed, rows.num_rows)
        return _with_version(out, state.deployed) if function.ab else out
    if not function.ab:
        return deployed.predict(rows, _threshold(state, state.deployed))
    keys, fractions = ab
    challenger = state.aliases.get("challenger")
    if challenger is None:
        raise SqlmlError(f"Model '{function.model}' has no 'challenger' alias to serve the A/B fraction with; set one "
                         f"with ALTER MODEL {function.model} VERSION n SET ALIAS challenger.")
    arms = serve.challenger_rows(keys, fractions[0].as_py())
    return serve.ab_output(deployed, _model(function, state, challenger, view), rows, arms, state.deployed, challenger,
                           _threshold(state, state.deployed), _threshold(state, challenger))


def _model(function: Function, state: Serving, version: int | None, view: str) -> loaded.LoadedModel:
    entry = state.versions.get(str(version)) or {}
    if entry.get("expires"):
        refuse_expired(function.model, version, {"expiration_timestamp": entry["expires"]})
    held = function.servable.get(entry.get("fingerprint"))
    if held is None and entry.get("fingerprint") in function.others:
        raise DataError(_cannot_serve(function, function.others[entry["fingerprint"]], view))
    if held is None and version in function.refused:
        raise function.refused[version]
    if held is None:
        raise ModelIntegrityError(f"Model '{function.model}' version {version} is served now (sqlml.serving), but no "
                                  "stored version has the bytes its serving state names: the registry was modified "
                                  "outside sqlml (or stored by another process since this one connected: reconnect "
                                  "with sqlml.connect or sqlml.register).")
    info, blob = held
    return loaded.CACHE.get(info, lambda fingerprint: blob)


def _cannot_serve(function: Function, info: ModelVersion, view: str) -> str:
    """Why view ``view`` cannot serve ``info``: the columns it lacks, no longer needs, or passes as another
    kind; or the predictions it returns have another type."""
    remedy = (f"Recreate the view (CREATE OR REPLACE VIEW {view} AS ... ML.PREDICT(MODEL {function.model}, ...))"
              f"{{}}, or pin the view to the version it was made for (MODEL {function.model} VERSION n).")
    if features(info) == function.features:
        before, now = function.output(), output_schema(info)
        said = "; ".join(f"{f.name} {_type(f.type)}" for f in now if f not in before) or "other columns"
        return (f"View '{view}' scores with model '{function.model}', whose version {info.version} is served now; it "
                f"predicts {said} (ML.PREDICT returns them), but the view returns "
                f"{'; '.join(f'{f.name} {_type(f.type)}' for f in before)}, as the version it was created over. "
                + remedy.format(" to serve it"))
    passed, wanted = dict(function.features), dict(features(info))
    kinds = {"DOUBLE": "a number", "VARCHAR": "a category"}
    parts = [f"missing from the view: {', '.join(c for c in wanted if c not in passed)}" if set(wanted) - set(passed) else "",
             f"not read by it: {', '.join(c for c in passed if c not in wanted)}" if set(passed) - set(wanted) else "",
             "; ".join(f"{c} is {kinds[wanted[c]]} for it, {kinds[passed[c]]} in the view"
                       for c in wanted if c in passed and passed[c] != wanted[c])]
    return (f"View '{view}' scores with model '{function.model}', whose version {info.version} is served now; it "
            f"takes other feature columns than the view passes ({'; '.join(p for p in parts if p)}). "
            + remedy.format(f" over a query with version {info.version}'s columns"))


def _type(dtype: pa.DataType) -> str:
    """A prediction column's type in BigQuery's words."""
    if pa.types.is_list(dtype):
        return f"ARRAY<STRUCT<{', '.join(f'{f.name} {_type(f.type)}' for f in dtype.value_type)}>>"
    return {pa.int64(): "INT64", pa.float64(): "FLOAT64", pa.string(): "STRING", pa.bool_(): "BOOL"}.get(dtype, str(dtype))


def _threshold(state: Serving, version: int | None) -> float | None:
    return (state.versions.get(str(version)) or {}).get("threshold")


def _with_version(out: pa.Table, version: int | None) -> pa.Table:
    return out.append_column(MODEL_VERSION, pa.array([version] * out.num_rows, pa.int64()))
