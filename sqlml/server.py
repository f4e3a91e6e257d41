"""``sqlml serve``: online scoring over HTTP (Starlette on uvicorn), from models held in memory
(docs/serving.md).

    POST /v1/models/{name}/predict   {"rows": [{…}], "version": 3 | "alias": "challenger",
                                      "split_key": "id", "challenger_fraction": 0.2}
    GET  /v1/models, /v1/models/{name}, /healthz
    POST /invocations                MLflow's scoring protocol (dataframe_records, dataframe_split, instances)
    GET  /ping, /health, /version

The service never keeps the database open: DuckDB lets no other process open a file a writer holds,
and a reader that stays open keeps every writer out. A refresher thread looks at the file's size and
time every ``refresh`` seconds; when they change it opens the database read-only for a moment, reads
each model's serving state and loads (and verifies the signature of) the deployed and aliased
versions through the registry, closes it, and swaps them in. While a writer holds the file the
open fails and the models already loaded go on serving; the refresher retries. Scoring is ML.PREDICT's
own handler on the request's rows, so a response equals ML.PREDICT's prediction columns.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import json
import os
import sys
import threading
import time
import typing as t

import pyarrow as pa

from .errors import DatabaseBusyError, DataError, ModelNotFoundError, SqlmlError
from .model.serve import SPLIT_KEY, split_key_sql

MAX_BODY_BYTES = 10_000_000
MAX_ROWS = 100_000
REFRESH_SECONDS = 1.0
TOKEN_ENV = "SQLML_SERVE_TOKEN"
CONFIG_ENV = "SQLML_SERVE_CONFIG"  # how `sqlml serve --workers N` hands its settings to each worker process
MODEL_HEADER = "sqlml-model"
MLFLOW_INPUTS = ("dataframe_split", "dataframe_records", "instances", "inputs")


@dataclasses.dataclass
class Settings:
    db: str
    model: str | None = None  # the model /invocations scores when no sqlml-model header names one
    max_body_bytes: int = MAX_BODY_BYTES
    max_rows: int = MAX_ROWS
    refresh: float = REFRESH_SECONDS


class HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class Served:
    """One model as the service holds it: its serving state and the versions it names, loaded."""

    name: str
    deployed: int
    disabled: bool
    aliases: dict[str, int]
    versions: list[dict]  # every stored version's registry facts, for GET /v1/models/{name}
    loaded: dict[int, t.Any]  # version → LoadedModel, for the deployed and aliased versions

    def describe(self) -> dict:
        model = self.loaded[self.deployed]
        return {"name": self.name, "deployed": self.deployed, "disabled": self.disabled, "aliases": self.aliases,
                "model_type": model.info.model_type, "label": model.info.label, "versions": self.versions,
                "input_schema": input_schema(model), "output_columns": model.output_schema().names}


def input_schema(model: t.Any) -> list[dict] | None:
    """The columns a request's rows must have: name and 'numeric' | 'categorical' (None: the model's
    TRANSFORM reads its own raw columns, named in its errors)."""
    if model.transform:
        return None
    return [{"name": c["name"], "kind": c["kind"]} for c in model.preprocessor.columns]


class Models:
    """The models held in memory, refreshed from the database file when it changes."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.served: dict[str, Served] = {}
        self.loaded_at: float | None = None
        self.error: str | None = None  # why the last refresh failed (the file busy …), for /healthz
        self._seen: tuple | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        self.refresh()
        threading.Thread(target=self._loop, daemon=True, name="sqlml-refresh").start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.refresh):
            try:
                self.refresh()
            except Exception as e:  # noqa: BLE001 - the service keeps serving what it has; /healthz says why
                self.error = f"{type(e).__name__}: {e}"

    def _stamp(self) -> tuple:
        """The database file's (and its WAL's) size and modification time: they change with every commit."""
        stamp = []
        for path in (self.settings.db, self.settings.db + ".wal"):
            try:
                found = os.stat(path)
                stamp.append((found.st_size, found.st_mtime_ns))
            except FileNotFoundError:
                stamp.append(None)
        return tuple(stamp)

    def refresh(self) -> None:
        """Reload when the file changed; while another process writes it, keep serving and retry."""
        stamp = self._stamp()
        if stamp == self._seen:
            return
        try:
            served = self._read()
        except DatabaseBusyError:
            self.error = "The database is being written by another process; serving the models loaded before."
            return
        with self._lock:
            self.served, self._seen, self.loaded_at, self.error = served, stamp, time.time(), None

    def _read(self) -> dict[str, Served]:
        import sqlml
        with sqlml.connect(self.settings.db, read_only=True, create=False, progress=lambda message: None) as conn:
            registry, executor = conn.executor.registry, conn.executor
            if not registry.exists():
                return {}
            names = sorted({v.name for v in registry.versions() if v.damage is None})
            return {name: self._model(registry, executor, name) for name in names}

    @staticmethod
    def _model(registry: t.Any, executor: t.Any, name: str) -> Served:
        info, serving = registry.resolve_serving(name)
        aliases = dict(serving.aliases) if serving is not None else {}
        loaded = {number: executor.load(name, number) for number in {info.version, *aliases.values()}}
        versions = [{"version": v.version, "model_type": v.model_type, "created_at": str(v.created_at),
                     "training_rows": v.training_rows, "status": v.damage or "ok",
                     "deployed": v.version == info.version,
                     "aliases": sorted(a for a, n in aliases.items() if n == v.version)}
                    for v in registry.versions(name)]
        return Served(name, info.version, bool(serving and serving.disabled), aliases, versions, loaded)

    def get(self, name: str) -> Served:
        served = self.served.get(name)
        if served is None:
            known = ", ".join(sorted(self.served)) or "none"
            raise HTTPError(404, f"No model named '{name}' is served. Models: {known}.")
        return served

    def version(self, served: Served, number: int) -> t.Any:
        """A version by number: loaded already, or read from the database now (if it is not being written)."""
        if number in served.loaded:
            return served.loaded[number]
        import sqlml
        try:
            with sqlml.connect(self.settings.db, read_only=True, create=False, progress=lambda m: None) as conn:
                model = conn.executor.load(served.name, number)
        except DatabaseBusyError:
            raise HTTPError(503, f"Version {number} of '{served.name}' is not loaded and the database is being "
                                 "written; retry, or alias the version (ALTER MODEL … SET ALIAS) to keep it loaded.") from None
        served.loaded[number] = model
        return model


