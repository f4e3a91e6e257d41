"""Model versions in the registry: one row per version with its signed bytes, each written in one transaction."""

from __future__ import annotations

import dataclasses
import json
import typing as t

from ..engines.base import Engine
from ..errors import ModelNotFoundError, SqlmlError
from ..model.version import ModelVersion
from . import schema
from .schema import TABLE, TRIALS

JSON_COLUMNS = ("options", "input_schema", "metrics", "eval_tables", "feature_info", "training_info", "library_versions")
TRIAL_JSON_COLUMNS = ("hyperparameters", "hparam_tuning_evaluation_metrics", "metrics", "eval_tables", "training_info")
TRIAL_COLUMNS = ("trial_id", "model_type", "hyperparameters", "hparam_tuning_evaluation_metrics", "training_loss",
                 "eval_loss", "status", "error_message", "is_optimal", "training_seconds", "metrics", "eval_tables",
                 "training_info", "fingerprint", "model")


INFO_COLUMNS = ("name", "version", "model_type", "label", "label_type", *JSON_COLUMNS, "training_rows", "eval_rows",
                "query", "created_at", "fingerprint")


class Registry:
    """Reads and writes model versions through an engine."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def ensure(self) -> None:
        """Create the registry, or bring an older one up to this sqlml's schema version."""
        schema.migrate(self.engine)

    def exists(self, table: str = "models") -> bool:
        rows = self.engine.fetch(
            "SELECT 1 FROM information_schema.tables WHERE table_catalog = current_database() "
            "AND table_schema = ? AND table_name = ?", [schema.SCHEMA, table]
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

    def by_fingerprint_prefix(self, prefixes: list[str]) -> list[tuple[ModelVersion, bytes]]:
        """The stored versions whose fingerprint starts with one of ``prefixes``, with their bytes."""
        if not prefixes or not self.exists():
            return []
        rows = self.engine.fetch(f"SELECT {', '.join(INFO_COLUMNS)}, model FROM {TABLE} "
                                 "WHERE list_contains(?, fingerprint[1:16])", [prefixes])
        return [(_to_version(row[:-1]), row[-1]) for row in rows]

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
        with self.engine.transaction():
            (latest,) = self.engine.fetch(f"SELECT coalesce(max(version), 0) FROM {TABLE} WHERE name = ?", [row["name"]])[0]
            self._insert(TABLE, {**row, "version": latest + 1})
            for trial in trials:
                self._insert(TRIALS, {**trial, "name": row["name"], "version": latest + 1})
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
