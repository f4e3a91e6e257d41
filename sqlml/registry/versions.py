"""Model versions in the registry: one row per version with its signed bytes, each written in one transaction.

Every row is signed (``signature``, an HMAC with the models' secret key) over the fields that steer
scoring — name, version, model type, label and its type, options, input schema, stored metrics and
tables, and the fingerprint of its bytes — and re-signed by ALTER MODEL. A row whose fields do not
match its signature, or whose bytes do not match its fingerprint, is refused when used; other rows
keep working.
"""

from __future__ import annotations

import dataclasses
import json
import typing as t

from ..engines.base import Engine
from ..errors import ModelIntegrityError, ModelNotFoundError, SqlmlError
from ..model import envelope
from ..model.version import ModelVersion
from . import schema
from .deployments import Decision, Deployments, Serving
from .schema import DROPPED, TABLE, TRIALS

JSON_COLUMNS = ("options", "input_schema", "metrics", "eval_tables", "feature_info", "training_info", "library_versions")
TRIAL_JSON_COLUMNS = ("hyperparameters", "hparam_tuning_evaluation_metrics", "metrics", "eval_tables", "training_info")
TRIAL_COLUMNS = ("trial_id", "model_type", "hyperparameters", "hparam_tuning_evaluation_metrics", "training_loss",
                 "eval_loss", "status", "error_message", "is_optimal", "training_seconds", "metrics", "eval_tables",
                 "training_info", "fingerprint", "model")
INFO_COLUMNS = ("name", "version", "model_type", "label", "label_type", *JSON_COLUMNS, "training_rows", "eval_rows",
                "query", "created_at", "fingerprint")
#: The fields a version's signature covers: everything that decides what scoring does.
SIGNED = ("name", "version", "model_type", "label", "label_type", "options", "input_schema", "metrics", "eval_tables",
          "fingerprint")
SIGNED_TRIAL = ("name", "version", "trial_id", "model_type", "status", "metrics", "eval_tables", "training_info",
                "fingerprint")


