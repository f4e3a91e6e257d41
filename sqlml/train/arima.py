"""CREATE MODEL … OPTIONS (model_type = 'ARIMA_PLUS' | 'ARIMA_PLUS_XREG', …): one model of many series.

    CREATE MODEL flights_forecast OPTIONS (model_type = 'ARIMA_PLUS', time_series_timestamp_col = 'day',
        time_series_data_col = 'flights', time_series_id_col = 'origin', holiday_region = 'US')
    AS SELECT day, origin, flights FROM daily_flights

The rows become regular series (:mod:`sqlml.train.arima_series`); every series goes through the pipeline
(:mod:`sqlml.train.arima_pipeline`) on its own, in parallel processes (statsforecast's ``n_jobs``); a
series that cannot be fitted keeps its error (ML.ARIMA_EVALUATE's error_message) and the others are
stored. ARIMA_PLUS_XREG takes the query's other columns as linear regressors of the trend's ARIMA model
(regression with ARIMA errors). The version is stored as arrays and JSON (:mod:`sqlml.model.arima`).
"""

from __future__ import annotations

import time
import typing as t

import pyarrow as pa
import sqlglot
from sqlglot import exp

from ..errors import DataError, OptionError
from ..model import arima_options, envelope
from ..model import options as opts
from ..model.arima import ArimaModel
from ..model.kinds import MODEL_KINDS, ModelKind
from ..model.loaded import LoadedModel
from ..model.preprocess import Preprocessor
from ..model.version import ModelVersion
from . import arima_series
from .arima_pipeline import Settings, fit_all, settings_for, with_calendar
from .arima_series import Columns, Prepared
from .labels import column_name

if t.TYPE_CHECKING:
    from .gate import Verdict


def resolve(raw: dict) -> tuple[ModelKind, dict]:
    """The kind and the checked options of an ARIMA CREATE MODEL (before any data is read)."""
    kind = MODEL_KINDS[str(raw["model_type"]).lower()]
    checked = opts.validate({**raw, "model_type": kind.name}, kind.name)
    return kind, arima_options.check(checked, kind.name)


def train(engine: t.Any, step: t.Any, progress: t.Callable[[str], None]) -> dict:
    """The registry row of a new version (:data:`sqlml.train.families.TRAINERS`' shape), with its own deploy
    gate under ``gate``: ``gate(new, deployed)`` gives the verdict (:mod:`sqlml.train.arima_gate`)."""
    from . import arima_gate

    started = time.perf_counter()
    name, query_sql = step.name, step.query_sql
    kind, options = resolve(step.options)
    if step.transform:
        raise OptionError(f"model_type '{kind.name}' takes no TRANSFORM clause (BigQuery's neither): compute the "
                          "columns in the training query.")
    schema = engine.schema(query_sql)
    columns = query_columns(schema, options, kind)
    arima_series.check_types(schema, columns, options)
    table = engine.read_arrow(_projection(query_sql, columns.all, engine.dialect))
    settings = settings_for(options)
    prepared = arima_series.prepare(table, columns, settings.options)
    progress(f"Fitting {kind.name} '{name}': {len(prepared.starts):,} time series at frequency "
             f"{prepared.grid.frequency}…")
    settings = with_calendar(settings, prepared)
    states = fit_all(prepared, settings)
    fitted = sum(1 for s in states if not s["meta"]["error"])
    if not fitted:
        raise DataError(f"No time series could be fitted: {states[0]['meta']['error']}")
    info, blob, fitted_parts = package(name, query_sql, kind, options, columns, table, prepared, settings, states,
                                       time.perf_counter() - started)
    progress(f"Trained '{name}' in {time.perf_counter() - started:.1f} s ({fitted:,} of {len(states):,} time series).")

    def gate(new: LoadedModel, deployed: LoadedModel | None) -> "Verdict":
        return arima_gate.verdict(new, deployed, prepared, columns, progress)
    return {**_registry_row(info, blob), "eval_data": None, "evaluated_on_training_rows": False,
            "fitted": fitted_parts, "gate": gate}


