"""ML.TRIAL_INFO and ML.LEADERBOARD: the tuning trials of a version (:mod:`sqlml.train.tune`)."""

from __future__ import annotations

import pyarrow as pa

from ..errors import SqlmlError
from ..model.loaded import LoadedModel
from ..model import metrics
from ..model.metrics import lower_is_better
from .base import Call

TRIAL_INFO_COLUMNS = ("trial_id", "hyperparameters", "hparam_tuning_evaluation_metrics", "training_loss", "eval_loss",
                      "status", "error_message", "is_optimal")


def trial_info(call: "Call") -> pa.Table:
    """ML.TRIAL_INFO: one row per trial, BigQuery's columns; hyperparameters and metrics are STRUCTs."""
    trials = [r for r in _trials(call) if r["trial_id"] > 0]
    return pa.Table.from_pylist([{c: r[c] for c in TRIAL_INFO_COLUMNS} for r in trials])


def leaderboard(call: "Call") -> pa.Table:
    """ML.LEADERBOARD: what was tried, best first on the objective (validation rows), the trivial
    baseline ranked among the trials; trials without an objective value come last."""
    model = call.require_model()
    objective = _stored_objective(model)
    sign = 1 if lower_is_better(objective) else -1
    rows = []
    for r in _trials(call):
        value = (r["hparam_tuning_evaluation_metrics"] or {}).get(objective)
        rows.append({"trial_id": r["trial_id"], "model_type": r["model_type"], "hyperparameters": r["hyperparameters"],
                     "objective": objective, "objective_value": value, "metrics": r["hparam_tuning_evaluation_metrics"],
                     "training_seconds": r["training_seconds"], "status": r["status"], "is_optimal": r["is_optimal"]})
    rows.sort(key=lambda r: (r["objective_value"] is None, sign * (r["objective_value"] or 0.0), r["trial_id"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return pa.Table.from_pylist([{"rank": r.pop("rank"), **r} for r in rows])


def _stored_objective(model: LoadedModel) -> str:
    names = model.info.options.get("hparam_tuning_objectives")
    return names[0].lower() if names else metrics.objectives(model.kind, model.info.options)[0]


def _trials(call: "Call") -> list[dict]:
    info = call.require_model().info
    trials = call.trials
    if not trials:
        raise SqlmlError(f"ML.{call.function} needs a tuned model; '{info.name}' version {info.version} was trained "
                         "without num_trials or model_type = 'auto'.")
    return trials


def trial_id_of(call: "Call") -> int | None:
    """The tuning trial whose model ``call`` reads: the one asked with ``STRUCT(n AS trial_id)``, else the
    optimal one; None for an untuned model. Found by fingerprint (a version's model is its optimal trial's);
    trials with identical bytes are the same model, and the optimal one is named first."""
    model = call.require_model()
    same = [r for r in call.trials or [] if r["trial_id"] > 0 and r["fingerprint"] == model.info.fingerprint]
    if not same:
        return None
    return min(same, key=lambda r: (not r["is_optimal"], r["trial_id"]))["trial_id"]


def with_trial_id(table: pa.Table, call: "Call") -> pa.Table:
    """``table`` with BigQuery's leading ``trial_id`` column when the model was tuned (ML.EVALUATE, ML.WEIGHTS)."""
    trial = trial_id_of(call)
    if trial is None:
        return table
    return table.add_column(0, pa.field("trial_id", pa.int64()), pa.array([trial] * table.num_rows, pa.int64()))