def predictions(models: Models, name: str, rows: list, request: dict) -> dict:
    """What ML.PREDICT gives for ``rows``: the model (or the version, alias, A/B arms) the request asks
    for, its baseline while the kill switch is on; the prediction columns only."""
    from .functions import HANDLERS, check_applies
    from .functions.base import Call, Data

    served = models.get(name)
    if len(rows) > models.settings.max_rows:
        raise HTTPError(413, f"{len(rows):,} rows is over the limit of {models.settings.max_rows:,} per request.")
    version = request.get("version")
    alias = request.get("alias")
    if version is not None and alias is not None:
        raise HTTPError(422, "Give 'version' or 'alias', not both.")
    if alias is not None:
        if alias not in served.aliases:
            raise HTTPError(404, f"Model '{name}' has no alias '{alias}'; its aliases: {', '.join(served.aliases) or 'none'}.")
        version = served.aliases[alias]
    if version is not None and not isinstance(version, int):
        raise HTTPError(422, f"'version' is a version number; got {version!r}.")
    model = models.version(served, served.deployed if version is None else version)
    check_applies("PREDICT", model)  # a time series or matrix factorization model predicts no rows
    params = {k: request[k] for k in ("threshold", "split_key", "challenger_fraction") if request.get(k) is not None}
    challenger = None
    if "challenger_fraction" in params or "split_key" in params:
        if "challenger" not in served.aliases:
            raise HTTPError(422, f"A/B serving needs a version aliased 'challenger'; '{name}' has none.")
        if "split_key" not in params or "challenger_fraction" not in params:
            raise HTTPError(422, "A/B serving needs both 'split_key' (the field whose hash picks each row's arm) "
                                 "and 'challenger_fraction'.")
        challenger = served.loaded[served.aliases["challenger"]]
    function = "BASELINE" if served.disabled and version is None else "PREDICT"
    table = rows_table(model, rows, params.get("split_key"))
    if challenger is not None:
        table = with_split_key(table, params["split_key"])
    call = Call(function=function, model=model, params=params, data=Data.of_table(table), challenger=challenger)
    scored = HANDLERS[function](call).table()
    columns = [c for c in scored.column_names if c not in table.column_names and c != SPLIT_KEY]
    return {"model": name, "version": model.info.version, **({"baseline": True} if function == "BASELINE" else {}),
            "predictions": scored.select(columns).to_pylist()}


