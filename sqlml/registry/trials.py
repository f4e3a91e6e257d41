"""One tuning trial of a stored version, as a version of its own (``STRUCT(3 AS trial_id)``)."""

from __future__ import annotations

import dataclasses
import typing as t

from ..errors import SqlmlError
from ..model.version import ModelVersion


def trial_version(info: ModelVersion, trials: list[dict], trial_id: t.Any) -> ModelVersion:
    """The registry row of one trial of ``info``: its own model bytes, metrics and training info."""
    if not isinstance(trial_id, int) or isinstance(trial_id, bool):
        raise SqlmlError(f"trial_id must be an integer; got {trial_id!r}.")
    stored = {r["trial_id"]: r for r in trials if r["trial_id"] > 0}
    if not stored:
        raise SqlmlError(f"Model '{info.name}' version {info.version} was not tuned, so it has no trial {trial_id}; "
                         "train with num_trials and HPARAM_RANGE / HPARAM_CANDIDATES options.")
    trial = stored.get(trial_id)
    if trial is None:
        raise SqlmlError(f"Model '{info.name}' version {info.version} has no trial {trial_id}; "
                         f"its trials are {min(stored)} to {max(stored)}.")
    if trial["fingerprint"] is None or trial["status"] != "SUCCEEDED":
        raise SqlmlError(f"Trial {trial_id} of model '{info.name}' failed, so it has no model: {trial['error_message']}")
    return dataclasses.replace(info, model_type=trial["model_type"], fingerprint=trial["fingerprint"],
                               metrics=trial["metrics"], eval_tables=trial["eval_tables"],
                               training_info=trial["training_info"])
