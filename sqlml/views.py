"""Scoring functions behind views: SQL that must stay SQL.

``CREATE VIEW v AS SELECT * FROM ML.PREDICT(MODEL m, TABLE t)`` is stored by the engine as text and
read again in later sessions, so the ML.PREDICT becomes a call of a scoring function,
``sqlml_serve_<key>(features, serving state[, split key, fraction])``. The serving state is the
model's signed row of ``sqlml.serving``, read by the view's SQL each time the view runs, so a view
follows DEPLOY, ROLLBACK, the kill switch, aliases and thresholds as ML.PREDICT does; the function
checks the state's signature and serves the version it names. Each function holds the signed bytes
of every stored version of its model that takes the view's feature columns, read when the function
is defined (at CREATE VIEW, and for every view found when sqlml attaches to a connection) and
whenever this process trains a version; scoring never reads the database from inside a query.
"""

from __future__ import annotations

import hashlib
import json
import re
import typing as t
from dataclasses import dataclass, field

import pyarrow as pa
from sqlglot import exp

from .engines.base import Engine
from .errors import DataError, ModelNotFoundError, SqlmlError
from .model import loaded, serve
from .model.loaded import output_schema
from .model.preprocess import column_kind
from .model.version import ModelVersion
from .registry.deployments import Serving, verified_serving
from .registry.schema import FUNCTIONS, SERVING
from .registry.versions import Registry

PREFIX = "sqlml_serve_"
CALLED = re.compile(rf"\b{PREFIX}[0-9a-f]{{16}}\b")
MODEL_VERSION = pa.field("model_version", pa.int64())  # A/B output: which version scored the row


@dataclass
class Function:
    """One scoring function defined in this process, and the versions it can serve."""

    name: str
    model: str
    features: list[tuple[str, str]]
    ab: bool
    servable: dict[str, tuple[ModelVersion, bytes]]  # fingerprint → (version, bytes)
    others: dict[str, ModelVersion] = field(default_factory=dict)  # versions that take other columns


#: The scoring functions defined in this process, by name.
_FUNCTIONS: dict[str, Function] = {}


def features(info: ModelVersion) -> list[tuple[str, str]]:
    """A version's scoring parameters: every input column as DOUBLE (numbers) or VARCHAR (categories)."""
    return [(c["name"], "DOUBLE" if column_kind(c["name"], _arrow_type(c["type"])) == "numeric" else "VARCHAR")
            for c in info.input_schema]


def _arrow_type(text: str) -> pa.DataType:
    """The Arrow type of an input column as recorded in the registry (only its family matters)."""
    if text.startswith(("int", "uint", "double", "float", "decimal", "halffloat")):
        return pa.float64()
    return pa.bool_() if text == "bool" else pa.string()


def function_name(model: str, columns: list[tuple[str, str]], ab: bool) -> str:
    key = hashlib.sha256(json.dumps([model, columns, ab]).encode()).hexdigest()[:16]
    return f"{PREFIX}{key}"


def define(engine: Engine, registry: Registry, info: ModelVersion, ab: bool = False, record: bool = True) -> Function:
    """Define (once) the scoring function for views over ``info``'s model with ``info``'s features;
    ``record`` notes it in the registry, so later sessions define it for the views that call it."""
    columns = features(info)
    name = function_name(info.name, columns, ab)
    function = _FUNCTIONS.setdefault(name, Function(name, info.name, columns, ab, {}))
    refresh(registry, info.name)
    output = output_schema(info)
    engine.define_scoring_function(name, _scorer(function), columns, ["VARCHAR", "VARCHAR"] + (["VARCHAR", "DOUBLE"] if ab
                                   else []), pa.schema([*output, MODEL_VERSION]) if ab else output)
    if record:
        try:
            engine.fetch(f"INSERT OR IGNORE INTO {FUNCTIONS} (name, model, features, ab) VALUES (?, ?, ?, ?)",
                         [name, info.name, json.dumps(columns), ab])
        except SqlmlError as e:  # two sessions (dbt threads) noting the same function at once: one note is enough
            if not any(race in str(e).lower() for race in ("conflict", "duplicate key")):
                raise
    return function


def refresh(registry: Registry, model: str) -> None:
    """Give this process's scoring functions over ``model`` the bytes of its stored versions they lack."""
    live = [f for f in _FUNCTIONS.values() if f.model == model]
    if not live:
        return
    for info, blob in registry.all_versions(model):
        for function in live:
            if info.fingerprint not in function.servable and features(info) == function.features:
                function.servable[info.fingerprint] = (info, blob)
            elif features(info) != function.features:
                function.others[info.fingerprint] = info


