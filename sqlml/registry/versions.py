"""Model versions in the registry: one row per version with its signed bytes, each written in one transaction.

Every row is signed (``signature``, an HMAC with the models' secret key) over every column sqlml
reads — what steers scoring (name, version, model type, label and its type, options, input schema,
the fingerprint of its bytes) and what decides or is shown (metrics and evaluation tables, feature
statistics, training info, the training query the gate and explanations re-read, row counts, library
versions, created_at) — and the incarnation of the model it belongs to; ALTER MODEL re-signs it. A
row whose columns do not match its signature, or whose bytes do not match its fingerprint, is
refused when used; other rows keep working. Rows signed by sqlml before 0.4 (a bare hex signature)
covered only the scoring columns: they are still served, listed with what their signature leaves
out, and their training query is not re-read.
"""

from __future__ import annotations

import dataclasses
import json
import typing as t

from ..engines.base import Engine
from ..errors import ModelIntegrityError, ModelNotFoundError, SecretKeyError, SqlmlError
from ..model import envelope
from ..model.version import ModelVersion
from . import schema
from .deployments import Decision, Deployments, Serving
from .schema import Tables

JSON_COLUMNS = ("options", "input_schema", "metrics", "eval_tables", "feature_info", "training_info", "library_versions")
TRIAL_JSON_COLUMNS = ("hyperparameters", "hparam_tuning_evaluation_metrics", "metrics", "eval_tables", "training_info")
TRIAL_COLUMNS = ("trial_id", "model_type", "hyperparameters", "hparam_tuning_evaluation_metrics", "training_loss",
                 "eval_loss", "status", "error_message", "is_optimal", "training_seconds", "metrics", "eval_tables",
                 "training_info", "fingerprint", "model")
INFO_COLUMNS = ("name", "version", "model_type", "label", "label_type", *JSON_COLUMNS, "training_rows", "eval_rows",
                "query", "created_at", "fingerprint", "incarnation")
#: What a version's signature covers: every column but the bytes (bound by their fingerprint).
SIGNED = INFO_COLUMNS
SIGNED_TRIAL = ("name", "version", "incarnation", *(c for c in TRIAL_COLUMNS if c != "model"))
#: What a signature written before 0.4 (no "2:" prefix) covers.
LEGACY_SIGNED = ("name", "version", "model_type", "label", "label_type", "options", "input_schema", "metrics",
                 "eval_tables", "fingerprint")
LEGACY_SIGNED_TRIAL = ("name", "version", "trial_id", "model_type", "status", "metrics", "eval_tables",
                       "training_info", "fingerprint")
LEGACY_NOTE = ("signed by an older sqlml, which did not sign its training query, feature statistics, training info, "
               "row counts, library versions or created_at; retrain it to have them signed")
SIGNATURE_V2 = "2:"
KEY_CHECK = {"key_check": "sqlml"}


