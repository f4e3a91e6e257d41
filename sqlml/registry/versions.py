"""Hyperparameter tuning (``num_trials`` with ``HPARAM_RANGE`` / ``HPARAM_CANDIDATES``) and ``model_type = 'auto'``.

    CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['target'],
                            num_trials = 12, l2_reg = HPARAM_RANGE(0, 10)) AS SELECT * FROM t

Every trial is an ordinary training run (:func:`sqlml.training.train`) on the training split less a
validation part (:data:`VALIDATION_FRACTION` of the training rows); its objective is measured on those
validation rows only, so the evaluation split never influences which trial wins. optuna proposes the
values: TPE for ``VIZIER_DEFAULT`` (BigQuery's name for its model-based default), a random sampler for
``RANDOM_SEARCH`` and a grid sampler for ``GRID_SEARCH``. Trials run one after another:
``max_parallel_trials`` is accepted for BigQuery compatibility and ignored (the machines sqlml targets
have few cores, which each trial's estimator already uses).

Trial 1 of a model-based or random search uses the untuned defaults wherever they lie inside the
declared spaces, so a tuned model scores at least as well as the untuned one on the validation rows.
The optimal trial's model becomes the version; every trial is stored in ``sqlml.trials`` with its
model, and trial 0 holds the trivial baseline scored on the same validation rows (for ML.LEADERBOARD).
"""

from __future__ import annotations

import dataclasses
import json
import typing as t
from dataclasses import dataclass

from ..engines.duckdb import DuckDBEngine
from ..errors import ModelNotFoundError, SqlmlError


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


