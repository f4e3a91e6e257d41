"""ML.EVALUATE (the model beside its baseline), ML.CONFUSION_MATRIX, ML.ROC_CURVE and ML.THRESHOLD_METRICS.

Without data, each reads what was computed on the evaluation split at training; sliced evaluation
is :mod:`sqlml.functions.slices`, evaluation over time :mod:`sqlml.functions.over_time`."""

from __future__ import annotations

import functools

import pyarrow as pa

from ..errors import DataError, ParameterError
from ..model import metrics
from ..model.baseline import (
    STORED_KEY,
    Baseline,
    compare,
    evaluate_rows,
    metric_values,
    primary_metric,
)
from ..model.kinds import ARIMA, CLASSIFICATION, RECOMMENDATION, UNSUPERVISED
from ..model.loaded import LoadedModel
from ..train import distill
from . import forecast_evaluate, over_time, recommend, slices
from .base import Call, Data, as_table
from .trials import with_trial_id


def evaluate_overall(model: "LoadedModel", data: Data | None, params: dict) -> pa.Table:
    """ML.EVALUATE without slices: one row, on ``data`` or (None) the stored evaluation split."""
    wanted = params.get("baselines", True) and model.kind.task not in UNSUPERVISED
    threshold = params.get("threshold")
    if data is None:
        return as_table([stored_row(model, params) if wanted else _without_baseline(model.info.metrics)])
    if model.kind.task in UNSUPERVISED:  # k-means, PCA and autoencoder metrics need the whole feature matrix
        return as_table([metrics.evaluate(model, data.table(), threshold)])
    scored = scored_rows(model, data, threshold)
    if not wanted:
        return as_table([metrics.scored_metrics(model, scored, threshold)])
    if len(scored) == 0:
        raise DataError("The evaluation data has no rows with a non-NULL label.")
    values = metric_values(scored)
    return as_table([evaluate_rows(model, scored, Baseline.of(model), primary_metric(model, params.get("primary_metric"), values))])


def scored_rows(model: "LoadedModel", data: Data, threshold: float | None = None) -> metrics.Scored:
    """The labelled rows of ``data`` scored batch by batch: the input columns are never all in memory.
    Where the engine scores them (Spark's executors), it also counts the distinct scored rows there."""
    score = functools.partial(metrics.scored_table, model, threshold)
    counted = data.counted(score, lambda: score(data.empty()))
    if counted is not None:
        return metrics.Scored.of_counts(counted)
    return metrics.Scored.of_tables(model, data.tables(), data.empty, threshold)


def stored_row(model: "LoadedModel", params: dict) -> dict:
    """The evaluation split's row kept at training, with the baseline kept beside it."""
    model_values = _without_baseline(model.info.metrics)
    agreement = {k: model_values.pop(k) for k in [distill.AGREEMENT] if k in model_values}  # no baseline has one
    stored = model.info.metrics.get(STORED_KEY)
    if not stored:  # trained before baselines existed
        return {**model_values, **agreement}
    return {**compare(model_values, stored["metrics"], stored.get("median_metrics"), stored["statistics"]["strategy"],
                      primary_metric(model, params.get("primary_metric"), model_values)), **agreement}


def _without_baseline(stored: dict) -> dict:
    return {k: v for k, v in stored.items() if k != STORED_KEY}


def evaluate(call: Call) -> pa.Table:
    """ML.EVALUATE: one row of metrics with the baseline's beside them (:mod:`sqlml.baselines`), on the
    given data or the evaluation split kept at training; ``slice_by`` adds a row per group (:mod:`sqlml.slices`)."""
    model = call.require_model()
    if model.kind.family == ARIMA:  # forecasts against later actuals, or the fit (BigQuery's ARIMA evaluation)
        return forecast_evaluate.evaluate(call)
    forecasting = sorted(set(call.params) & {"horizon", "confidence_level", "perform_aggregation"})
    if forecasting:
        raise ParameterError(f"ML.EVALUATE's {', '.join(forecasting)} apply to time series models only; "
                             f"'{model.info.name}' is a {model.info.model_type} model.")
    if model.kind.task == RECOMMENDATION and (call.data is not None or call.param("top_k") is not None):
        return with_trial_id(recommend.evaluation(model, call.data, call.params), call)
    if call.param("time_column") is not None or call.param("time_window") is not None:
        return with_trial_id(over_time.evaluate(model, call.require_input(), call.params), call)
    if call.param("slice_by") is not None:
        return with_trial_id(slices.evaluate(model, call.require_input(), call.params), call)
    overall = evaluate_overall(model, call.data, call.params)
    if call.teacher is not None:  # a distilled model (sqlml.train.distill), evaluated on rows given
        agreement = distill.agreement(model, call.teacher, call.require_input().tables())
        overall = overall.append_column(distill.AGREEMENT, pa.array([agreement], pa.float64()))
    return with_trial_id(overall, call)


def confusion_matrix(call: Call) -> pa.Table:
    if not call.has_input and call.param("threshold") is None:
        return _stored_table(call, "confusion_matrix")
    return metrics.confusion_matrix(call.require_model(), None, call.param("threshold"), _classified(call))


def roc_curve(call: Call) -> pa.Table:
    thresholds = call.argument if isinstance(call.argument, list) else call.param("thresholds")
    if not call.has_input and thresholds is None:
        return _stored_table(call, "roc_curve")
    return metrics.roc_curve(call.require_model(), None, thresholds, _classified(call))


def threshold_metrics(call: Call) -> pa.Table:
    """ML.THRESHOLD_METRICS: metrics per decision threshold, to pick one for ALTER MODEL ... threshold."""
    thresholds = call.argument if isinstance(call.argument, list) else call.param("thresholds")
    if not call.has_input and thresholds is None:
        return metrics.metrics_from_counts(_stored_table(call, "roc_curve").to_pydict())
    return metrics.threshold_metrics(call.require_model(), None, thresholds, _classified(call))


def _classified(call: Call) -> metrics.Scored | None:
    """A classifier's input rows scored batch by batch; None for other models (which the metric refuses)."""
    model = call.require_model()
    return scored_rows(model, call.require_input()) if model.kind.task == CLASSIFICATION else None


def _stored_table(call: Call, name: str) -> pa.Table:
    """A table computed on the evaluation split at training time."""
    rows = (call.require_model().info.eval_tables or {}).get(name)
    if rows is None:
        raise DataError(f"ML.{call.function} of '{call.model.info.name}' needs evaluation data: no stored {name} "
                        "(it needs a classifier; the ROC curve a binary one).")
    return pa.Table.from_pylist(rows)