class Registry:
    """Reads and writes model versions through an engine."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.deployments = Deployments(engine, self.tables, self._refuse_key)
        self._migrated: set[str] = set()
        #: Called with a model's name inside every transaction that changes what it serves, after the
        #: change (the executor rewrites the views sqlml owns over it: sqlml/compiled_views.py).
        self.on_change: t.Callable[[str], None] = lambda model: None

    def tables(self) -> Tables:
        """The registry's tables in the current database (USE may switch databases between statements)."""
        return Tables.of(self.engine.current_database())

    def ensure(self) -> Tables:
        """Create the registry, or bring an older one up to this sqlml's schema version (checked once per
        database this registry object reads: every read calls this, and USE may switch databases)."""
        tables = self.tables()
        if tables.catalog not in self._migrated:
            schema.migrate(self.engine, tables)
            done, needed = schema.current_version(self.engine, tables), len(schema.migrations(tables))
            if done < needed:  # read-only: it cannot be migrated now
                raise SqlmlError(f"This database's registry was written by an older sqlml (schema version {done}; this "
                                 f"sqlml reads version {needed}), and it is open read-only, so it cannot be brought up "
                                 "to date. Open it read-write once (sqlml.connect(path)); nothing stored is changed "
                                 "but the registry's new columns and tables.")
            self._migrated.add(tables.catalog)
        return tables

    def exists(self, table: str = "models") -> bool:
        return schema.table_exists(self.engine, table)

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        """Every stored version (of one model, when named), oldest first; damaged rows say so in ``damage``."""
        if not self.exists():
            return []
        tables = self.ensure()  # a database written by an older sqlml gains the columns read below
        where, params = ("WHERE name = ?", [name]) if name is not None else ("", [])
        rows = self.engine.fetch(f"SELECT {', '.join(INFO_COLUMNS)}, signature FROM {tables.models} {where} "
                                 "ORDER BY name, version", params)
        return [self._checked(_to_version(row)) for row in rows]

    def numbers(self, name: str) -> list[int]:
        """The version numbers stored for a model (without reading or verifying the rows)."""
        if not self.exists():
            return []
        return [n for (n,) in self.engine.fetch(f"SELECT version FROM {self.ensure().models} WHERE name = ? "
                                                "ORDER BY version", [name])]

    def count(self) -> int:
        """How many versions are stored (without reading or verifying them)."""
        return self.engine.fetch(f"SELECT count(*) FROM {self.tables().models}")[0][0] if self.exists() else 0

    def resolve(self, name: str, version: int | str | None = None) -> ModelVersion:
        """A version by number, by alias (a string), or (None) the deployed one — the latest for models
        never deployed; a clear error when there is none or it is damaged."""
        return self.resolve_serving(name, version)[0]

    def resolve_serving(self, name: str, version: int | str | None = None) -> tuple[ModelVersion, Serving | None]:
        """:meth:`resolve`, with the model's verified serving state it read to do so (None when the
        model was never deployed), so a caller need not read it again."""
        numbers = self.numbers(name)
        if not numbers:
            self._refuse_missing(name)
            known = sorted({n for (n,) in self.engine.fetch(f"SELECT DISTINCT name FROM {self.tables().models}")}) \
                if self.exists() else []
            hint = f" Models in this database: {', '.join(known)}." if known else " This database has no models yet."
            raise ModelNotFoundError(f"Model '{name}' does not exist.{hint}")
        serving = self.deployments.serving(name)
        number = _number(name, version, numbers, serving)
        if number not in numbers:
            if serving is not None and number in serving.trained:
                raise ModelIntegrityError(f"Model '{name}' version {number} is missing from sqlml.models although its "
                                          "deployments log records it (trained, never dropped): it was deleted outside "
                                          "sqlml.")
            if version is None:
                raise ModelIntegrityError(f"Model '{name}' version {number} is deployed (sqlml.serving) but not stored: "
                                          "the registry was modified outside sqlml. Deploy a stored version with "
                                          f"ALTER MODEL {name} DEPLOY VERSION n.")
            raise ModelNotFoundError(f"Model '{name}' has no version {number}; it has versions "
                                     f"{', '.join(map(str, numbers))}.")
        info = self.trusted(self._row(name, number))
        _belongs(info, serving, named=version if isinstance(version, int) else None)
        return info, serving

    def _refuse_missing(self, name: str) -> None:
        """A model with no stored version but a live serving state lost its rows outside sqlml."""
        if not self.exists("serving"):
            return
        try:
            serving = self.deployments.serving(name)
        except ModelNotFoundError:  # dropped
            return
        if serving is not None:
            raise ModelIntegrityError(f"Model '{name}' has a serving state (version {serving.deployed} deployed) but no "
                                      "version in sqlml.models: its rows were deleted outside sqlml.")

    def _row(self, name: str, number: int) -> ModelVersion:
        rows = self.engine.fetch(f"SELECT {', '.join(INFO_COLUMNS)}, signature FROM {self.tables().models} "
                                 "WHERE name = ? AND version = ?", [name, number])
        if not rows:
            raise ModelNotFoundError(f"Model '{name}' version {number} was dropped.")
        return self._checked(_to_version(rows[0]))

    def blob(self, info: ModelVersion) -> bytes:
        """A version's bytes, checked to be the ones its (signed) row names."""
        rows = self.engine.fetch(f"SELECT model FROM {self.tables().models} WHERE name = ? AND version = ?",
                                 [info.name, info.version])
        if not rows:
            raise ModelNotFoundError(f"Model '{info.name}' version {info.version} was dropped.")
        return _matching(rows[0][0], info)

    def servable(self, name: str) -> tuple[list[tuple[ModelVersion, bytes]], dict[int, SqlmlError]]:
        """Every stored version of a model that can be served, with its bytes, oldest first; and why each
        other one cannot (a damaged row, bytes that do not match it, another key)."""
        if not self.exists():
            return [], {}
        rows = self.engine.fetch(f"SELECT {', '.join(INFO_COLUMNS)}, signature, model FROM {self.ensure().models} "
                                 "WHERE name = ? ORDER BY version", [name])
        good, refused = [], {}
        for row in rows:
            try:
                info = self.trusted(self._checked(_to_version(row[:-1])))
                good.append((info, _matching(row[-1], info)))
            except SqlmlError as e:
                refused[row[1]] = e
        return good, refused

    def dropped_versions(self, name: str) -> list[ModelVersion]:
        """The notes of a model's dropped versions (name, version, type, label, schema), oldest first."""
        if not self.exists("dropped"):
            return []
        rows = self.engine.fetch(f"SELECT name, version, model_type, label, label_type, input_schema, fingerprint "
                                 f"FROM {self.tables().dropped} WHERE name = ? ORDER BY dropped_at, version", [name])
        return [ModelVersion(name, version, model_type, label, label_type, {}, json.loads(schema_json or "[]"), {}, {},
                             [], [], {}, 0, 0, "", None, fingerprint)
                for name, version, model_type, label, label_type, schema_json, fingerprint in rows]

    def add(self, row: dict, gate: Decision | None = None) -> int:
        """Store a new version of ``row['name']`` in one transaction and return its number; a
        tuned model's ``row['trials']`` go to the trials table, and the gate's decision (deploy it or
        not, :mod:`sqlml.registry.deployments`) to the deployments log, in the same transaction."""
        tables = self.ensure()
        row = dict(row)
        trials = row.pop("trials", None) or []
        gate = gate or Decision("trained_deployed", None)
        try:
            with self.engine.transaction():
                (latest,) = self.engine.fetch(f"SELECT coalesce(max(version), 0) FROM {tables.models} WHERE name = ?",
                                              [row["name"]])[0]
                serving = self.deployments.current(row["name"], latest or None, self._refreshed)
                ((now,),) = self.engine.fetch("SELECT CAST(current_timestamp AS TIMESTAMP)")
                version = {**row, "version": latest + 1, "created_at": now, "incarnation": serving.incarnation}
                self._insert(tables.models, {**version, "signature": _sign(version, SIGNED)})
                for trial in trials:
                    trial = {**trial, "name": row["name"], "version": latest + 1}
                    signed = {**trial, "incarnation": serving.incarnation}
                    self._insert(tables.trials, {**trial, "signature": _sign(signed, SIGNED_TRIAL)})
                gate = dataclasses.replace(gate, version=latest + 1, previous_version=serving.deployed)
                if gate.action == "trained_deployed":
                    serving.deployed = latest + 1
                self.record(serving, gate)
        except SqlmlError as e:  # another session stored the same version number first (DuckDB's own words)
            if "duplicate key" not in str(e).lower() and "conflict" not in str(e).lower():
                raise
            raise SqlmlError(f"Model '{row['name']}' was not stored: another session stored a version of it at the "
                             "same moment (its versions are intact). Run the statement again to store this one.") from None
        return latest + 1

    def serving_state(self, name: str) -> Serving:
        """The model's serving state for a release statement, its chain begun if it has none (inside the
        caller's transaction); a model trained before deployments were recorded serves its latest version."""
        numbers = self.numbers(name)
        if not numbers:
            raise ModelNotFoundError(f"Model '{name}' does not exist.")
        return self.deployments.current(name, numbers[-1], self._refreshed)

    def record(self, serving: Serving, decision: Decision) -> None:
        """Log ``decision`` and store ``serving`` (inside the caller's transaction), and keep a check of
        the key the registry is signed with if there is none yet (a database of an older sqlml)."""
        self.deployments.record(self._refreshed(serving), decision)
        self._note_key(self.tables())
        self.on_change(serving.model)

    def _refreshed(self, serving: Serving) -> Serving:
        """``serving`` with the fingerprint, threshold and expiry of every version it names, as a view needs them."""
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

    def trials(self, info: ModelVersion) -> list[dict]:
        """The tuning trials of a version (trial 0 is the baseline), without model bytes; [] if untuned.
        A trial whose row does not match its signature is refused."""
        if not self.exists("trials"):
            return []
        columns = [c for c in TRIAL_COLUMNS if c != "model"] + ["signature"]
        rows = self.engine.fetch(f"SELECT {', '.join(columns)} FROM {self.tables().trials} WHERE name = ? AND "
                                 "version = ? ORDER BY trial_id", [info.name, info.version])
        trials = [{c: _json(v) if c in TRIAL_JSON_COLUMNS else v for c, v in zip(columns, row)} for row in rows]
        for trial in trials:
            fields = {**trial, "name": info.name, "version": info.version, "incarnation": info.incarnation}
            if not _signed(fields, trial.pop("signature"), SIGNED_TRIAL, LEGACY_SIGNED_TRIAL)[0]:
                self._refuse_key()
                raise ModelIntegrityError(f"Trial {trial['trial_id']} of model '{info.name}' version {info.version} "
                                          "does not match its signature: the registry row was modified.")
        return trials

    def trial_blob(self, info: ModelVersion) -> bytes:
        rows = self.engine.fetch(f"SELECT model FROM {self.tables().trials} WHERE fingerprint = ?", [info.fingerprint])
        if not rows:
            raise ModelNotFoundError(f"That trial of model '{info.name}' version {info.version} was dropped.")
        return _matching(rows[0][0], info)

    def drop(self, name: str) -> list[ModelVersion]:
        """Delete every version of a model, leaving a note of each (views over them name it) and a
        ``drop`` entry closing its log; returns them. A damaged model can always be dropped."""
        dropped = self.versions(name) if self.exists() else []
        if not dropped:
            return []
        tables = self.tables()
        with self.engine.transaction():
            self.note_dropped(dropped)
            self.engine.fetch(f"DELETE FROM {tables.models} WHERE name = ?", [name])
            self.engine.fetch(f"DELETE FROM {tables.trials} WHERE name = ?", [name])
            self.deployments.drop(name)
            self.on_change(name)
        return dropped

    def pinned(self, info: ModelVersion) -> tuple[str, str]:
        """A signed serving state that always serves ``info`` (for a view over ``MODEL m VERSION n``)."""
        serving = Serving(info.name, deployed=info.version, versions={str(info.version): _served(info)})
        return serving.text(), serving.signature()

    def note_dropped(self, dropped: list[ModelVersion]) -> None:
        """Keep a note of each dropped version, so views over it can say so (inside the caller's transaction)."""
        for info in dropped:
            self.engine.fetch(f"INSERT INTO {self.tables().dropped} (name, version, model_type, label, label_type, "
                              "input_schema, fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?)",
                              [info.name, info.version, info.model_type, info.label, info.label_type,
                               json.dumps(info.input_schema), info.fingerprint])

    def update_options(self, name: str, changes: dict, version: int | str | None = None) -> ModelVersion:
        """Merge descriptive/threshold options into a version's options (the deployed one unless named),
        re-sign it, and log the change (the serving state views read thresholds and expiry from follows)."""
        target = self.resolve(name, version)
        changed = {**dataclasses.asdict(target), "options": {**target.options, **changes}}
        with self.engine.transaction():
            serving = self.serving_state(name)
            self.engine.fetch(f"UPDATE {self.tables().models} SET options = ?, signature = ? WHERE name = ? AND "
                              "version = ?", [json.dumps(changed["options"], default=str),
                                              _sign(changed, LEGACY_SIGNED if target.legacy else SIGNED), name,
                                              target.version])
            said = ", ".join(f"{k} = {v!r}" for k, v in sorted(changes.items()))
            self.record(serving, Decision("set_options", target.version, reason=f"options set: {said}"))
        return self.resolve(name, target.version)

    # --- the key ---------------------------------------------------------------------------------------

    def _note_key(self, tables: Tables) -> None:
        """Keep a check of the key the registry is signed with, so that another key is named as such."""
        self.engine.fetch(f"INSERT INTO {tables.key_check} (tag) SELECT ? WHERE NOT EXISTS "
                          f"(SELECT 1 FROM {tables.key_check})", [envelope.sign(KEY_CHECK)])

    def key_problem(self) -> str | None:
        """Why the registry's signatures cannot match under the current key (another key), or None."""
        if not self.exists("key_check"):
            return None
        rows = self.engine.fetch(f"SELECT tag FROM {self.tables().key_check} LIMIT 1")
        try:
            if not rows or envelope.signed(KEY_CHECK, rows[0][0]):
                return None
        except SecretKeyError as e:
            return str(e)
        return (f"The secret key from {envelope.key_source()} is not the key this database's models were signed with "
                "(the key check in sqlml.key_check does not match it), so no model, log entry or serving state of it "
                "can be verified. Set SQLML_KEY_FILE or SQLML_SECRET_KEY to the key the models were trained with; "
                "nothing in the database was changed.")

    def _refuse_key(self) -> None:
        problem = self.key_problem()
        if problem is not None:
            raise SecretKeyError(problem)

    def _checked(self, info: ModelVersion) -> ModelVersion:
        """``info``, its damage said to be the key's when the registry was signed with another key."""
        if info.damage is not None and "signature" in info.damage:
            problem = self.key_problem()
            if problem is not None:
                return dataclasses.replace(info, damage=problem, key_problem=True)
        return info

    def trusted(self, info: ModelVersion) -> ModelVersion:
        if info.damage is None:
            return info
        if info.key_problem:
            raise SecretKeyError(info.damage)
        raise ModelIntegrityError(f"Model '{info.name}' version {info.version} is damaged and cannot be used: "
                                  f"{info.damage}. Other models are not affected.")