SCHEMA = "sqlml"
TABLE = f"{SCHEMA}.models"
TRIALS = f"{SCHEMA}.trials"  # one row per tuning trial of a version (sqlml.tuning); trial 0 is the baseline
DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {TABLE} (
    name VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    model_type VARCHAR NOT NULL,
    label VARCHAR,
    label_type VARCHAR,
    options JSON,
    input_schema JSON,
    training_rows BIGINT,
    eval_rows BIGINT,
    metrics JSON,
    eval_tables JSON,
    feature_info JSON,
    training_info JSON,
    library_versions JSON,
    query VARCHAR,
    created_at TIMESTAMP DEFAULT current_timestamp,
    fingerprint VARCHAR NOT NULL,
    model BLOB NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS {TRIALS} (
    name VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    trial_id INTEGER NOT NULL,
    model_type VARCHAR,
    hyperparameters JSON,
    hparam_tuning_evaluation_metrics JSON,
    training_loss DOUBLE,
    eval_loss DOUBLE,
    status VARCHAR NOT NULL,
    error_message VARCHAR,
    is_optimal BOOLEAN NOT NULL,
    training_seconds DOUBLE,
    metrics JSON,
    eval_tables JSON,
    training_info JSON,
    fingerprint VARCHAR,
    model BLOB,
    PRIMARY KEY (name, version, trial_id)
);
"""


JSON_COLUMNS = ("options", "input_schema", "metrics", "eval_tables", "feature_info", "training_info", "library_versions")
TRIAL_JSON_COLUMNS = ("hyperparameters", "hparam_tuning_evaluation_metrics", "metrics", "eval_tables", "training_info")
TRIAL_COLUMNS = ("trial_id", "model_type", "hyperparameters", "hparam_tuning_evaluation_metrics", "training_loss",
                 "eval_loss", "status", "error_message", "is_optimal", "training_seconds", "metrics", "eval_tables",
                 "training_info", "fingerprint", "model")


INFO_COLUMNS = ("name", "version", "model_type", "label", "label_type", *JSON_COLUMNS, "training_rows", "eval_rows",
                "query", "created_at", "fingerprint")


@dataclass
class ModelVersion:
    """A registry row without the model bytes."""

    name: str
    version: int
    model_type: str
    label: str | None
    label_type: str | None
    options: dict
    input_schema: list
    metrics: dict
    eval_tables: dict
    feature_info: list
    training_info: list
    library_versions: dict
    training_rows: int
    eval_rows: int
    query: str
    created_at: t.Any
    fingerprint: str


class Registry:
    """Reads and writes model versions through an engine."""

    def __init__(self, engine: DuckDBEngine):
        self.engine = engine

    def ensure(self) -> None:
        """Create the registry schema and table if this database has none yet."""
        for statement in filter(str.strip, DDL.split(";")):
            self.engine.execute(statement)

    def exists(self, table: str = "models") -> bool:
        rows = self.engine.fetch(
            "SELECT 1 FROM information_schema.tables WHERE table_catalog = current_database() "
            "AND table_schema = ? AND table_name = ?", [SCHEMA, table]
        )
        return bool(rows)

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        """Every stored version (of one model, when named), oldest first."""
        if not self.exists():
            return []
        where, params = ("WHERE name = ?", [name]) if name else ("", [])
        rows = self.engine.fetch(f"SELECT {', '.join(INFO_COLUMNS)} FROM {TABLE} {where} ORDER BY name, version", params)
        return [_to_version(row) for row in rows]

    def resolve(self, name: str, version: int | None = None) -> ModelVersion:
        """The named version, or the latest one; a clear error when there is none."""
        versions = self.versions(name)
        if not versions:
            known = sorted({v.name for v in self.versions()})
            hint = f" Models in this database: {', '.join(known)}." if known else " This database has no models yet."
            raise ModelNotFoundError(f"Model '{name}' does not exist.{hint}")
        if version is None:
            return versions[-1]
        for v in versions:
            if v.version == version:
                return v
        raise ModelNotFoundError(
            f"Model '{name}' has no version {version}; it has versions {', '.join(str(v.version) for v in versions)}."
        )

    def blob(self, fingerprint: str) -> bytes:
        rows = self.engine.fetch(f"SELECT model FROM {TABLE} WHERE fingerprint = ?", [fingerprint])
        if not rows:
            raise ModelNotFoundError("That model version was dropped.")
        return rows[0][0]

    def add(self, row: dict) -> int:
        """Store a new version of ``row['name']`` in one transaction and return its number; a
        tuned model's ``row['trials']`` go to the trials table in the same transaction."""
        self.ensure()
        row = dict(row)
        trials = row.pop("trials", None) or []
        try:
            with self.engine.transaction():
                (latest,) = self.engine.fetch(f"SELECT coalesce(max(version), 0) FROM {TABLE} WHERE name = ?", [row["name"]])[0]
                self._insert(TABLE, {**row, "version": latest + 1})
                for trial in trials:
                    self._insert(TRIALS, {**trial, "name": row["name"], "version": latest + 1})
        except SqlmlError as e:  # another session stored the same version number first (DuckDB's own words)
            if "duplicate key" not in str(e).lower() and "conflict" not in str(e).lower():
                raise
            raise SqlmlError(f"Model '{row['name']}' was not stored: another session stored a version of it at the "
                             "same moment (its versions are intact). Run the statement again to store this one.") from None
        return latest + 1

    def _insert(self, table: str, values: dict) -> None:
        values = {k: json.dumps(v, default=str) if k in JSON_COLUMNS + TRIAL_JSON_COLUMNS else v
                  for k, v in values.items()}
        columns = list(values)
        self.engine.fetch(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                          [values[c] for c in columns])

    def trials(self, name: str, version: int) -> list[dict]:
        """The tuning trials of a version (trial 0 is the baseline), without model bytes; [] if untuned."""
        if not self.exists("trials"):
            return []
        columns = [c for c in TRIAL_COLUMNS if c != "model"]
        rows = self.engine.fetch(f"SELECT {', '.join(columns)} FROM {TRIALS} WHERE name = ? AND version = ? "
                                 "ORDER BY trial_id", [name, version])
        return [{c: json.loads(v) if c in TRIAL_JSON_COLUMNS and v is not None else v for c, v in zip(columns, row)}
                for row in rows]

    def trial_blob(self, fingerprint: str) -> bytes:
        rows = self.engine.fetch(f"SELECT model FROM {TRIALS} WHERE fingerprint = ?", [fingerprint])
        if not rows:
            raise ModelNotFoundError("That trial's model was dropped.")
        return rows[0][0]

    def drop(self, name: str) -> int:
        """Delete every version of a model; returns how many there were."""
        if not self.exists():
            return 0
        with self.engine.transaction():
            (count,) = self.engine.fetch(f"SELECT count(*) FROM {TABLE} WHERE name = ?", [name])[0]
            self.engine.fetch(f"DELETE FROM {TABLE} WHERE name = ?", [name])
            if self.exists("trials"):  # registries written before tuning existed have none
                self.engine.fetch(f"DELETE FROM {TRIALS} WHERE name = ?", [name])
        return count

    def update_options(self, name: str, changes: dict) -> ModelVersion:
        """Merge descriptive/threshold options into the latest version's options."""
        latest = self.resolve(name)
        options = {**latest.options, **changes}
        with self.engine.transaction():
            self.engine.fetch(
                f"UPDATE {TABLE} SET options = ? WHERE name = ? AND version = ?",
                [json.dumps(options), name, latest.version],
            )
        return self.resolve(name, latest.version)


def _to_version(row: tuple) -> ModelVersion:
    values = dict(zip(INFO_COLUMNS, row))
    for column in JSON_COLUMNS:
        values[column] = json.loads(values[column]) if values[column] is not None else None
    try:
        return ModelVersion(**values)
    except TypeError as e:  # a registry written by an incompatible sqlml
        raise SqlmlError(f"The model registry table has an unexpected layout: {e}") from None