class Registry:
    """Reads and writes model versions through an engine."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.deployments = Deployments(engine)
        self._migrated: set[str] = set()

    def ensure(self) -> None:
        """Create the registry, or bring an older one up to this sqlml's schema version (checked once per
        database this registry object reads: every read calls this, and USE may switch databases)."""
        database = self.engine.current_database()
        if database not in self._migrated:
            schema.migrate(self.engine)
            self._migrated.add(database)

    def exists(self, table: str = "models") -> bool:
        return schema.table_exists(self.engine, table)

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        """Every stored version (of one model, when named), oldest first; damaged rows say so in ``damage``."""
        if not self.exists():
            return []
        self.ensure()  # a database written by an older sqlml gains the columns read below
        where, params = ("WHERE name = ?", [name]) if name is not None else ("", [])
        rows = self.engine.fetch(f"SELECT {', '.join(INFO_COLUMNS)}, signature FROM {TABLE} {where} "
                                 "ORDER BY name, version", params)
        return [_to_version(row) for row in rows]

    def count(self) -> int:
        """How many versions are stored (without reading or verifying them)."""
        return self.engine.fetch(f"SELECT count(*) FROM {TABLE}")[0][0] if self.exists() else 0

    def resolve(self, name: str, version: int | str | None = None) -> ModelVersion:
        """A version by number, by alias (a string), or (None) the deployed one — the latest for models
        never deployed; a clear error when there is none or it is damaged."""
        return self.resolve_serving(name, version)[0]

    def resolve_serving(self, name: str, version: int | str | None = None) -> tuple[ModelVersion, Serving | None]:
        """:meth:`resolve`, with the model's serving state it read to do so (None when a number was
        named, or the model was never deployed), so a caller need not read it again."""
        versions = self.versions(name)
        if not versions:
            known = sorted({v.name for v in self.versions()})
            hint = f" Models in this database: {', '.join(known)}." if known else " This database has no models yet."
            raise ModelNotFoundError(f"Model '{name}' does not exist.{hint}")
        serving = None if isinstance(version, int) else self.deployments.serving(name)
        number = self._number(name, version, versions, serving)
        chosen = next((v for v in versions if v.version == number), None)
        if chosen is None and version is None:
            raise ModelIntegrityError(f"Model '{name}' version {number} is deployed (sqlml.serving) but not stored: "
                                      "the registry was modified outside sqlml. Deploy a stored version with "
                                      f"ALTER MODEL {name} DEPLOY VERSION n.")
        if chosen is None:
            raise ModelNotFoundError(
                f"Model '{name}' has no version {number}; it has versions {', '.join(str(v.version) for v in versions)}.")
        return trusted(chosen), serving

    def _number(self, name: str, version: int | str | None, versions: list[ModelVersion], serving: Serving | None) -> int:
        if isinstance(version, int):
            return version
        if version is None:
            return serving.deployed if serving is not None and serving.deployed is not None else versions[-1].version
        aliases = serving.aliases if serving is not None else {}
        if version not in aliases:
            known = f"its aliases are {', '.join(sorted(aliases))}" if aliases else "it has no aliases"
            raise ModelNotFoundError(f"Model '{name}' has no alias '{version}'; {known}. Set one with "
                                     f"ALTER MODEL {name} VERSION n SET ALIAS {version}.")
        return aliases[version]

    def blob(self, info: ModelVersion) -> bytes:
        """A version's bytes, checked to be the ones its (signed) row names."""
        rows = self.engine.fetch(f"SELECT model FROM {TABLE} WHERE name = ? AND version = ?", [info.name, info.version])
        if not rows:
            raise ModelNotFoundError(f"Model '{info.name}' version {info.version} was dropped.")
        return _matching(rows[0][0], info)

    def all_versions(self, name: str) -> list[tuple[ModelVersion, bytes]]:
        """Every undamaged stored version of a model with its bytes, oldest first."""
        if not self.exists():
            return []
        rows = self.engine.fetch(f"SELECT {', '.join(INFO_COLUMNS)}, signature, model FROM {TABLE} WHERE name = ? "
                                 "ORDER BY version", [name])
        found = [(_to_version(row[:-1]), row[-1]) for row in rows]
        return [(info, _matching(blob, info)) for info, blob in found if info.damage is None]

    def dropped_versions(self, name: str) -> list[ModelVersion]:
        """The notes of a model's dropped versions (name, version, type, label, schema), oldest first."""
        if not self.exists("dropped"):
            return []
        rows = self.engine.fetch(f"SELECT name, version, model_type, label, label_type, input_schema, fingerprint "
                                 f"FROM {DROPPED} WHERE name = ? ORDER BY dropped_at, version", [name])
        return [ModelVersion(name, version, model_type, label, label_type, {}, json.loads(schema_json or "[]"), {}, {},
                             [], [], {}, 0, 0, "", None, fingerprint)
                for name, version, model_type, label, label_type, schema_json, fingerprint in rows]

    def add(self, row: dict, gate: Decision | None = None) -> int:
        """Store a new version of ``row['name']`` in one transaction and return its number; a
        tuned model's ``row['trials']`` go to the trials table, and the gate's decision (deploy it or
        not, :mod:`sqlml.registry.deployments`) to the deployments log, in the same transaction."""
        self.ensure()
        row = dict(row)
        trials = row.pop("trials", None) or []
        gate = gate or Decision("trained_deployed", None)
        try:
            with self.engine.transaction():
                (latest,) = self.engine.fetch(f"SELECT coalesce(max(version), 0) FROM {TABLE} WHERE name = ?",
                                              [row["name"]])[0]
                version = {**row, "version": latest + 1}
                self._insert(TABLE, {**version, "signature": envelope.sign(_signed_fields(version, SIGNED))})
                for trial in trials:
                    trial = {**trial, "name": row["name"], "version": latest + 1}
                    self._insert(TRIALS, {**trial, "signature": envelope.sign(_signed_fields(trial, SIGNED_TRIAL))})
                self._record_training(row["name"], latest + 1, gate)
        except SqlmlError as e:  # another session stored the same version number first (DuckDB's own words)
            if "duplicate key" not in str(e).lower() and "conflict" not in str(e).lower():
                raise
            raise SqlmlError(f"Model '{row['name']}' was not stored: another session stored a version of it at the "
                             "same moment (its versions are intact). Run the statement again to store this one.") from None
        return latest + 1

    def _record_training(self, name: str, number: int, gate: Decision) -> None:
        serving = self.deployments.serving(name) or Serving(name)
        if serving.deployed is None and number > 1:  # versions stored before deployments were recorded
            serving.deployed = number - 1
        gate = dataclasses.replace(gate, version=number, previous_version=serving.deployed)
        if gate.action == "trained_deployed":
            serving.deployed = number
        self.record(serving, gate)

    def record(self, serving: Serving, decision: Decision) -> None:
        """Log ``decision`` and store ``serving`` (inside the caller's transaction)."""
        self.deployments.record(self._refreshed(serving), decision)

    def _refreshed(self, serving: Serving) -> Serving:
        """``serving`` with the fingerprint and threshold of every version it names, as a view needs them."""
        named = {serving.deployed, *serving.aliases.values()} - {None}
        rows = {v.version: v for v in self.versions(serving.model) if v.version in named}
        serving.versions = {str(n): _served(rows[n]) for n in sorted(rows)}
        return serving

    def _insert(self, table: str, values: dict) -> None:
        values = {k: json.dumps(v, default=str) if k in JSON_COLUMNS + TRIAL_JSON_COLUMNS else v
                  for k, v in values.items()}
        columns = list(values)
        self.engine.fetch(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                          [values[c] for c in columns])

    def trials(self, name: str, version: int) -> list[dict]:
        """The tuning trials of a version (trial 0 is the baseline), without model bytes; [] if untuned.
        A trial whose row does not match its signature is refused."""
        if not self.exists("trials"):
            return []
        columns = [c for c in TRIAL_COLUMNS if c != "model"] + ["signature"]
        rows = self.engine.fetch(f"SELECT {', '.join(columns)} FROM {TRIALS} WHERE name = ? AND version = ? "
                                 "ORDER BY trial_id", [name, version])
        trials = [{c: _json(v) if c in TRIAL_JSON_COLUMNS else v for c, v in zip(columns, row)} for row in rows]
        for trial in trials:
            if not envelope.signed(_signed_fields({**trial, "name": name, "version": version}, SIGNED_TRIAL),
                                   trial.pop("signature")):
                raise ModelIntegrityError(f"Trial {trial['trial_id']} of model '{name}' version {version} does not "
                                          "match its signature: the registry row was modified.")
        return trials

    def trial_blob(self, info: ModelVersion) -> bytes:
        rows = self.engine.fetch(f"SELECT model FROM {TRIALS} WHERE fingerprint = ?", [info.fingerprint])
        if not rows:
            raise ModelNotFoundError(f"That trial of model '{info.name}' version {info.version} was dropped.")
        return _matching(rows[0][0], info)

    def drop(self, name: str) -> list[ModelVersion]:
        """Delete every version of a model, leaving a note of each (views over them name it); returns them."""
        dropped = self.versions(name) if self.exists() else []
        if not dropped:
            return []
        with self.engine.transaction():
            self.note_dropped(dropped)
            self.engine.fetch(f"DELETE FROM {TABLE} WHERE name = ?", [name])
            self.engine.fetch(f"DELETE FROM {TRIALS} WHERE name = ?", [name])
            self.deployments.forget(name)
        return dropped

    def pinned(self, info: ModelVersion) -> tuple[str, str]:
        """A signed serving state that always serves ``info`` (for a view over ``MODEL m VERSION n``)."""
        serving = Serving(info.name, deployed=info.version, versions={str(info.version): _served(info)})
        return json.dumps(serving.fields()), serving.signature()

    def note_dropped(self, dropped: list[ModelVersion]) -> None:
        """Keep a note of each dropped version, so views over it can say so (inside the caller's transaction)."""
        for info in dropped:
            self.engine.fetch(f"INSERT INTO {DROPPED} (name, version, model_type, label, label_type, input_schema, "
                              "fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?)",
                              [info.name, info.version, info.model_type, info.label, info.label_type,
                               json.dumps(info.input_schema), info.fingerprint])

    def update_options(self, name: str, changes: dict, version: int | str | None = None) -> ModelVersion:
        """Merge descriptive/threshold options into a version's options (the deployed one unless named),
        re-sign it, and refresh the serving state views read the threshold from."""
        target = self.resolve(name, version)
        changed = {**target.__dict__, "options": {**target.options, **changes}}
        with self.engine.transaction():
            self.engine.fetch(f"UPDATE {TABLE} SET options = ?, signature = ? WHERE name = ? AND version = ?",
                              [json.dumps(changed["options"], default=str), envelope.sign(_signed_fields(changed, SIGNED)),
                               name, target.version])
            serving = self.deployments.serving(name)
            if serving is not None and str(target.version) in serving.versions:
                self.deployments.store(self._refreshed(serving))
        return self.resolve(name, target.version)