def _number(name: str, version: int | str | None, numbers: list[int], serving: Serving | None) -> int:
    if isinstance(version, int):
        return version
    if version is None:
        return serving.deployed if serving is not None and serving.deployed is not None else numbers[-1]
    aliases = serving.aliases if serving is not None else {}
    if version not in aliases:
        known = f"its aliases are {', '.join(sorted(aliases))}" if aliases else "it has no aliases"
        raise ModelNotFoundError(f"Model '{name}' has no alias '{version}'; {known}. Set one with "
                                 f"ALTER MODEL {name} VERSION n SET ALIAS {version}.")
    return aliases[version]


def _belongs(info: ModelVersion, serving: Serving | None, named: int | None) -> None:
    """A version belongs to the model's current incarnation, and a deployed or aliased one is the very
    version its serving state names (not a row copied back from a dropped incarnation)."""
    current = serving.incarnation if serving is not None else None
    if info.incarnation is not None and info.incarnation != current:
        raise ModelIntegrityError(f"Model '{info.name}' version {info.version} belongs to another incarnation of the "
                                  "model than its deployments log (one dropped, or a log that is gone): the row was "
                                  "copied back or the log deleted outside sqlml.")
    if named is None and serving is not None and serving.incarnation is not None:
        entry = serving.versions.get(str(info.version)) or {}
        if entry.get("fingerprint") != info.fingerprint:
            raise ModelIntegrityError(f"Model '{info.name}' version {info.version} is not the version its serving "
                                      "state names (another row was put in its place outside sqlml).")


