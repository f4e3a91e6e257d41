"""Which version of each model is live: the deployments log and the serving state (docs/release.md).

``sqlml.deployments`` is append-only: one row per decision — a retrain deployed or held back by the
gate, DEPLOY, ROLLBACK, DISABLE, ENABLE, an alias set or unset — with the gate's figures, so what was
live at any time can be read from it. ``sqlml.serving`` holds what the log adds up to, one row per
model (the deployed version, whether the model is disabled, its aliases, and the fingerprint and
threshold of each version those name), so a view reads it in one row when it runs. Both are signed
like model versions: a hand-edited row is refused.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import asdict, dataclass, field

from ..errors import ModelIntegrityError, SqlmlError
from ..model import envelope
from .schema import DEPLOYMENTS, SERVING, table_exists

if t.TYPE_CHECKING:
    from ..engines.base import Engine

#: Log actions that make a version the deployed one.
DEPLOYING = ("trained_deployed", "deploy", "rollback")
ACTIONS = (*DEPLOYING, "trained_not_deployed", "disable", "enable", "alias", "unalias", "drop_version")
LOG_COLUMNS = ("seq", "model", "version", "previous_version", "action", "alias", "reason", "metric", "new_value",
               "old_value", "eval_rows")


@dataclass
class Decision:
    """One entry of the deployments log."""

    action: str
    version: int | None
    previous_version: int | None = None
    reason: str | None = None
    metric: str | None = None
    new_value: float | None = None
    old_value: float | None = None
    eval_rows: int | None = None
    alias: str | None = None


@dataclass
class Serving:
    """What a model serves: its deployed version, the kill switch, its aliases, and for each version
    these name its fingerprint and threshold (all a view needs when it runs)."""

    model: str
    deployed: int | None = None
    disabled: bool = False
    aliases: dict[str, int] = field(default_factory=dict)
    versions: dict[str, dict] = field(default_factory=dict)  # "3" → {"fingerprint": …, "threshold": …}
    seq: int = 0

    def fields(self) -> dict:
        return json.loads(json.dumps(asdict(self), sort_keys=True))

    def signature(self) -> str:
        return envelope.sign({"serving": self.fields()})


class Deployments:
    """Reads and appends the deployments log and the serving state through an engine."""

    def __init__(self, engine: "Engine"):
        self.engine = engine

    def serving(self, model: str) -> Serving | None:
        """The model's serving state, checked against its signature; None for a model never deployed."""
        if not table_exists(self.engine, "serving"):  # a registry no sqlml with releases has written to yet
            return None
        rows = self.engine.fetch(f"SELECT state, signature FROM {SERVING} WHERE model = ?", [model])
        if not rows:
            return None
        state, signature = rows[0]
        try:
            serving = Serving(**json.loads(state))
        except (TypeError, ValueError):
            serving = None
        if serving is None or not envelope.signed({"serving": serving.fields()}, signature):
            raise ModelIntegrityError(f"The serving state of model '{model}' (sqlml.serving) does not match its "
                                      "signature: it was modified outside sqlml.")
        return serving

    def record(self, serving: Serving, decision: Decision) -> Serving:
        """Append ``decision`` to the log and store ``serving`` as the model's new state; call inside
        the caller's transaction, so the log and the state change together."""
        if decision.action not in ACTIONS:
            raise SqlmlError(f"Unknown deployment action {decision.action!r}.")
        (seq,) = self.engine.fetch(f"SELECT coalesce(max(seq), 0) + 1 FROM {DEPLOYMENTS} WHERE model = ?",
                                   [serving.model])[0]
        entry = {"seq": seq, "model": serving.model, **asdict(decision)}
        self.engine.fetch(f"INSERT INTO {DEPLOYMENTS} ({', '.join(LOG_COLUMNS)}, signature) "
                          f"VALUES ({', '.join('?' * (len(LOG_COLUMNS) + 1))})",
                          [entry[c] for c in LOG_COLUMNS] + [envelope.sign({"deployment": _log_fields(entry)})])
        serving.seq = seq
        return self.store(serving)

    def store(self, serving: Serving) -> Serving:
        """Store the model's serving state, signed (inside the caller's transaction)."""
        self.engine.fetch(f"INSERT OR REPLACE INTO {SERVING} (model, state, signature) VALUES (?, ?, ?)",
                          [serving.model, json.dumps(serving.fields()), serving.signature()])
        return serving

    def log(self, model: str) -> list[dict]:
        """The model's log entries, oldest first, each checked against its signature."""
        if not table_exists(self.engine, "deployments"):
            return []
        rows = self.engine.fetch(f"SELECT {', '.join(LOG_COLUMNS)}, signature FROM {DEPLOYMENTS} WHERE model = ? "
                                 "ORDER BY seq", [model])
        entries = []
        for row in rows:
            entry = dict(zip(LOG_COLUMNS, row[:-1]))
            if not envelope.signed({"deployment": _log_fields(entry)}, row[-1]):
                raise ModelIntegrityError(f"Entry {entry['seq']} of the deployments log of model '{model}' does not "
                                          "match its signature: it was modified outside sqlml.")
            entries.append(entry)
        return entries

    def forget(self, model: str) -> None:
        """DROP MODEL: the model no longer serves anything (its log stays, as history)."""
        self.engine.fetch(f"DELETE FROM {SERVING} WHERE model = ?", [model])


def rollback_target(log: list[dict], stored: set[int]) -> int | None:
    """The version ROLLBACK deploys: the one deployed before the current one, replaying the log as a
    stack (each deploy pushes, each rollback pops), so repeated rollbacks step further back. Versions
    no longer stored are skipped."""
    stack: list[int] = []
    for entry in log:
        if entry["action"] in ("trained_deployed", "deploy"):
            stack.append(entry["version"])
        elif entry["action"] == "rollback" and stack:
            stack.pop()
            while stack and stack[-1] != entry["version"]:  # a rollback lands on this version
                stack.pop()
    earlier = [v for v in stack[:-1] if v in stored]
    return earlier[-1] if earlier else None


def _log_fields(entry: dict) -> dict:
    return json.loads(json.dumps({c: entry.get(c) for c in LOG_COLUMNS}, default=str))