def query_columns(schema: pa.Schema, options: dict, kind: ModelKind) -> Columns:
    """The columns the options name, as the query spells them; ARIMA_PLUS_XREG's regressors are the rest."""
    empty = schema.empty_table()
    timestamp = column_name(empty, options["time_series_timestamp_col"], "time_series_timestamp_col")
    data = column_name(empty, options["time_series_data_col"], "time_series_data_col")
    ids = [column_name(empty, c, "time_series_id_col") for c in options.get("time_series_id_col", [])]
    named = [timestamp, data, *ids]
    if len(set(named)) != len(named):
        raise OptionError("time_series_timestamp_col, time_series_data_col and time_series_id_col must name "
                          "different columns.")
    others = [c for c in schema.names if c not in named]
    if kind.name == "arima_plus_xreg" and not others:
        raise DataError("ARIMA_PLUS_XREG needs external regressors: the training query's columns besides the "
                        "timestamp, data and id columns; it has none (use ARIMA_PLUS).")
    return Columns(timestamp, data, ids, others if kind.name == "arima_plus_xreg" else [])


def _projection(query_sql: str, names: list[str], dialect: str) -> str:
    """The query's columns the model reads, and no others (a wide query's other columns are never read)."""
    inner = sqlglot.parse_one(query_sql, read=dialect).subquery("__sqlml_series")
    return exp.select(*(exp.column(n, quoted=True) for n in names)).from_(inner).sql(dialect)


def package(name: str, query_sql: str, kind: ModelKind, options: dict, columns: Columns, table: pa.Table,
            prepared: Prepared, settings: Settings, states: list[dict],
            duration: float) -> tuple[ModelVersion, bytes, tuple]:
    """The new version's registry record, its signed bytes, and what they hold (estimator, header, parts:
    :meth:`sqlml.model.loaded.LoadedModel.from_parts` reads the version from them)."""
    from .fit import _version, feature_info
    from .checks import column_stats

    header = {"frequency": prepared.grid.frequency, "anchor": prepared.grid.anchor, "timezone": prepared.timezone,
              "timestamp_col": columns.timestamp, "data_col": columns.data, "id_cols": columns.ids,
              "regressors": columns.regressors, "holiday_regions": settings.options.get("holiday_region") or [],
              "limits": list(settings.limits), "horizon": settings.options["horizon"],
              "decompose": settings.options["decompose_time_series"]}
    estimator = ArimaModel.estimator(header, prepared.ids, [s["meta"] for s in states], [s["arrays"] for s in states])
    envelope_header = {"model_type": kind.name, "preprocess": Preprocessor("none", False, []).to_dict(),
                       "classes": None, "label_type": "float"}
    blob = envelope.dumps(estimator, envelope_header)
    features = [columns.data, *columns.regressors]
    failed = [s["meta"]["error"] for s in states if s["meta"]["error"]]
    notes = prepared.notes + ([f"Warning: {len(failed):,} of {len(states):,} time series could not be fitted "
                                f"(ML.ARIMA_EVALUATE's error_message), e.g. {failed[0]}"] if failed else [])
    info = ModelVersion(
        name=name, version=0, model_type=kind.name, label=columns.data, label_type="float", options=options,
        input_schema=[{"name": c, "type": str(table.schema.field(c).type)} for c in columns.all],
        metrics={"time_series": len(states), "failed_time_series": len(failed)}, eval_tables={},
        feature_info=feature_info(table, features, [column_stats(table[f], f, False) for f in features]),
        training_info=[{"training_run": 0, "iteration": 0, "loss": None, "eval_loss": None,
                        "duration_ms": int(duration * 1000), "notes": "; ".join(notes) or None}],
        library_versions=_library_versions(_version()), training_rows=table.num_rows, eval_rows=0, query=query_sql,
        created_at=None, fingerprint=envelope.fingerprint(blob))
    return info, blob, (estimator, envelope_header, {})


def _library_versions(sqlml_version: str) -> dict:
    from importlib.metadata import version
    return {name: version(name) for name in ("statsforecast", "statsmodels", "holidays")} | {
        "pyarrow": pa.__version__, "sqlml": sqlml_version}


def _registry_row(info: ModelVersion, blob: bytes) -> dict:
    from .fit import registry_row as row
    return {**row(info, blob, 0, info.metrics, {}, info.feature_info, info.training_info),
            "library_versions": info.library_versions}