def _served(info: ModelVersion) -> dict:
    """What a view needs of a version it serves: which bytes, its decision threshold, its expiry."""
    return {"fingerprint": info.fingerprint, "threshold": info.options.get("threshold"),
            "expires": info.options.get("expiration_timestamp")}


def _to_version(row: tuple) -> ModelVersion:
    """A registry row; one that was edited outside sqlml comes back with ``damage`` saying how."""
    values = dict(zip(INFO_COLUMNS, row[:-1]))
    damage = None
    for column in JSON_COLUMNS:
        try:
            values[column] = _json(values[column])
        except ValueError:
            values[column], damage = None, f"its {column} is not valid JSON"
    legacy = False
    if damage is None and row[-1] is None:
        damage = "it is not signed (written by an sqlml before 0.2, or inserted by hand); retrain it"
    elif damage is None:
        ok, legacy = _signed(values, row[-1], SIGNED, LEGACY_SIGNED)
        if not ok:
            damage = "its registry row does not match its signature (it was modified outside sqlml)"
    return ModelVersion(**values, damage=damage, legacy=legacy)


def _sign(values: t.Mapping, names: tuple[str, ...]) -> str:
    """A row's signature over ``names`` (the current form unless they are a legacy set)."""
    tag = envelope.sign(_signed_fields(values, names))
    return tag if names in (LEGACY_SIGNED, LEGACY_SIGNED_TRIAL) else SIGNATURE_V2 + tag


def _signed(values: t.Mapping, signature: str | None, names: tuple[str, ...],
            legacy: tuple[str, ...]) -> tuple[bool, bool]:
    """Whether ``signature`` matches the row, and whether it is a legacy one (covering ``legacy`` only)."""
    if signature is None:
        return False, False
    if signature.startswith(SIGNATURE_V2):
        return envelope.signed(_signed_fields(values, names), signature[len(SIGNATURE_V2):]), False
    return envelope.signed(_signed_fields(values, legacy), signature), True


def _signed_fields(values: t.Mapping, names: tuple[str, ...]) -> dict:
    """The signed fields as they read back from the database (JSON columns round-tripped)."""
    return {k: json.loads(json.dumps(values.get(k), default=str)) for k in names}


def _json(text: str | None) -> t.Any:
    return json.loads(text) if text is not None else None


def _matching(blob: bytes, info: ModelVersion) -> bytes:
    if envelope.fingerprint(blob) != info.fingerprint:
        raise ModelIntegrityError(f"Model bytes of '{info.name}' version {info.version} failed verification: they are "
                                  "not the bytes its registry row was signed with (the model column was modified, "
                                  "swapped or truncated).")
    return blob