def _served(info: ModelVersion) -> dict:
    """What a view needs of a version it serves: which bytes, and its decision threshold."""
    return {"fingerprint": info.fingerprint, "threshold": info.options.get("threshold")}


def trusted(info: ModelVersion) -> ModelVersion:
    if info.damage is not None:
        raise ModelIntegrityError(f"Model '{info.name}' version {info.version} is damaged and cannot be used: "
                                  f"{info.damage}. Other models are not affected.")
    return info


def _to_version(row: tuple) -> ModelVersion:
    """A registry row; one that was edited outside sqlml comes back with ``damage`` saying how."""
    values = dict(zip(INFO_COLUMNS, row[:-1]))
    damage = None
    for column in JSON_COLUMNS:
        try:
            values[column] = _json(values[column])
        except ValueError:
            values[column], damage = None, f"its {column} is not valid JSON"
    if damage is None and row[-1] is None:
        damage = "it is not signed (written by an sqlml before 0.2, or inserted by hand); retrain it"
    elif damage is None and not envelope.signed(_signed_fields(values, SIGNED), row[-1]):
        damage = "its registry row does not match its signature (it was modified outside sqlml)"
    return ModelVersion(**values, damage=damage)


def _signed_fields(values: t.Mapping, names: tuple[str, ...]) -> dict:
    """The signed fields as they read back from the database (JSON columns round-tripped)."""
    return {k: json.loads(json.dumps(values.get(k), default=str)) for k in names}


def _json(text: str | None) -> t.Any:
    return json.loads(text) if text is not None else None


def _matching(blob: bytes, info: ModelVersion) -> bytes:
    if envelope.fingerprint(blob) != info.fingerprint:
        raise ModelIntegrityError(f"Model bytes of '{info.name}' version {info.version} failed verification: they are "
                                  "not the bytes its registry row was signed with (the model column was modified or "
                                  "swapped).")
    return blob