def scoring_sql(engine: Engine, function: Function, input_sql: str, view: str, split_key: str | None = None,
                fraction: float | None = None, pinned: tuple[str, str] | None = None) -> str:
    """The SQL view ``view`` holds in place of ``ML.PREDICT(MODEL m, input[, A/B parameters])``: it reads
    the model's serving state when it runs, or holds ``pinned`` (a signed state naming one version)."""
    def literal(text: str) -> str:
        return exp.Literal.string(text).sql(engine.dialect)

    state = literal("\n".join(pinned)) if pinned else \
        f"(SELECT state || chr(10) || signature FROM {SERVING} WHERE model = {literal(function.model)})"
    extra = [state, literal(view)]
    if function.ab:
        key = exp.to_identifier(split_key, quoted=True).sql(engine.dialect)
        extra += [f"CAST({key} AS VARCHAR)", repr(float(fraction))]
    return engine.scoring_sql(function.name, function.features, extra, input_sql)


def define_for_views(engine: Engine, registry: Registry) -> None:
    """Define the scoring function of every view this database holds (sqlml attaching to a connection)."""
    called = {name for _, _, sql in engine.view_definitions() for name in CALLED.findall(sql)}
    if not called or not registry.exists("scoring_functions"):
        return
    for name, model, columns, ab in engine.fetch(f"SELECT name, model, features, ab FROM {FUNCTIONS} "
                                                 "WHERE list_contains(?, name)", [sorted(called)]):
        columns = [tuple(c) for c in json.loads(columns)]
        # A dropped model's last version (its note in sqlml.dropped) still defines the function, which
        # then says the model was dropped.
        known = [v for v in registry.versions(model) if v.damage is None] or registry.dropped_versions(model)
        info = next((v for v in reversed(known) if features(v) == columns), None)
        if info is not None:  # define() reads the bytes of the versions it can serve, once
            define(engine, registry, info, ab, record=False)


def retire(engine: Engine, versions: list[ModelVersion]) -> None:
    """After DROP MODEL: the dropped versions can no longer be served (views over them say so)."""
    gone = {v.fingerprint for v in versions}
    for function in _FUNCTIONS.values():
        for fingerprint in gone & set(function.servable):
            del function.servable[fingerprint]


# --- scoring, inside the engine's query ----------------------------------------------------------------

_STATES: dict[str, Serving] = {}  # serving rows already verified, by their text


def _scorer(function: Function) -> t.Callable[..., pa.StructArray]:
    def score(packed: pa.StructArray, states: pa.Array, views: pa.Array, *ab: pa.Array) -> pa.StructArray:
        rows = pa.Table.from_arrays(packed.flatten(), names=[f.name for f in packed.type])
        out = _serve(function, _state(function, states, views), views[0].as_py() if len(views) else "", rows, *ab)
        return pa.StructArray.from_arrays([c.combine_chunks() for c in out.columns], names=out.column_names)
    return score


def _state(function: Function, states: pa.Array, views: pa.Array) -> Serving:
    text = states[0].as_py() if len(states) else None
    if text is None:
        raise ModelNotFoundError(f"Model '{function.model}' was dropped: view '{views[0].as_py()}' over it cannot "
                                 "score. Recreate the view over a stored model.")
    if text not in _STATES:
        state, signature = text.rsplit("\n", 1)
        _STATES[text] = verified_serving(function.model, state, signature)
    return _STATES[text]


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
    entry = state.versions.get(str(version))
    held = function.servable.get(entry["fingerprint"]) if entry else None
    if held is None and entry and entry["fingerprint"] in function.others:
        raise DataError(_other_columns(function, function.others[entry["fingerprint"]], view))
    if held is None:
        raise ModelNotFoundError(f"Model '{function.model}' version {version} is served now, but this process does "
                                 "not hold it: it was trained or deployed by another session, or it takes other "
                                 "feature columns than this view passes. Reconnect (sqlml.connect or sqlml.register) "
                                 "to pick it up, or recreate the view.")
    info, blob = held
    return loaded.CACHE.get(info, lambda fingerprint: blob)


def _other_columns(function: Function, info: ModelVersion, view: str) -> str:
    """Why view ``view`` cannot serve ``info``: the columns it lacks, no longer needs, or passes as another kind."""
    passed, wanted = dict(function.features), dict(features(info))
    kinds = {"DOUBLE": "a number", "VARCHAR": "a category"}
    parts = [f"missing from the view: {', '.join(c for c in wanted if c not in passed)}" if set(wanted) - set(passed) else "",
             f"not read by it: {', '.join(c for c in passed if c not in wanted)}" if set(passed) - set(wanted) else "",
             "; ".join(f"{c} is {kinds[wanted[c]]} for it, {kinds[passed[c]]} in the view"
                       for c in wanted if c in passed and passed[c] != wanted[c])]
    return (f"View '{view}' scores with model '{function.model}', whose version {info.version} is served now; it "
            f"takes other feature columns than the view passes ({'; '.join(p for p in parts if p)}). Recreate the "
            f"view (CREATE OR REPLACE VIEW {view} AS ... ML.PREDICT(MODEL {function.model}, ...)) over a query "
            f"with version {info.version}'s columns, or pin the view to the version it was made for "
            f"(MODEL {function.model} VERSION n).")


def _threshold(state: Serving, version: int | None) -> float | None:
    return (state.versions.get(str(version)) or {}).get("threshold")


def _with_version(out: pa.Table, version: int | None) -> pa.Table:
    return out.append_column(MODEL_VERSION, pa.array([version] * out.num_rows, pa.int64()))
