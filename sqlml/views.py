"""Scoring functions behind views: SQL that must stay SQL.

``CREATE VIEW v AS SELECT * FROM ML.PREDICT(MODEL m, TABLE t)`` is stored by the engine as text and
read again in later sessions, so the ML.PREDICT becomes a call of ``sqlml_predict_<fingerprint>``,
a scoring function defined for that model version, with the decision threshold read from the
registry whenever the view runs (a view follows ALTER MODEL). A view pins the version current when
it was created. Each function holds its version's signed bytes, read from the registry once when
the function is defined (at CREATE VIEW, and for every view found when sqlml attaches to a
connection), so scoring never reads the database from inside a query.
"""

from __future__ import annotations

import re

import pyarrow as pa

from .engines.base import Engine
from .errors import ModelNotFoundError
from .model import loaded
from .model.loaded import output_schema
from .model.preprocess import column_kind
from .registry.versions import TABLE, ModelVersion, Registry

PREFIX = "sqlml_predict_"
CALLED = re.compile(rf"\b{PREFIX}([0-9a-f]{{16}})\b")


def function_name(info: ModelVersion) -> str:
    return f"{PREFIX}{info.fingerprint[:16]}"


def features(info: ModelVersion) -> list[tuple[str, str]]:
    """The function's parameters: every input column as DOUBLE (numbers) or VARCHAR (categories)."""
    return [(c["name"], "DOUBLE" if column_kind(c["name"], _arrow_type(c["type"])) == "numeric" else "VARCHAR")
            for c in info.input_schema]


def _arrow_type(text: str) -> pa.DataType:
    """The Arrow type of an input column as recorded in the registry (only its family matters)."""
    if text.startswith(("int", "uint", "double", "float", "decimal", "halffloat")):
        return pa.float64()
    return pa.bool_() if text == "bool" else pa.string()


def define(engine: Engine, info: ModelVersion, blob: bytes) -> None:
    """Define the scoring function of one model version (idempotent)."""
    def score(packed: pa.StructArray, threshold: float | None) -> pa.StructArray:
        model = loaded.CACHE.get(info, lambda fingerprint: blob)
        out = model.predict(pa.Table.from_arrays(packed.flatten(), names=[f.name for f in packed.type]), threshold)
        return pa.StructArray.from_arrays([c.combine_chunks() for c in out.columns], names=out.column_names)

    engine.define_scoring_function(function_name(info), score, features(info), output_schema(info))


def scoring_sql(engine: Engine, info: ModelVersion, input_sql: str) -> str:
    """The SQL a view holds in place of ``ML.PREDICT(MODEL m, input)``."""
    threshold = (f"SELECT CAST(json_extract_string(options, '$.threshold') AS DOUBLE) FROM {TABLE} "
                 f"WHERE fingerprint = '{info.fingerprint}'")  # a hex digest: nothing to escape
    return engine.scoring_sql(function_name(info), features(info), threshold, input_sql)


def define_for_views(engine: Engine, registry: Registry) -> None:
    """Define the scoring function of every stored version a view calls; views over a dropped version
    fail when read, naming it."""
    called = {prefix for _, _, sql in engine.view_definitions() for prefix in CALLED.findall(sql)}
    for info, blob in registry.by_fingerprint_prefix(sorted(called)):
        define(engine, info, blob)
        called.discard(info.fingerprint[:16])
    retire(engine, registry.dropped(sorted(called)))


def retire(engine: Engine, versions: list[ModelVersion]) -> None:
    """After DROP MODEL: views over the dropped versions fail when read, naming the model and the views."""
    callers: dict[str, list[str]] = {}
    for _, view, sql in engine.view_definitions():
        for prefix in set(CALLED.findall(sql)):
            callers.setdefault(prefix, []).append(view)
    for info in versions:
        named = callers.get(info.fingerprint[:16]) or ["(none yet)"]
        message = (f"Model '{info.name}' version {info.version} was dropped: "
                   f"{'view' if len(named) == 1 else 'views'} {', '.join(repr(v) for v in named)} over it cannot score. "
                   "Recreate them over a stored model.")

        def refuse(packed: pa.StructArray, threshold: float | None, message: str = message) -> pa.StructArray:
            raise ModelNotFoundError(message)

        engine.drop_scoring_function(function_name(info))
        engine.define_scoring_function(function_name(info), refuse, features(info), output_schema(info))