def with_split_key(table: pa.Table, key: str) -> pa.Table:
    """``table`` with the canonical text of its A/B split key, written by DuckDB from the same SQL that
    ML.PREDICT and views hash (sqlml.model.serve.split_key_sql), so a key lands in the same arm everywhere."""
    import duckdb

    try:
        text = split_key_sql(key, table.schema.field(key).type, "duckdb")
    except DataError as e:
        raise HTTPError(422, str(e)) from None
    with duckdb.connect() as keys:
        keys.register("request_rows", table)
        column = keys.sql(f"SELECT {text} FROM request_rows").to_arrow_table().column(0)
    return table.append_column(SPLIT_KEY, column)


def rows_table(model: t.Any, rows: list, split_key: str | None) -> pa.Table:
    """The request's rows as Arrow, each model column typed as the model reads it; columns missing or of
    the wrong type are refused together (422), by name."""
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise HTTPError(422, "'rows' must be a list of objects, one per row: {\"rows\": [{\"column\": value, …}]}.")
    schema = input_schema(model)
    wanted = [c["name"] for c in schema] if schema is not None else sorted({k for r in rows for k in r})
    if split_key:
        wanted += [split_key] if split_key not in wanted else []
    missing = [name for name in wanted if rows and any(name not in r for r in rows)]
    if missing:
        raise HTTPError(422, f"Missing column(s) the model reads: {', '.join(missing)}.")
    kinds = {c["name"]: c["kind"] for c in schema or []}
    arrays, wrong = {}, []
    for name in wanted:
        values = [r.get(name) for r in rows]
        try:
            arrays[name] = _array(values, kinds.get(name))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            wrong.append(f"{name} (expected {'a number' if kinds.get(name) == 'numeric' else 'text'})")
    if wrong:
        raise HTTPError(422, f"Column(s) of the wrong type: {', '.join(wrong)}.")
    return pa.table(arrays) if arrays else pa.table({"__none": pa.nulls(len(rows))})


def _array(values: list, kind: str | None) -> pa.Array:
    if kind == "numeric":
        if any(isinstance(v, (str, bool, dict, list)) for v in values):
            raise TypeError
        return pa.array(values, pa.float64())
    found = pa.array(values)
    if kind == "categorical" and not (pa.types.is_string(found.type) or pa.types.is_boolean(found.type)
                                      or pa.types.is_null(found.type)):
        raise TypeError
    return found


def mlflow_rows(body: dict) -> list[dict]:
    """The rows of an MLflow scoring request: exactly one of dataframe_split, dataframe_records, instances, inputs."""
    given = [k for k in MLFLOW_INPUTS if k in body]
    if len(given) != 1:
        raise HTTPError(400, f"The request must hold exactly one of {', '.join(MLFLOW_INPUTS)}; it has "
                             f"{', '.join(given) or 'none'}.")
    data = body[given[0]]
    if given[0] == "dataframe_split":
        if not isinstance(data, dict) or "columns" not in data or "data" not in data:
            raise HTTPError(400, "dataframe_split is {\"columns\": [...], \"data\": [[...], ...]}.")
        return [dict(zip(data["columns"], row)) for row in data["data"]]
    if isinstance(data, dict):  # inputs / instances as columns: {"a": [1, 2], "b": [3, 4]}
        names = list(data)
        return [dict(zip(names, values)) for values in zip(*(data[n] for n in names))]
    return data


