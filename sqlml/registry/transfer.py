"""Copy a model version from one registry to another (a DuckDB database's to Spark's, docs/scale_out.md).

The version is read as scoring reads it: its row checked against its signature, its incarnation and
serving state, its bytes against the row's fingerprint and their own signed envelope (deserialized as
scoring would, so bytes that only carry the right tag are refused too); its tuning trials likewise. It is
then stored in the target through the target's own registry code, in one transaction (nothing of it
survives a failure), as the target's next version of the model, signed with the same key — a target
registry signed with another key is refused before anything is written. The deployments log records
where the version came from; its training query is written anew in the target engine's dialect. The copy is deployed when the target had no version of the model;
otherwise it is stored beside the deployed one, to be deployed with ALTER MODEL … DEPLOY VERSION n.
"""

from __future__ import annotations

import dataclasses

import sqlglot

from ..errors import ModelIntegrityError, SecretKeyError, SqlmlError
from ..model import envelope
from ..model.version import ModelVersion
from .deployments import Decision
from .versions import Registry

#: What a version's row holds that the target draws anew (its number, time and incarnation) or that is
#: no column (what reading it found).
DRAWN = ("version", "created_at", "incarnation", "damage", "legacy", "key_problem")


@dataclasses.dataclass
class Copy:
    """A verified version read from a registry, ready to store in another."""

    info: ModelVersion
    row: dict  # the columns :meth:`Registry.add` stores, with its bytes and its trials'
    dialect: str  # the source engine's, which its training query is written in


def read_version(source: Registry, name: str, version: int | str | None = None) -> Copy:
    """``name`` (``version``: a number, an alias, or None for the deployed one) read from ``source`` and
    verified as scoring would verify it; nothing is written anywhere."""
    info = source.resolve(name, version)
    row = {k: v for k, v in dataclasses.asdict(info).items() if k not in DRAWN}
    row["model"] = _verified(source.blob(info), info)
    row["trials"] = [_trial(source, info, trial) for trial in source.trials(info)]
    return Copy(info, row, source.engine.dialect)


def store_copy(target: Registry, copied: Copy, origin: str) -> tuple[int, bool]:
    """Store ``copied`` in ``target`` in one transaction; returns its number there and whether it is
    deployed. ``origin`` names the source in the deployments log's reason."""
    name = copied.info.name
    problem = target.key_problem()
    if problem is not None:
        raise SecretKeyError(f"Model '{name}' was not copied: {problem}")
    deploy = not target.numbers(name)
    reason = f"copied from {origin}, model '{name}' version {copied.info.version} (trained {copied.info.created_at})"
    if not deploy:
        reason += "; not deployed: the target already serves a version of it (deploy with ALTER MODEL … DEPLOY VERSION)"
    row = {**copied.row, "query": _written_for(copied.row["query"], copied.dialect, target.engine.dialect)}
    number = target.add(row, Decision("trained_deployed" if deploy else "trained_not_deployed", None,
                                             reason=reason))
    return number, deploy


def _written_for(query: str | None, source: str, target: str) -> str | None:
    """The training query (ML.GLOBAL_EXPLAIN and others re-read it) in the target engine's dialect."""
    if not query or source == target:
        return query
    try:
        return sqlglot.transpile(query, read=source, write=target)[0]
    except sqlglot.errors.SqlglotError:
        return query  # kept as written: what re-reads it says what the target engine refuses


def _trial(source: Registry, info: ModelVersion, trial: dict) -> dict:
    """A verified trial row of ``info`` with its verified bytes (none for a failed trial), for :meth:`Registry.add`."""
    if trial["fingerprint"] is None:
        return {**trial, "model": None}
    found = dataclasses.replace(info, fingerprint=trial["fingerprint"])
    return {**trial, "model": _verified(source.trial_blob(found), found)}


def _verified(blob: bytes, info: ModelVersion) -> bytes:
    """``blob``, once its signed envelope verifies and it deserializes as scoring would load it."""
    try:
        envelope.loads_parts(blob)
    except SqlmlError as e:
        raise ModelIntegrityError(f"Model '{info.name}' version {info.version} was not copied: {e}") from None
    return blob
