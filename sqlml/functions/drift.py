"""ML.VALIDATE_DATA_DRIFT and ML.VALIDATE_DATA_SKEW: how far each column's distribution moved.

    SELECT * FROM ML.VALIDATE_DATA_DRIFT(TABLE january, TABLE july, STRUCT(0.2 AS categorical_default_threshold))
    SELECT * FROM ML.VALIDATE_DATA_SKEW(MODEL m, TABLE serving, STRUCT([('carrier', 0.1)] AS thresholds))

One row per column the two sides share: ``input, metric, threshold, value, is_anomaly`` (``value >
threshold``). The statistics and distances are :mod:`sqlml.model.drift`'s; skew compares with the
statistics CREATE MODEL stored of the training split. The rules are in docs/monitoring_drift.md.
"""

from __future__ import annotations

import pyarrow as pa

from ..errors import DataError, ParameterError
from ..model import drift
from ..model.loaded import LoadedModel
from .base import Call, Data

SCHEMA = pa.schema([("input", pa.string()), ("metric", pa.string()), ("threshold", pa.float64()),
                    ("value", pa.float64()), ("is_anomaly", pa.bool_())])
DEFAULT_THRESHOLD = 0.3


def validate_data_drift(call: Call) -> pa.Table:
    """ML.VALIDATE_DATA_DRIFT(TABLE base | (query), TABLE study | (query) [, STRUCT(...)])."""
    base, study = call.require_input(), call.data_b  # the planner insists on both (catalog.check_inputs)
    kinds = shared_kinds(_kinds(base), _kinds(study), "the base and the study data", call.function,
                         {**_types(study), **_types(base)})
    thresholds = column_thresholds(call, kinds)
    settings = {"buckets": call.param("num_histogram_buckets", drift.NUM_BUCKETS),
                "rank": call.param("num_rank_histogram_buckets", drift.NUM_RANK)}
    return compare(statistics(base, kinds, **settings), statistics(study, kinds, **settings), call, thresholds)


def validate_data_skew(call: Call) -> pa.Table:
    """ML.VALIDATE_DATA_SKEW(MODEL m, TABLE serving | (query) [, STRUCT(...)]): the serving rows (as given,
    before any TRANSFORM) against the training statistics stored with the model."""
    model = call.require_model()
    stored = training_statistics(model)
    serving = call.require_input()
    kinds = shared_kinds({name: s["kind"] for name, s in stored.items()}, _kinds(serving),
                         f"model '{model.info.name}''s training data and the serving data", call.function, _types(serving))
    thresholds = column_thresholds(call, kinds)
    return compare({name: stored[name] for name in kinds}, statistics(serving, kinds), call, thresholds)


def statistics(data: Data, kinds: dict[str, str], **settings: int) -> dict[str, dict]:
    """The columns' statistics, aggregated where the rows are (Spark) or read here batch by batch (DuckDB)."""
    aggregates = data.column_aggregates()
    if aggregates is not None:
        return drift.aggregated(aggregates, kinds, **settings)
    return drift.statistics(data.batches, kinds, **settings)


def training_statistics(model: LoadedModel) -> dict[str, dict]:
    """The statistics CREATE MODEL stored; a version trained before sqlml stored them has none."""
    if model.training_stats is None:
        raise DataError(f"Model '{model.info.name}' version {model.info.version} has no training statistics: it was "
                        "trained before sqlml stored them. Retrain it (CREATE OR REPLACE MODEL) to use "
                        "ML.VALIDATE_DATA_SKEW, or compare the data with its training query by "
                        "ML.VALIDATE_DATA_DRIFT.")
    return model.training_stats


def _kinds(data: Data) -> dict[str, str | None]:
    return {f.name: drift.kind_of(f.type) for f in data.schema()}


def _types(data: Data) -> dict[str, pa.DataType]:
    return {f.name: f.type for f in data.schema()}


def shared_kinds(base: dict[str, str | None], study: dict[str, str | None], sides: str,
                 function: str, types: dict[str, pa.DataType]) -> dict[str, str]:
    """The columns in both ({name: kind}, None for a type without statistics), in ``base``'s order. A column
    numeric on one side and categorical on the other is left out (BigQuery leaves it out of its
    Jensen-Shannon report); a shared column of a type without statistics is refused."""
    common = [name for name in base if name in study]
    if not common:
        raise DataError(f"No column is in both {sides}: the first has {', '.join(base) or 'none'}; the second has "
                        f"{', '.join(study) or 'none'}. Select the same column names on both sides.")
    unusable = [name for name in common if base[name] is None or study[name] is None]
    if unusable:
        name = unusable[0]
        raise DataError(f"Column '{name}' is neither a number nor a string, boolean, date or time: its type is "
                        f"{types.get(name, 'unknown')} (an INTERVAL, BLOB, BIT, LIST or STRUCT has no statistics), "
                        f"which ML.{function} cannot compare. Convert it in the query (e.g. epoch({name}) for an "
                        f"INTERVAL, CAST({name} AS VARCHAR)) or leave it out.")
    return {name: base[name] for name in common if base[name] == study[name]}


def column_thresholds(call: Call, kinds: dict[str, str]) -> dict[str, float]:
    """Each column's threshold: its ``thresholds`` entry, else its kind's default."""
    defaults = {"categorical": call.param("categorical_default_threshold", DEFAULT_THRESHOLD),
                "numeric": call.param("numerical_default_threshold", DEFAULT_THRESHOLD)}
    given = {name: float(value) for name, value in call.param("thresholds") or []}
    unknown = [name for name in given if name not in kinds]
    if unknown:
        raise ParameterError(f"ML.{call.function}'s thresholds name column(s) {', '.join(repr(u) for u in unknown)} "
                             f"that are not compared; the columns compared are: {', '.join(kinds)}.")
    return {name: given.get(name, defaults[kind]) for name, kind in kinds.items()}


def compare(base: dict[str, dict], study: dict[str, dict], call: Call, thresholds: dict[str, float]) -> pa.Table:
    """The output rows: each column's distance and whether it is over its threshold. A column with values
    on one side only is an anomaly of unknown size (value NULL); with values on neither, it is not."""
    categorical = (call.param("categorical_metric_type") or drift.L_INFTY).upper()
    rows = []
    for name, threshold in thresholds.items():
        metric = categorical if base[name]["kind"] == "categorical" else drift.JSD
        value = drift.distance(base[name], study[name], metric)
        anomaly = bool(drift.present(base[name])) != bool(drift.present(study[name])) if value is None \
            else value > threshold
        rows.append({"input": name, "metric": metric, "threshold": threshold, "value": value, "is_anomaly": anomaly})
    return pa.Table.from_pylist(rows, schema=SCHEMA)