def create_app(settings: Settings | None = None) -> t.Any:
    """The Starlette application (``settings`` from SQLML_SERVE_CONFIG when uvicorn's workers start it)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    settings = settings or Settings(**json.loads(os.environ[CONFIG_ENV]))
    models = Models(settings)
    token = os.environ.get(TOKEN_ENV) or None

    def endpoint(handler: t.Callable) -> t.Callable:
        """Token check, body limit, and errors as JSON: a message, never a traceback."""
        async def run(request: Request) -> t.Any:
            try:
                if token is not None and not _authorized(request, token):
                    raise HTTPError(401, "Missing or wrong token: send 'Authorization: Bearer <SQLML_SERVE_TOKEN>'.")
                return await handler(request)
            except HTTPError as e:
                return JSONResponse({"error": str(e)}, status_code=e.status)
            except DataError as e:
                return JSONResponse({"error": str(e)}, status_code=422)
            except ModelNotFoundError as e:
                return JSONResponse({"error": str(e)}, status_code=404)
            except SqlmlError as e:
                return JSONResponse({"error": str(e)}, status_code=400)
            except Exception as e:  # noqa: BLE001 - logged here; the client gets no traceback
                print(f"sqlml serve: {request.method} {request.url.path} failed: {type(e).__name__}: {e}", file=sys.stderr)
                return JSONResponse({"error": "Internal error; the server's log has the details."}, status_code=500)
        return run

    async def body(request: Request) -> dict:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
            raise HTTPError(413, f"The body is over the limit of {settings.max_body_bytes:,} bytes.")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > settings.max_body_bytes:
                raise HTTPError(413, f"The body is over the limit of {settings.max_body_bytes:,} bytes.")
            chunks.append(chunk)
        try:
            parsed = json.loads(b"".join(chunks))
        except ValueError:
            raise HTTPError(400, "The body is not JSON.") from None
        if not isinstance(parsed, dict):
            raise HTTPError(400, "The body must be a JSON object.")
        return parsed

    async def predict(request: Request) -> JSONResponse:
        request_body = await body(request)
        if "rows" not in request_body:
            raise HTTPError(422, "The body needs 'rows': {\"rows\": [{\"column\": value, …}]}.")
        return JSONResponse(predictions(models, request.path_params["name"], request_body["rows"], request_body))

    async def invocations(request: Request) -> JSONResponse:
        name = request.headers.get(MODEL_HEADER) or settings.model
        if name is None:
            raise HTTPError(400, f"Name the model: start with --model NAME or send the header '{MODEL_HEADER}: NAME'.")
        request_body = await body(request)
        scored = predictions(models, name, mlflow_rows(request_body), request_body.get("params") or {})
        return JSONResponse({"predictions": scored["predictions"]})

    async def listing(request: Request) -> JSONResponse:
        return JSONResponse({"models": [{k: v for k, v in s.describe().items() if k != "versions"}
                                        for s in models.served.values()]})

    async def one(request: Request) -> JSONResponse:
        return JSONResponse(models.get(request.path_params["name"]).describe())

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "models": sorted(models.served), "loaded_at": models.loaded_at,
                             "note": models.error})

    async def ping(request: Request) -> PlainTextResponse:
        return PlainTextResponse("\n")

    async def version(request: Request) -> PlainTextResponse:
        from importlib.metadata import version as installed
        return PlainTextResponse(installed("sqlml"))

    routes = [Route("/v1/models/{name}/predict", endpoint(predict), methods=["POST"]),
              Route("/v1/models", endpoint(listing)), Route("/v1/models/{name}", endpoint(one)),
              Route("/healthz", endpoint(healthz)), Route("/invocations", endpoint(invocations), methods=["POST"]),
              Route("/ping", endpoint(ping)), Route("/health", endpoint(ping)), Route("/version", endpoint(version))]

    async def lifespan(app: t.Any) -> t.AsyncIterator[None]:
        models.start()
        yield
        models.stop()

    app = Starlette(routes=routes, lifespan=_context(lifespan))
    app.state.models = models
    return app


def _context(generator: t.Callable) -> t.Callable:
    import contextlib
    return contextlib.asynccontextmanager(generator)


def _authorized(request: t.Any, token: str) -> bool:
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run the service until interrupted; a non-loopback host needs SQLML_SERVE_TOKEN."""
    import uvicorn
    if not loopback(host) and not os.environ.get(TOKEN_ENV):
        raise SqlmlError(f"Refusing to serve on {host} without a token: anyone who can reach it could use the models. "
                         f"Set {TOKEN_ENV} (clients send 'Authorization: Bearer <token>'), or serve on 127.0.0.1.")
    if not os.path.exists(settings.db):
        raise SqlmlError(f"No database file at '{settings.db}'.")
    if workers > 1:  # each worker process builds its own app (and its own refresher) from the settings
        os.environ[CONFIG_ENV] = json.dumps(dataclasses.asdict(settings))
        uvicorn.run("sqlml.server:create_app", factory=True, host=host, port=port, workers=workers, log_level="warning")
    else:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
